//! Tensor files: safetensors read/write of named host tensors, written atomically.

use crate::named::HostTensor;
use safetensors::tensor::{Dtype, SafeTensors};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a tensor file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The OS refused. (The OS error is part of the message, not a `source`: an error chain
    /// printed with its causes would say it twice.)
    #[error("{path}: {error}")]
    Os {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file is not a valid safetensors file or holds an unexpected tensor.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Tensors by name.
pub type NamedTensors = BTreeMap<String, HostTensor>;

/// Writes `bytes` to `path` atomically: a temporary file beside it, flushed, renamed, and the
/// directory synced, so a crash never leaves a half-written file under the final name. On any
/// failure (a full disk included) the temporary file is removed and `path` is untouched.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    atomic_write_via(path, bytes, |p| std::fs::File::create(p))
}

/// A file being written: bytes, then durable.
pub trait Sink: Write {
    /// Flushes the contents to the device.
    fn sync(&mut self) -> std::io::Result<()>;
}

impl Sink for std::fs::File {
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_all()
    }
}

/// [`atomic_write`] through the sink `create` opens for the temporary path (a seam for tests
/// that inject a full disk).
pub fn atomic_write_via<S: Sink>(
    path: &Path,
    bytes: &[u8],
    create: impl FnOnce(&Path) -> std::io::Result<S>,
) -> Result<(), IoError> {
    atomic_write_with(path, create, |f| f.write_all(bytes))
}

/// [`atomic_write`] of what `write` streams into the sink (large files need not be in memory
/// whole).
pub fn atomic_write_with<S: Sink>(
    path: &Path,
    create: impl FnOnce(&Path) -> std::io::Result<S>,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), IoError> {
    let os = |error| IoError::Os {
        path: path.to_path_buf(),
        error,
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(os)?;
    }
    let tmp = path.with_extension(format!(
        "{}.tmp-{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    let written = create(&tmp).and_then(|f| {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, f);
        write(&mut f)?;
        f.flush()?;
        f.into_inner().map_err(|e| e.into_error())?.sync()
    });
    if let Err(error) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(os(error));
    }
    // The rename itself is durable only once the directory is.
    #[cfg(unix)]
    if let Some(dir) = dir {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(os)?;
    }
    Ok(())
}

/// Metadata key of the checksum every file written here carries.
pub const CHECKSUM_KEY: &str = "protoclust_crc32";

/// CRC-32 over the tensors in name order: each name, dtype, shape and raw bytes (read from
/// their files where they are [`Spilled`]).
fn checksum<'a>(
    tensors: impl Iterator<Item = (&'a str, Dtype, &'a [usize], Bytes<'a>)>,
) -> std::io::Result<String> {
    let mut h = crc32fast::Hasher::new();
    for (name, dtype, shape, data) in tensors {
        h.update(name.as_bytes());
        h.update(format!("{dtype:?}{shape:?}").as_bytes());
        data.each_chunk(&mut |c| {
            h.update(c);
            Ok(())
        })?;
    }
    Ok(format!("{:08x}", h.finalize()))
}

/// A tensor's little-endian bytes: in memory, or the first `len` bytes of a file (rows spilled
/// to disk as they were computed).
enum Bytes<'a> {
    Memory(Cow<'a, [u8]>),
    File(&'a std::fs::File, usize),
}

impl Bytes<'_> {
    /// The same bytes, borrowed.
    fn borrowed(&self) -> Bytes<'_> {
        match self {
            Bytes::Memory(b) => Bytes::Memory(Cow::Borrowed(b)),
            Bytes::File(file, len) => Bytes::File(file, *len),
        }
    }

    fn len(&self) -> usize {
        match self {
            Bytes::Memory(b) => b.len(),
            Bytes::File(_, len) => *len,
        }
    }

    /// Hands the bytes to `f` in order, a file's in 1 MiB chunks.
    fn each_chunk(&self, f: &mut dyn FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()> {
        match self {
            Bytes::Memory(b) => f(b),
            Bytes::File(file, len) => {
                use std::io::{Read, Seek, SeekFrom};
                let mut file: &std::fs::File = file;
                file.seek(SeekFrom::Start(0))?;
                let mut buf = vec![0u8; (1 << 20).min(*len)];
                let mut left = *len;
                while left > 0 {
                    let n = left.min(buf.len());
                    file.read_exact(&mut buf[..n])?;
                    f(&buf[..n])?;
                    left -= n;
                }
                Ok(())
            }
        }
    }
}

/// An f32 tensor whose little-endian values were written to a file as they were computed:
/// its `shape`, and the file (read from the start, `shape`'s product of values).
pub struct Spilled<'a> {
    /// The values, little-endian f32 from offset 0.
    pub file: &'a std::fs::File,
    /// The tensor's shape.
    pub shape: Vec<usize>,
}

/// A tensor to write: f32 host values, or i64 values (e.g. `num_batches_tracked`).
pub enum OutTensor {
    /// 32-bit floats.
    F32(HostTensor),
    /// 64-bit integers with a shape.
    I64(Vec<usize>, Vec<i64>),
}

/// A tensor to write, borrowed.
#[derive(Clone, Copy)]
pub enum OutRef<'a> {
    /// 32-bit floats.
    F32(&'a HostTensor),
    /// 64-bit integers with a shape.
    I64(&'a [usize], &'a [i64]),
}

impl OutTensor {
    /// Borrowed.
    pub fn as_ref(&self) -> OutRef<'_> {
        match self {
            OutTensor::F32(h) => OutRef::F32(h),
            OutTensor::I64(s, v) => OutRef::I64(s, v),
        }
    }
}

/// Little-endian bytes of a slice of plain numbers (borrowed on little-endian machines).
fn le_bytes<T: bytemuck::Pod>(v: &[T], to_le: impl Fn(&T) -> Vec<u8>) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(v))
    } else {
        Cow::Owned(v.iter().flat_map(to_le).collect())
    }
}

/// A tensor's dtype, shape and little-endian bytes.
type Parts<'a> = (Dtype, &'a [usize], Cow<'a, [u8]>);

impl<'a> OutRef<'a> {
    fn parts(self) -> Parts<'a> {
        match self {
            OutRef::F32(h) => (
                Dtype::F32,
                &h.shape,
                le_bytes(&h.data, |x| x.to_le_bytes().to_vec()),
            ),
            OutRef::I64(shape, v) => (Dtype::I64, shape, le_bytes(v, |x| x.to_le_bytes().to_vec())),
        }
    }
}

/// A tensor's dtype, shape and byte length without its bytes: the header alone.
struct Shell {
    dtype: Dtype,
    shape: Vec<usize>,
    len: usize,
}

impl safetensors::View for &Shell {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&[])
    }
    fn data_len(&self) -> usize {
        self.len
    }
}

/// Streams named tensors and string metadata as a safetensors file into `w`: the header (keys
/// sorted, see [`canonical_header`]), then each tensor's bytes straight from its values.
pub fn write_safetensors(
    w: &mut dyn Write,
    tensors: &BTreeMap<String, OutRef<'_>>,
    metadata: HashMap<String, String>,
) -> std::io::Result<()> {
    write_with_spilled(w, tensors, &BTreeMap::new(), metadata)
}

/// [`write_safetensors`] with more f32 tensors read from files ([`Spilled`]); the bytes are
/// those of the same tensors written from memory.
pub fn write_with_spilled(
    w: &mut dyn Write,
    tensors: &BTreeMap<String, OutRef<'_>>,
    spilled: &BTreeMap<String, Spilled<'_>>,
    metadata: HashMap<String, String>,
) -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut bytes: BTreeMap<&str, (Dtype, &[usize], Bytes<'_>)> = tensors
        .iter()
        .map(|(k, t)| {
            let (d, s, b) = t.parts();
            (k.as_str(), (d, s, Bytes::Memory(b)))
        })
        .collect();
    for (k, t) in spilled {
        let len = t.shape.iter().product::<usize>() * 4;
        if bytes
            .insert(k.as_str(), (Dtype::F32, &t.shape, Bytes::File(t.file, len)))
            .is_some()
        {
            return Err(invalid(format!("tensor `{k}` given twice")));
        }
    }
    let mut metadata = metadata;
    metadata.insert(
        CHECKSUM_KEY.to_string(),
        checksum(
            bytes
                .iter()
                .map(|(k, (d, s, b))| (*k, *d, *s, b.borrowed())),
        )?,
    );
    let shells: Vec<(String, Shell)> = bytes
        .iter()
        .map(|(k, (d, s, b))| {
            let shell = Shell {
                dtype: *d,
                shape: s.to_vec(),
                len: b.len(),
            };
            if shell.shape.iter().product::<usize>() * d.bitsize() / 8 != b.len() {
                return Err(invalid(format!(
                    "tensor `{k}`: shape {s:?} does not match its values"
                )));
            }
            Ok((k.to_string(), shell))
        })
        .collect::<Result<_, _>>()?;
    let head = safetensors::tensor::serialize(shells.iter().map(|(k, s)| (k, s)), Some(metadata))
        .map_err(|e| invalid(e.to_string()))?;
    let head = canonical_header(head).map_err(invalid)?;
    w.write_all(&head)?;
    // The bytes in the order of their offsets in the header.
    let n =
        u64::from_le_bytes(head[..8].try_into().map_err(|_| invalid("header".into()))?) as usize;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&head[8..8 + n]).map_err(|e| invalid(e.to_string()))?;
    let mut order: Vec<(u64, &str)> = header
        .iter()
        .filter_map(|(k, v)| Some((v.get("data_offsets")?.get(0)?.as_u64()?, k.as_str())))
        .collect();
    order.sort();
    for (_, name) in order {
        bytes[name].2.each_chunk(&mut |c| w.write_all(c))?;
    }
    Ok(())
}

/// Serialises named tensors and string metadata to safetensors bytes.
pub fn to_safetensors(
    tensors: &BTreeMap<String, OutTensor>,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, String> {
    let refs = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.as_ref()))
        .collect();
    let mut out = Vec::new();
    write_safetensors(&mut out, &refs, metadata).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The same file with its JSON header's keys in sorted order: safetensors writes the metadata
/// map in a per-process hash order, so identical tensors and metadata would otherwise give
/// different bytes. The header keeps its length (same entries, spaces pad as before).
fn canonical_header(mut bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    let n = u64::from_le_bytes(bytes[..8].try_into().map_err(|_| "short header")?) as usize;
    let text = std::str::from_utf8(&bytes[8..8 + n]).map_err(|e| e.to_string())?;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(text.trim_end()).map_err(|e| e.to_string())?;
    let mut sorted = BTreeMap::new();
    for (k, v) in header {
        let v = match v {
            serde_json::Value::Object(m) => {
                let m: BTreeMap<String, serde_json::Value> = m.into_iter().collect();
                serde_json::to_value(m).map_err(|e| e.to_string())?
            }
            v => v,
        };
        sorted.insert(k, v);
    }
    let mut json = serde_json::to_string(&sorted).map_err(|e| e.to_string())?;
    if json.len() > n {
        return Err(format!(
            "canonical header of {} bytes exceeds {n}",
            json.len()
        ));
    }
    json.extend(std::iter::repeat_n(' ', n - json.len()));
    bytes[8..8 + n].copy_from_slice(json.as_bytes());
    Ok(bytes)
}

/// Writes f32 tensors and metadata to `path` atomically.
pub fn save(
    path: &Path,
    tensors: &BTreeMap<String, HostTensor>,
    metadata: HashMap<String, String>,
) -> Result<(), IoError> {
    let refs = tensors
        .iter()
        .map(|(k, v)| (k.clone(), OutRef::F32(v)))
        .collect();
    save_refs(path, &refs, metadata)
}

/// Writes f32/i64 tensors and metadata to `path` atomically.
pub fn save_mixed(
    path: &Path,
    tensors: &BTreeMap<String, OutTensor>,
    metadata: HashMap<String, String>,
) -> Result<(), IoError> {
    let refs = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.as_ref()))
        .collect();
    save_refs(path, &refs, metadata)
}

/// Writes borrowed tensors and metadata to `path` atomically, streaming (no copy of the
/// tensors is made).
pub fn save_refs(
    path: &Path,
    tensors: &BTreeMap<String, OutRef<'_>>,
    metadata: HashMap<String, String>,
) -> Result<(), IoError> {
    atomic_write_with(
        path,
        |p| std::fs::File::create(p),
        |w| write_safetensors(w, tensors, metadata),
    )
}

/// [`save_refs`] with more f32 tensors read from files ([`Spilled`]; e.g. features written batch
/// by batch, so a long run keeps none of them in memory).
pub fn save_with_spilled(
    path: &Path,
    tensors: &BTreeMap<String, OutRef<'_>>,
    spilled: &BTreeMap<String, Spilled<'_>>,
    metadata: HashMap<String, String>,
) -> Result<(), IoError> {
    atomic_write_with(
        path,
        |p| std::fs::File::create(p),
        |w| write_with_spilled(w, tensors, spilled, metadata),
    )
}

/// Reads every f32 tensor of a safetensors file, with its metadata.
pub fn load(path: &Path) -> Result<(NamedTensors, HashMap<String, String>), IoError> {
    let bytes = std::fs::read(path).map_err(|error| IoError::Os {
        path: path.to_path_buf(),
        error,
    })?;
    let fmt = |reason: String| IoError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| fmt(format!("not a safetensors file ({e})")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| fmt(format!("not a safetensors file ({e})")))?;
    if let Some(stored) = metadata.get(CHECKSUM_KEY) {
        let mut views = st.tensors();
        views.sort_by(|a, b| a.0.cmp(&b.0));
        let computed = checksum(views.iter().map(|(k, v)| {
            let data = Bytes::Memory(Cow::Borrowed(v.data()));
            (k.as_str(), v.dtype(), v.shape(), data)
        }))
        .map_err(|e| fmt(e.to_string()))?;
        if &computed != stored {
            return Err(fmt(format!(
                "corrupt: checksum {computed} does not match the stored {stored}"
            )));
        }
    }
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::I64 => view
                .data()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            other => {
                return Err(fmt(format!(
                    "tensor `{name}` has dtype {other:?}, expected F32"
                )))
            }
        };
        out.insert(
            name,
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok((out, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spilled_tensor_gives_the_bytes_of_the_same_tensor_in_memory() {
        let dir = std::env::temp_dir().join(format!("pc-io-spill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // More than one 1 MiB read chunk, and a partial last one.
        let (rows, dim) = (1300, 257);
        let values: Vec<f32> = (0..rows * dim).map(|i| (i as f32 * 0.37).sin()).collect();
        let spill_path = dir.join("rows.spill");
        let mut spill = std::fs::File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&spill_path)
            .unwrap();
        for chunk in values.chunks(dim * 97) {
            spill.write_all(bytemuck::cast_slice(chunk)).unwrap();
        }
        let host = HostTensor {
            shape: vec![rows, dim],
            data: values,
        };
        let idx: Vec<i64> = (0..rows as i64).rev().collect();
        let idx_shape = [rows];
        let mut mem = BTreeMap::new();
        mem.insert("features".to_string(), OutRef::F32(&host));
        mem.insert("indices".to_string(), OutRef::I64(&idx_shape, &idx));
        let meta = HashMap::from([("k".to_string(), "v".to_string())]);
        let a = dir.join("a.safetensors");
        save_refs(&a, &mem, meta.clone()).unwrap();
        mem.remove("features");
        let spilled = BTreeMap::from([(
            "features".to_string(),
            Spilled {
                file: &spill,
                shape: vec![rows, dim],
            },
        )]);
        let b = dir.join("b.safetensors");
        save_with_spilled(&b, &mem, &spilled, meta).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let (back, _) = load(&b).unwrap();
        assert_eq!(back["features"].data, host.data);
        // A spill shorter than its shape is an error, and nothing is written.
        let short = BTreeMap::from([(
            "features".to_string(),
            Spilled {
                file: &spill,
                shape: vec![rows + 1, dim],
            },
        )]);
        let c = dir.join("c.safetensors");
        assert!(save_with_spilled(&c, &mem, &short, HashMap::new()).is_err());
        assert!(!c.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn round_trip_keeps_values_and_metadata() {
        let dir = std::env::temp_dir().join(format!("pc-io-{}", std::process::id()));
        let path = dir.join("t.safetensors");
        let mut t = BTreeMap::new();
        t.insert(
            "a.b".to_string(),
            HostTensor {
                shape: vec![2, 2],
                data: vec![1.0, -2.5, 3.0, f32::MIN_POSITIVE],
            },
        );
        let mut meta = HashMap::new();
        meta.insert("k".to_string(), "v".to_string());
        save(&path, &t, meta).unwrap();
        let (back, m) = load(&path).unwrap();
        assert_eq!(back, t);
        assert_eq!(m.get("k").map(String::as_str), Some("v"));
        // One flipped bit in the tensor data is caught by the checksum.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("t.safetensors") && err.contains("corrupt"),
            "{err}"
        );
        std::fs::write(&path, b"garbage").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("t.safetensors") && err.contains("not a safetensors"),
            "{err}"
        );
    }

    #[test]
    fn identical_contents_give_identical_bytes_whatever_the_map_order() {
        let mut t = BTreeMap::new();
        t.insert(
            "w".to_string(),
            OutTensor::F32(HostTensor {
                shape: vec![2],
                data: vec![1.0, 2.0],
            }),
        );
        let files: Vec<Vec<u8>> = (0..8)
            .map(|_| {
                // A fresh HashMap per call: its iteration order is seeded per map.
                let meta: HashMap<String, String> = (0..12)
                    .map(|i| (format!("key{i}"), format!("value{i}")))
                    .collect();
                to_safetensors(&t, meta).unwrap()
            })
            .collect();
        assert!(files.iter().all(|f| f == &files[0]));
        let st = SafeTensors::deserialize(&files[0]).unwrap();
        assert_eq!(st.tensor("w").unwrap().shape(), &[2]);
        let (_, meta) = SafeTensors::read_metadata(&files[0]).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["key7"], "value7");
    }

    /// A disk that fills after `room` bytes.
    struct FullDisk {
        file: std::fs::File,
        room: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.file.write(&buf[..n])
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.file.flush()
        }
    }

    impl Sink for FullDisk {
        fn sync(&mut self) -> std::io::Result<()> {
            self.file.sync_all()
        }
    }

    #[test]
    fn a_full_disk_is_a_clear_error_and_the_previous_file_survives() {
        let dir = std::env::temp_dir().join(format!("pc-io-full-{}", std::process::id()));
        let path = dir.join("last.safetensors");
        atomic_write(&path, b"previous checkpoint").unwrap();
        let err = atomic_write_via(&path, &[7u8; 4096], |p| {
            Ok(FullDisk {
                file: std::fs::File::create(p)?,
                room: 1000,
            })
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("last.safetensors") && err.contains("No space left on device"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"previous checkpoint");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "the temporary file is removed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
