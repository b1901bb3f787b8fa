//! CIFAR-10 and CIFAR-100 in the official binary layout.

use super::{Sample, Source};
use crate::{DataError, RgbImage};
use std::path::{Path, PathBuf};

/// Which CIFAR variant a file holds (they differ in record layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarKind {
    /// 1 label byte + 3072 pixel bytes per record.
    Cifar10,
    /// 1 coarse + 1 fine label byte + 3072 pixel bytes per record (fine labels are used).
    Cifar100,
}

impl CifarKind {
    fn record(self) -> usize {
        match self {
            CifarKind::Cifar10 => 3073,
            CifarKind::Cifar100 => 3074,
        }
    }
    fn classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }
}

/// CIFAR images held in memory (one or more batch files concatenated).
#[derive(Debug, Clone)]
pub struct Cifar {
    kind: CifarKind,
    labels: Vec<u8>,
    /// Planar RGB, 3072 bytes per image.
    planes: Vec<u8>,
}

impl Cifar {
    /// Reads one or more binary batch files of the same kind, checking sizes and labels.
    pub fn open(kind: CifarKind, files: &[PathBuf]) -> Result<Self, DataError> {
        let mut labels = Vec::new();
        let mut planes = Vec::new();
        for path in files {
            let bytes = std::fs::read(path).map_err(|error| DataError::Io {
                path: path.clone(),
                error,
            })?;
            Self::parse(kind, path, &bytes, &mut labels, &mut planes)?;
        }
        Ok(Self {
            kind,
            labels,
            planes,
        })
    }

    fn parse(
        kind: CifarKind,
        path: &Path,
        bytes: &[u8],
        labels: &mut Vec<u8>,
        planes: &mut Vec<u8>,
    ) -> Result<(), DataError> {
        let rec = kind.record();
        if bytes.is_empty() || !bytes.len().is_multiple_of(rec) {
            return Err(DataError::Format {
                path: path.to_path_buf(),
                reason: format!(
                    "{} bytes is not a whole number of {rec}-byte {kind:?} records (truncated or not a CIFAR binary batch)",
                    bytes.len()
                ),
            });
        }
        for (i, r) in bytes.chunks_exact(rec).enumerate() {
            let label = r[rec - 3073];
            if label as usize >= kind.classes() {
                return Err(DataError::Format {
                    path: path.to_path_buf(),
                    reason: format!(
                        "record {i} has label {label}, expected 0..{}",
                        kind.classes()
                    ),
                });
            }
            labels.push(label);
            planes.extend_from_slice(&r[rec - 3072..]);
        }
        Ok(())
    }

    /// All labels in order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }
}

impl Source for Cifar {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn get(&self, index: usize) -> Result<Sample, DataError> {
        if index >= self.len() {
            return Err(DataError::Index {
                index,
                len: self.len(),
            });
        }
        let p = &self.planes[index * 3072..(index + 1) * 3072];
        let mut pixels = vec![0u8; 3072];
        for i in 0..1024 {
            pixels[i * 3] = p[i];
            pixels[i * 3 + 1] = p[1024 + i];
            pixels[i * 3 + 2] = p[2048 + i];
        }
        Ok(Sample {
            image: RgbImage {
                width: 32,
                height: 32,
                pixels,
            },
            label: Some(self.labels[index] as u32),
            index,
        })
    }
    fn num_classes(&self) -> Option<usize> {
        Some(self.kind.classes())
    }
    fn label(&self, index: usize) -> Option<u32> {
        self.labels.get(index).map(|&l| l as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("pc-cifar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.bin");
        std::fs::write(&f, vec![0u8; 3073 * 2 + 100]).unwrap();
        let err = Cifar::open(CifarKind::Cifar10, std::slice::from_ref(&f)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bad.bin") && msg.contains("3073"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn planes_become_rgb_pixels() {
        let mut rec = vec![3u8];
        rec.extend(std::iter::repeat_n(10u8, 1024));
        rec.extend(std::iter::repeat_n(20u8, 1024));
        rec.extend(std::iter::repeat_n(30u8, 1024));
        let (mut l, mut p) = (Vec::new(), Vec::new());
        Cifar::parse(CifarKind::Cifar10, Path::new("x"), &rec, &mut l, &mut p).unwrap();
        let c = Cifar {
            kind: CifarKind::Cifar10,
            labels: l,
            planes: p,
        };
        let s = c.get(0).unwrap();
        assert_eq!(s.label, Some(3));
        assert_eq!(&s.image.pixels[..6], &[10, 20, 30, 10, 20, 30]);
    }
}
