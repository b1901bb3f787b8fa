//! A temporary file beside an output, for rows written as they are computed; removed when
//! dropped (after the output is written, or on any error).

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Little-endian f32 rows appended to a temporary file next to `out`.
pub struct Spill {
    path: PathBuf,
    writer: BufWriter<File>,
    values: usize,
}

impl Spill {
    /// Creates `OUT.spill-PID` beside `out` (same file system, so the space is checked where
    /// the output goes).
    pub fn beside(out: &Path) -> Result<Self> {
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        let path = out.with_file_name(format!("{name}.spill-{}", std::process::id()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
        }
        let file = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("{}", path.display()))?;
        Ok(Self {
            path,
            writer: BufWriter::with_capacity(1 << 20, file),
            values: 0,
        })
    }

    /// Appends `rows`.
    pub fn push(&mut self, rows: &[f32]) -> Result<()> {
        for v in rows {
            self.writer
                .write_all(&v.to_le_bytes())
                .with_context(|| format!("{}", self.path.display()))?;
        }
        self.values += rows.len();
        Ok(())
    }

    /// Values written so far.
    pub fn values(&self) -> usize {
        self.values
    }

    /// The file with every value written, to read back from the start.
    pub fn finish(&mut self) -> Result<&File> {
        self.writer
            .flush()
            .with_context(|| format!("{}", self.path.display()))?;
        Ok(self.writer.get_ref())
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
