//! `Model`: a checkpoint of any method or an exported backbone, opened once; embeddings,
//! cluster assignments, prototypes and exports from it.

use crate::errors::{as_py, to_py, Kind};
use crate::images::{self, Images};
use burn::tensor::Device;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1};
use protoclust::assign::{assign_each, AssignOptions};
use protoclust::export::{export_backbone, ExportFormat};
use protoclust::model_file::ModelFile;
use protoclust_data::views::CenterView;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// A model file opened for inference.
#[pyclass(frozen, module = "protoclust._native")]
pub struct Model {
    file: ModelFile,
    device: Device,
}

impl Model {
    /// The view `images` are seen through: the run config's evaluation view, else the images'
    /// default.
    fn view(&self, images: &Images) -> CenterView {
        self.file
            .config
            .as_ref()
            .map(|c| c.eval_view.clone())
            .unwrap_or_else(|| images.default_view.clone())
    }
}

/// Rows × columns as a NumPy array that owns the Rust buffer (no copy).
fn matrix<'py, T: numpy::Element>(
    py: Python<'py>,
    data: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    let a = Array2::from_shape_vec((rows, cols), data)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py))
}

#[pymethods]
impl Model {
    /// Opens a training checkpoint of any method (with its head) or an exported backbone.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        py.detach(|| -> anyhow::Result<Self> {
            let device = protoclust::device::select()?;
            let file = ModelFile::open(&path, None, true, &device)?;
            Ok(Self { file, device })
        })
        .map_err(as_py(Kind::Checkpoint))
    }

    /// The file it was read from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.file.path.clone()
    }

    /// The method that trained it ("swav", …), or None for an exported backbone.
    #[getter]
    fn method(&self) -> Option<String> {
        self.file.config.as_ref().map(|c| c.method.clone())
    }

    /// Dimension of the backbone's pooled features.
    #[getter]
    fn feature_dim(&self) -> usize {
        self.file.backbone.out_dim()
    }

    /// Training iterations behind it (None for an exported backbone).
    #[getter]
    fn iteration(&self) -> Option<u64> {
        self.file.iteration
    }

    /// The resolved run config as TOML (None for an exported backbone).
    #[getter]
    fn config_toml(&self) -> PyResult<Option<String>> {
        self.file
            .config
            .as_ref()
            .map(|c| toml::to_string(c).map_err(|e| to_py(e.into(), Kind::Config)))
            .transpose()
    }

    /// Side of the evaluation crop the model's run used (None for an exported backbone).
    #[getter]
    fn image_size(&self) -> Option<usize> {
        self.file.config.as_ref().map(|c| c.eval_view.size)
    }

    /// The method's prototypes (K × D float32), or None.
    #[getter]
    fn prototypes<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArray2<f32>>>> {
        self.file
            .prototypes
            .as_ref()
            .map(|p| {
                let cols = p.shape.get(1).copied().unwrap_or(1);
                matrix(py, p.data.clone(), p.shape[0], cols)
            })
            .transpose()
    }

    /// Pooled backbone features of every image, N × D float32 (rows in image order), with the
    /// convolutions in `precision` ("f32", or "bf16" as PyTorch's autocast on a CPU with
    /// AVX512-BF16).
    #[pyo3(signature = (images, *, batch_size=256, threads=None, precision="f32"))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        batch_size: usize,
        threads: Option<usize>,
        precision: &str,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let precision: protoclust_nn::precision::Precision = precision
            .parse()
            .map_err(|e: String| to_py(anyhow::anyhow!("precision: {e}"), Kind::Config))?;
        let trunk = protoclust_nn::infer::EvalTrunk::new(&self.file.backbone)
            .with_precision(precision)
            .map_err(|e| to_py(anyhow::anyhow!(e), Kind::Config))?;
        let imgs = images::open(images, None)?;
        let view = self.view(&imgs);
        let f = py
            .detach(|| {
                crate::pool::run_on(threads, || {
                    protoclust_eval::extract_trunk(
                        &trunk,
                        imgs.source.clone(),
                        &view,
                        batch_size.max(1),
                        &self.device,
                    )
                    .map_err(anyhow::Error::from)
                })?
            })
            .map_err(as_py(Kind::Data))?;
        if f.skipped > 0 {
            return Err(to_py(
                anyhow::anyhow!(
                    "{} of {} images could not be decoded; embed needs every image (remove them, \
                     or use a data spec whose rows name their index)",
                    f.skipped,
                    imgs.source.len()
                ),
                Kind::Data,
            ));
        }
        let (n, d) = (f.len(), f.dim);
        matrix(py, f.data, n, d)
    }

    /// Every image's cluster: the method's own (prototype or classifier argmax), or spherical
    /// k-means with `k` clusters on the backbone's features; columns as NumPy arrays.
    #[pyo3(signature = (images, *, k=None, fit_images=20000, seed=0, labels=None, threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn assign<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        k: Option<usize>,
        fit_images: usize,
        seed: u64,
        labels: Option<PyReadonlyArray1<'py, i64>>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let imgs = images::open(images, labels)?;
        let view = self.view(&imgs);
        let opts = AssignOptions {
            k,
            fit_images,
            seed,
        };
        let rows = py
            .detach(|| {
                crate::pool::run_on(threads, || {
                    let mut rows = Vec::with_capacity(imgs.source.len());
                    assign_each(&self.file, &imgs.source, &view, &opts, &self.device, |r| {
                        rows.push(r);
                        Ok(())
                    })
                    .map(|()| rows)
                })?
            })
            .map_err(as_py(Kind::Data))?;
        let n = rows.len();
        let mut top = vec![-1i64; n * 5];
        let mut top_p = vec![f32::NAN; n * 5];
        for (i, r) in rows.iter().enumerate() {
            for (j, &(c, p)) in r.top.iter().enumerate() {
                top[i * 5 + j] = c as i64;
                top_p[i * 5 + j] = p;
            }
        }
        let col = |f: &dyn Fn(&protoclust::assign::Assignment) -> i64| -> Vec<i64> {
            rows.iter().map(f).collect()
        };
        let d = PyDict::new(py);
        d.set_item("index", PyArray1::from_vec(py, col(&|r| r.index as i64)))?;
        d.set_item(
            "cluster",
            PyArray1::from_vec(py, col(&|r| r.cluster as i64)),
        )?;
        let fcol = |f: &dyn Fn(&protoclust::assign::Assignment) -> f32| -> Vec<f32> {
            rows.iter().map(f).collect()
        };
        d.set_item("score", PyArray1::from_vec(py, fcol(&|r| r.score)))?;
        d.set_item(
            "probability",
            PyArray1::from_vec(py, fcol(&|r| r.probability())),
        )?;
        d.set_item(
            "confidence",
            PyArray1::from_vec(py, fcol(&|r| r.confidence)),
        )?;
        d.set_item("top5", matrix(py, top, n, 5)?)?;
        d.set_item("top5_probabilities", matrix(py, top_p, n, 5)?)?;
        d.set_item(
            "label",
            PyArray1::from_vec(py, col(&|r| r.label.map_or(-1, i64::from))),
        )?;
        let paths: Vec<Option<PathBuf>> = rows.iter().map(|r| r.path.clone()).collect();
        d.set_item("path", paths)?;
        Ok(d)
    }

    /// Writes the backbone as torchvision-named safetensors (`"torchvision"`) or ONNX
    /// (`"onnx"`); returns what was written.
    #[pyo3(signature = (path, format="torchvision"))]
    fn export(&self, py: Python<'_>, path: PathBuf, format: &str) -> PyResult<String> {
        let format: ExportFormat = format.parse().map_err(|e: anyhow::Error| {
            pyo3::exceptions::PyValueError::new_err(format!("format {format:?}: {e}"))
        })?;
        py.detach(|| export_backbone(&self.file, &path, format))
            .map_err(as_py(Kind::Checkpoint))
    }

    fn __repr__(&self) -> String {
        format!(
            "Model({:?}, method={}, feature_dim={})",
            self.file.path.display().to_string(),
            self.method().unwrap_or_else(|| "exported backbone".into()),
            self.feature_dim()
        )
    }
}
