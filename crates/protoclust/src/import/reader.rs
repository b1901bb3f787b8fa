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
                });
            }
        }
        let reader = PytorchReader::new(path).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a readable PyTorch checkpoint or safetensors file ({e})",
                path.display()
            )
        })?;
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
