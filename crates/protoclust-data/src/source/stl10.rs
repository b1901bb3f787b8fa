//! STL-10 in the official binary layout (`*_X.bin` images, `*_y.bin` 1-based labels).

use super::{Sample, Source};
use crate::{DataError, RgbImage};
use std::path::Path;

const SIDE: usize = 96;
const BYTES: usize = SIDE * SIDE * 3;

/// STL-10 images held in memory (unlabeled, train or test split).
#[derive(Debug, Clone)]
pub struct Stl10 {
    images: Vec<u8>,
    labels: Option<Vec<u8>>,
}

impl Stl10 {
    /// Reads an `X` file and, for labelled splits, its `y` file.
    pub fn open(x: &Path, y: Option<&Path>) -> Result<Self, DataError> {
        let images = std::fs::read(x).map_err(|error| DataError::Io {
            path: x.to_path_buf(),
            error,
        })?;
        if images.is_empty() || images.len() % BYTES != 0 {
            return Err(DataError::Format {
                path: x.to_path_buf(),
                reason: format!(
                    "{} bytes is not a whole number of {BYTES}-byte 96x96 STL-10 images",
                    images.len()
                ),
            });
        }
        let n = images.len() / BYTES;
        let labels = match y {
            None => None,
            Some(y) => {
                let l = std::fs::read(y).map_err(|error| DataError::Io {
                    path: y.to_path_buf(),
                    error,
                })?;
                if l.len() != n || l.iter().any(|&v| !(1..=10).contains(&v)) {
                    return Err(DataError::Format {
                        path: y.to_path_buf(),
                        reason: format!("expected {n} labels in 1..=10, found {} bytes", l.len()),
                    });
                }
                Some(l.into_iter().map(|v| v - 1).collect())
            }
        };
        Ok(Self { images, labels })
    }
}

impl Source for Stl10 {
    fn len(&self) -> usize {
        self.images.len() / BYTES
    }
    fn get(&self, index: usize) -> Result<Sample, DataError> {
        if index >= self.len() {
            return Err(DataError::Index {
                index,
                len: self.len(),
            });
        }
        // Each channel plane is stored column-major.
        let src = &self.images[index * BYTES..(index + 1) * BYTES];
        let mut pixels = vec![0u8; BYTES];
        for c in 0..3 {
            for x in 0..SIDE {
                for y in 0..SIDE {
                    pixels[(y * SIDE + x) * 3 + c] = src[c * SIDE * SIDE + x * SIDE + y];
                }
            }
        }
        Ok(Sample {
            image: RgbImage {
                width: SIDE,
                height: SIDE,
                pixels,
            },
            label: self.label(index),
            index,
        })
    }
    fn num_classes(&self) -> Option<usize> {
        self.labels.as_ref().map(|_| 10)
    }
    fn label(&self, index: usize) -> Option<u32> {
        self.labels
            .as_ref()
            .and_then(|l| l.get(index))
            .map(|&v| v as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_major_planes_and_one_based_labels() {
        let dir = std::env::temp_dir().join(format!("pc-stl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut x = vec![0u8; BYTES * 2];
        // Image 1, green plane, column x = 5, row y = 2.
        x[BYTES + SIDE * SIDE + 5 * SIDE + 2] = 200;
        std::fs::write(dir.join("x.bin"), &x).unwrap();
        std::fs::write(dir.join("y.bin"), [3u8, 10]).unwrap();
        let s = Stl10::open(&dir.join("x.bin"), Some(&dir.join("y.bin"))).unwrap();
        let img = s.get(1).unwrap();
        assert_eq!(img.label, Some(9));
        assert_eq!(img.image.pixels[(2 * SIDE + 5) * 3 + 1], 200);
        std::fs::write(dir.join("y.bin"), [0u8, 10]).unwrap();
        let e = Stl10::open(&dir.join("x.bin"), Some(&dir.join("y.bin"))).unwrap_err();
        assert!(e.to_string().contains("y.bin"));
    }
}
