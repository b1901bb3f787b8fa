//! What `embed` and `assign` take as images: a uint8 N×H×W×3 array, a list of file paths, or a
//! data spec string (`cifar10:FILE`, `folder:DIR`, …), with the view each is seen through.

use crate::errors::{to_py, Kind};
use numpy::{PyReadonlyArray1, PyReadonlyArray4, PyUntypedArrayMethods};
use protoclust::data_spec::DataSpec;
use protoclust_data::source::{ImageFiles, InMemory, Source};
use protoclust_data::views::CenterView;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use std::path::PathBuf;
use std::sync::Arc;

/// Opened images and the view their default evaluation uses (when the model gives none).
pub struct Images {
    /// The images.
    pub source: Arc<dyn Source>,
    /// The view when the model's run config gives none.
    pub default_view: CenterView,
}

/// Small images (up to 96 px) whole, larger ones resized to 256 and centre-cropped to 224, as
/// the CLI's data specs.
fn view_for_side(side: Option<usize>) -> CenterView {
    match side {
        Some(s) if s <= 96 => CenterView {
            resize: s,
            size: s,
            ..Default::default()
        },
        _ => CenterView::default(),
    }
}

/// Opens `images`; `labels` (one per array image) only with an array.
pub fn open(
    images: &Bound<'_, PyAny>,
    labels: Option<PyReadonlyArray1<'_, i64>>,
) -> PyResult<Images> {
    let data_err = |e: anyhow::Error| to_py(e, Kind::Data);
    if let Ok(spec) = images.cast::<PyString>() {
        if labels.is_some() {
            return Err(PyTypeError::new_err(
                "labels go with an image array, not a data spec",
            ));
        }
        let spec = DataSpec::parse(spec.to_str()?).map_err(data_err)?;
        let source = spec.open().map_err(data_err)?;
        return Ok(Images {
            source,
            default_view: spec.default_eval_view(),
        });
    }
    if images.is_instance_of::<PyList>() || images.is_instance_of::<PyTuple>() {
        if labels.is_some() {
            return Err(PyTypeError::new_err(
                "labels go with an image array, not a list of paths",
            ));
        }
        let paths: Vec<PathBuf> = images.extract()?;
        let files = ImageFiles::from_paths(paths).map_err(|e| data_err(e.into()))?;
        return Ok(Images {
            source: Arc::new(files),
            default_view: CenterView::default(),
        });
    }
    let arr: PyReadonlyArray4<'_, u8> = images.extract().map_err(|_| {
        PyTypeError::new_err(
            "images: expected a uint8 array of shape (N, H, W, 3), a list of image paths, or a \
             data spec string such as 'cifar10:FILE' or 'folder:DIR'",
        )
    })?;
    let [n, h, w, c] = <[usize; 4]>::try_from(arr.shape()).expect("four dimensions");
    if c != 3 {
        return Err(data_err(anyhow::anyhow!(
            "images: shape ({n}, {h}, {w}, {c}): expected (N, H, W, 3) RGB"
        )));
    }
    let pixels = match arr.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => arr.as_array().iter().copied().collect(),
    };
    let labels = labels
        .map(|l| {
            l.as_array()
                .iter()
                .map(|&v| {
                    u32::try_from(v)
                        .map_err(|_| data_err(anyhow::anyhow!("labels: {v}: expected labels >= 0")))
                })
                .collect::<PyResult<Vec<u32>>>()
        })
        .transpose()?;
    let mem = InMemory::new(pixels, n, h, w, labels).map_err(|e| data_err(e.into()))?;
    Ok(Images {
        source: Arc::new(mem),
        default_view: view_for_side(Some(h.max(w))),
    })
}
