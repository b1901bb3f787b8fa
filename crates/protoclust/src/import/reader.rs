//! A released checkpoint's tensors by dotted name: PyTorch files of every container
//! (`pytorch-reader`: ZIP, legacy pickle stream, TAR, plain pickle; nested dictionaries
//! flattened; unknown Python objects kept opaque, nothing executed) or safetensors with torch
//! names. Shapes are read at open, values only when taken.

use anyhow::{bail, Context, Result};
use protoclust_nn::named::HostTensor;
use pytorch_reader::{DType, PytorchReader};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Where the values come from.
enum Values {
    /// A PyTorch file: each tensor read from the file when taken.
    Torch(HashMap<String, pytorch_reader::Tensor>),
    /// A safetensors file, already in memory.
    Safetensors(BTreeMap<String, HostTensor>),
}

/// An opened checkpoint.
pub struct Source {
    path: PathBuf,
    /// Every floating-point tensor's shape by dotted name.
    pub shapes: BTreeMap<String, Vec<usize>>,
    values: Values,
    /// The container, for the provenance record (`zip`, `legacy`, `tar`, `pickle`, `safetensors`).
    pub container: String,
    /// A file protoclust wrote (a checkpoint or a backbone export), not a release.
    pub native: bool,
    /// The temporary copy the values are read from when the file needed [`zip64_marked_copy`].
    _copy: Option<tempfile::TempPath>,
}

/// Whether the file starts as a PyTorch container does (ZIP, a pickle of protocol 2 to 5, TAR)
/// and not as safetensors (an 8-byte length, then the JSON header's `{`).
pub fn looks_like_torch(path: &Path) -> bool {
    use std::io::Read;
    let mut b = [0u8; 262];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut b))
        .unwrap_or(0);
    if n > 8 && b[8] == b'{' {
        return false;
    }
    (n >= 4 && &b[..4] == b"PK\x03\x04")
        || (n >= 2 && b[0] == 0x80 && (2..=5).contains(&b[1]))
        || (n >= 262 && &b[257..262] == b"ustar")
}

/// A temporary copy of a PyTorch ZIP checkpoint that zip 9.9 misreads, or `None` for any other
/// file. PyTorch always writes a zip64 end record and its locator (76 bytes) before the 32-bit
/// end record; zip 9.9 reads the zip64 record only when the 32-bit one holds a 0xFFFF… marker,
/// and otherwise takes the directory to start 76 bytes before where it ends. When the first
/// directory entry (`<folder>/data.pkl`) is itself 76 bytes long, which is a 21-character folder
/// name, that is the second entry, and the archive fails with "Invalid Central Directory header".
/// The copy's 32-bit record carries the marker in its directory offset, so the zip64 record's
/// values are used; the user's file is not touched.
fn zip64_marked_copy(path: &Path) -> std::io::Result<Option<tempfile::TempPath>> {
    use std::io::{Read, Seek, SeekFrom, Write};
    const EOCD: usize = 22;
    const LOCATOR: usize = 20;
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len < (EOCD + LOCATOR) as u64 {
        return Ok(None);
    }
    let mut tail = [0u8; EOCD + LOCATOR];
    f.seek(SeekFrom::End(-((EOCD + LOCATOR) as i64)))?;
    f.read_exact(&mut tail)?;
    let (locator, eocd) = tail.split_at(LOCATOR);
    let no_comment = eocd[20..22] == [0, 0];
    if !(locator.starts_with(b"PK\x06\x07") && eocd.starts_with(b"PK\x05\x06") && no_comment) {
        return Ok(None);
    }
    let mut copy = tempfile::Builder::new()
        .prefix("protoclust-import-")
        .tempfile()?;
    f.seek(SeekFrom::Start(0))?;
    std::io::copy(&mut f, copy.as_file_mut())?;
    let out = copy.as_file_mut();
    out.seek(SeekFrom::Start(len - EOCD as u64 + 16))?;
    out.write_all(&u32::MAX.to_le_bytes())?;
    out.flush()?;
    Ok(Some(copy.into_temp_path()))
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
}

impl Source {
    /// Opens `path` (the container is told by its bytes, not its name).
    pub fn open(path: &Path) -> Result<Self> {
        let at = || format!("{}", path.display());
        let mut head = [0u8; 8];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).with_context(at)?;
            let n = f.read(&mut head).with_context(at)?;
            if n < 8 {
                bail!("{}: {n} bytes: not a checkpoint", path.display());
            }
        }
        // Safetensors: an 8-byte header length, then a JSON object.
        let header = u64::from_le_bytes(head);
        let len = std::fs::metadata(path).with_context(at)?.len();
        if header > 1 && header + 8 <= len && !head.starts_with(b"PK") {
            if let Ok((tensors, meta)) = protoclust_nn::io::load(path) {
                return Ok(Self {
                    native: crate::import::is_native(&meta),
                    path: path.to_path_buf(),
                    shapes: tensors
                        .iter()
                        .map(|(k, v)| (k.clone(), v.shape.clone()))
                        .collect(),
                    values: Values::Safetensors(tensors),
                    container: "safetensors".into(),
                    _copy: None,
                });
            }
        }
        let unreadable = |e: pytorch_reader::PytorchError| {
            anyhow::anyhow!(
                "{}: not a readable PyTorch checkpoint or safetensors file ({e})",
                path.display()
            )
        };
        let (reader, copy) = match PytorchReader::new(path) {
            Ok(r) => (r, None),
            Err(first) => match zip64_marked_copy(path).with_context(at)? {
                Some(copy) => (PytorchReader::new(&copy).map_err(unreadable)?, Some(copy)),
                None => return Err(unreadable(first)),
            },
        };
        let container = format!("{:?}", reader.metadata().format_type).to_lowercase();
        let tensors: HashMap<String, pytorch_reader::Tensor> = reader
            .into_tensors()
            .into_iter()
            .filter(|(_, t)| is_float(t.dtype()))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            shapes: tensors
                .iter()
                .map(|(k, t)| (k.clone(), t.shape().to_vec()))
                .collect(),
            values: Values::Torch(tensors),
            container,
            native: false,
            _copy: copy,
        })
    }

    /// The values of `key` as f32 (removed from the source: each tensor is read once).
    pub fn take(&mut self, key: &str) -> Result<HostTensor> {
        let missing = || anyhow::anyhow!("{}: missing tensor `{key}`", self.path.display());
        match &mut self.values {
            Values::Safetensors(m) => m.remove(key).ok_or_else(missing),
            Values::Torch(m) => {
                let t = m.remove(key).ok_or_else(missing)?;
                let bytes = t
                    .read()
                    .map_err(|e| anyhow::anyhow!("{}: tensor `{key}`: {e}", self.path.display()))?;
                let data = to_f32(t.dtype(), &bytes);
                Ok(HostTensor {
                    shape: t.shape().to_vec(),
                    data,
                })
            }
        }
    }
}

/// Little-endian floating-point bytes as f32 (f64 rounded to nearest).
fn to_f32(d: DType, b: &[u8]) -> Vec<f32> {
    match d {
        DType::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        DType::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn released(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/released")
            .join(name)
    }

    #[test]
    fn a_zip_with_a_21_character_folder_is_read_from_a_marked_copy() {
        // `solo_deepclusterv2_w8` is 21 characters: zip 9.9 alone refuses the file.
        let src = released("solo_deepclusterv2_w8.ckpt");
        assert!(PytorchReader::new(&src).is_err());
        let copy = zip64_marked_copy(&src).unwrap().expect("a PyTorch zip");
        let (a, b) = (std::fs::read(&src).unwrap(), std::fs::read(&copy).unwrap());
        let differing: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        assert_eq!(a.len(), b.len());
        assert!(differing.len() <= 4 && differing.iter().all(|&i| i >= a.len() - 6));
        let opened = Source::open(&src).unwrap();
        assert_eq!(opened.container, "zip");
        assert!(opened.shapes.contains_key("state_dict.prototypes.2.weight"));
        // Other containers are not copied.
        assert!(zip64_marked_copy(&released("swav_w8.pth.tar"))
            .unwrap()
            .is_none());
    }
}
