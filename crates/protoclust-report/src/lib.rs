//! A self-contained HTML report of a run (`report/index.html`, inline CSS, images beside it):
//! training curves, per-cluster image grids, a 2-D feature map, dense-method overlays and the
//! evaluation tables.

pub mod chart;
pub mod curves;
pub mod embedding;
pub mod grid;
pub mod html;

use std::path::{Path, PathBuf};

pub use grid::{prototype_neighbours, ClusterStrip};
pub use html::{write_report, ClusterSection, FeatureMap, ReportInput};

/// An image file of the report with its caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// File name, relative to the report directory.
    pub file: String,
    /// What it shows.
    pub caption: String,
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A chart or image could not be drawn.
    #[error("cannot draw {path}: {reason}")]
    Draw {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An image of the data set could not be read.
    #[error("data: {0}")]
    Data(String),
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let err = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
