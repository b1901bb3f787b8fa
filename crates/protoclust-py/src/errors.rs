//! Rust errors as Python exceptions: `ProtoclustError` and its kinds, with the CLI's one-line
//! message.

use protoclust_train::TrainError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;

create_exception!(
    protoclust,
    ProtoclustError,
    PyException,
    "Any error of protoclust."
);
create_exception!(
    protoclust,
    ConfigError,
    ProtoclustError,
    "A configuration that cannot be used."
);
create_exception!(
    protoclust,
    DataError,
    ProtoclustError,
    "Images or labels that cannot be read."
);
create_exception!(
    protoclust,
    CheckpointError,
    ProtoclustError,
    "A checkpoint or model file that cannot be read or written."
);

/// Which exception an error becomes when nothing in its chain says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The configuration.
    Config,
    /// The data.
    Data,
    /// A model file.
    Checkpoint,
    /// Anything else.
    Other,
}

/// The kind the error's own chain names (data and checkpoint errors of the library crates).
fn kind_in_chain(e: &anyhow::Error) -> Option<Kind> {
    e.chain().find_map(|c| {
        if c.is::<protoclust::preflight::Refused>() {
            return Some(Kind::Config);
        }
        if c.is::<protoclust_data::DataError>() {
            return Some(Kind::Data);
        }
        if c.is::<protoclust_nn::io::IoError>() {
            return Some(Kind::Checkpoint);
        }
        match c.downcast_ref::<TrainError>() {
            Some(TrainError::Data(_)) => Some(Kind::Data),
            Some(TrainError::Io(_) | TrainError::Resume { .. }) => Some(Kind::Checkpoint),
            _ => None,
        }
    })
}

/// The Python exception of `e`: its chain's kind, else `default`, with the CLI's message.
pub fn to_py(e: anyhow::Error, default: Kind) -> PyErr {
    let msg = protoclust::error_line(&e);
    match kind_in_chain(&e).unwrap_or(default) {
        Kind::Config => ConfigError::new_err(msg),
        Kind::Data => DataError::new_err(msg),
        Kind::Checkpoint => CheckpointError::new_err(msg),
        Kind::Other => ProtoclustError::new_err(msg),
    }
}

/// `to_py` with a fixed default, for `map_err`.
pub fn as_py(default: Kind) -> impl Fn(anyhow::Error) -> PyErr {
    move |e| to_py(e, default)
}
