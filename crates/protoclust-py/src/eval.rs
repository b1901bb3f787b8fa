//! Evaluation on features from anywhere (NumPy arrays): weighted kNN, clustering agreement and
//! the linear probe.

use crate::errors::{as_py, Kind};
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use protoclust_eval::{
    cluster_agreement, knn_classify, linear_probe_features, Features, LinearProbeConfig,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Features with labels from a float32 N × D array and int64 labels.
fn features(
    x: &PyReadonlyArray2<'_, f32>,
    y: &PyReadonlyArray1<'_, i64>,
    side: &str,
) -> PyResult<Features> {
    let [n, dim] = <[usize; 2]>::try_from(x.shape()).expect("two dimensions");
    if y.len() != n {
        return Err(PyValueError::new_err(format!(
            "{side}: {n} feature rows but {} labels",
            y.len()
        )));
    }
    let labels = y
        .as_array()
        .iter()
        .map(|&l| {
            u32::try_from(l)
                .map(Some)
                .map_err(|_| PyValueError::new_err(format!("{side} labels: {l}: expected >= 0")))
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Features {
        dim,
        data: x.as_array().iter().copied().collect(),
        labels,
        indices: (0..n).collect(),
        skipped: 0,
    })
}

/// Number of classes: one more than the largest label of either side.
fn classes(a: &Features, b: &Features) -> usize {
    a.labels
        .iter()
        .chain(&b.labels)
        .flatten()
        .max()
        .map_or(0, |&m| m as usize + 1)
}

/// Weighted kNN (cosine similarity, exp(sim/T) votes); returns (top-1, top-5) in percent.
#[pyfunction]
#[pyo3(signature = (train_x, train_y, test_x, test_y, k, temperature))]
pub fn knn(
    py: Python<'_>,
    train_x: PyReadonlyArray2<'_, f32>,
    train_y: PyReadonlyArray1<'_, i64>,
    test_x: PyReadonlyArray2<'_, f32>,
    test_y: PyReadonlyArray1<'_, i64>,
    k: usize,
    temperature: f64,
) -> PyResult<(f64, f64)> {
    let tr = features(&train_x, &train_y, "train")?;
    let te = features(&test_x, &test_y, "test")?;
    let c = classes(&tr, &te);
    let r = py
        .detach(|| {
            let dev = protoclust::device::select()?;
            knn_classify(&tr, &te, &[(k, temperature)], c, &dev).map_err(|e| anyhow::anyhow!("{e}"))
        })
        .map_err(|e| PyValueError::new_err(protoclust::error_line(&e)))?;
    Ok((r[0].top1, r[0].top5))
}

/// NMI, ARI and Hungarian accuracy (percent) of cluster ids against labels.
#[pyfunction]
pub fn cluster_metrics(
    pred: PyReadonlyArray1<'_, i64>,
    truth: PyReadonlyArray1<'_, i64>,
) -> PyResult<(f64, f64, f64)> {
    if pred.len() != truth.len() {
        return Err(PyValueError::new_err(format!(
            "{} predictions but {} labels",
            pred.len(),
            truth.len()
        )));
    }
    let ids = |a: &PyReadonlyArray1<'_, i64>, side: &str| -> PyResult<Vec<usize>> {
        a.as_array()
            .iter()
            .map(|&v| {
                usize::try_from(v)
                    .map_err(|_| PyValueError::new_err(format!("{side}: {v}: expected ids >= 0")))
            })
            .collect()
    };
    let a = cluster_agreement(&ids(&pred, "pred")?, &ids(&truth, "truth")?);
    Ok((a.nmi, a.ari, a.accuracy))
}

/// The linear probe on fixed features; returns its result (every rate's run, the chosen one)
/// as a dict.
#[pyfunction]
#[pyo3(signature = (train_x, train_y, test_x, test_y, *, lrs, epochs, batch_size, val_fraction, seed))]
#[allow(clippy::too_many_arguments)]
pub fn linear_probe<'py>(
    py: Python<'py>,
    train_x: PyReadonlyArray2<'py, f32>,
    train_y: PyReadonlyArray1<'py, i64>,
    test_x: PyReadonlyArray2<'py, f32>,
    test_y: PyReadonlyArray1<'py, i64>,
    lrs: Vec<f64>,
    epochs: usize,
    batch_size: usize,
    val_fraction: f64,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let tr = features(&train_x, &train_y, "train")?;
    let te = features(&test_x, &test_y, "test")?;
    let cfg = LinearProbeConfig {
        epochs,
        batch_size,
        lrs,
        val_fraction,
        seed,
        ..Default::default()
    };
    let r = py
        .detach(|| {
            let dev = protoclust::device::select()?;
            linear_probe_features(&tr, &te, &cfg, &dev).map_err(anyhow::Error::from)
        })
        .map_err(as_py(Kind::Data))?;
    let v = pythonize::pythonize(py, &r).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(v.cast_into::<PyDict>()?)
}
