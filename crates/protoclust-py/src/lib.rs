//! `protoclust._native`: the Rust side of the Python package. Long calls run with the GIL
//! released; the typed public API lives in `python/protoclust/`.

mod errors;
mod eval;
mod images;
mod model;
mod pool;
mod train;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ProtoclustError", py.get_type::<errors::ProtoclustError>())?;
    m.add("ConfigError", py.get_type::<errors::ConfigError>())?;
    m.add("DataError", py.get_type::<errors::DataError>())?;
    m.add("CheckpointError", py.get_type::<errors::CheckpointError>())?;
    m.add("METHODS", protoclust::config::METHODS.to_vec())?;
    m.add("BUILT_WITH", protoclust::device::built_with())?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(eval::knn, m)?)?;
    m.add_function(wrap_pyfunction!(eval::cluster_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(eval::linear_probe, m)?)?;
    m.add_class::<model::Model>()?;
    Ok(())
}
