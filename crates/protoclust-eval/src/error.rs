//! Why an evaluation could not run.

use protoclust_data::DataError;

/// An evaluation failure: bad data or settings.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Reading or augmenting the data failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A setting or input is out of range.
    #[error("{0}")]
    Invalid(String),
}
