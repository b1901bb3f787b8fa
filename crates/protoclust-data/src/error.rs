//! Errors of the data layer; each names the file or field at fault.

use std::path::PathBuf;

/// What went wrong reading or transforming data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read. (The OS error is part of the message, not a `source`: an
    /// error chain printed with its causes would say it twice.)
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A file's size or content does not match its declared format.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was expected and what was found.
        reason: String,
    },
    /// An image could not be decoded.
    #[error("{path}: cannot decode image: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("{field}: {reason}")]
    Config {
        /// The offending field.
        field: String,
        /// What was expected.
        reason: String,
    },
    /// A sample index beyond the source.
    #[error("sample index {index} out of range (source has {len})")]
    Index {
        /// Requested index.
        index: usize,
        /// Number of samples.
        len: usize,
    },
}

impl DataError {
    /// True for errors that concern one image only (which a lenient loader may skip).
    pub fn is_per_sample(&self) -> bool {
        matches!(self, DataError::Decode { .. })
    }
}
