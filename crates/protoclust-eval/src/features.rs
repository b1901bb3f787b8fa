//! Frozen-backbone features of a whole data set.

use burn::tensor::{Device, Tensor, TensorData};
use protoclust_data::loader::{Loader, LoaderConfig};
use protoclust_data::source::Source;
use protoclust_data::views::CenterView;
use protoclust_data::DataError;
use protoclust_nn::backbone::ResNet;
use std::sync::Arc;

/// Pooled features of every sample (N × dim, row-major) with labels.
#[derive(Debug, Clone)]
pub struct Features {
    /// Feature dimension.
    pub dim: usize,
    /// N × dim values.
    pub data: Vec<f32>,
    /// Label per sample, when known.
    pub labels: Vec<Option<u32>>,
    /// Data-set index per row.
    pub indices: Vec<usize>,
    /// Samples left out because they could not be decoded.
    pub skipped: usize,
}

impl Features {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    /// Rows L2-normalised in place.
    pub fn normalized(mut self) -> Self {
        for r in self.data.chunks_exact_mut(self.dim.max(1)) {
            let n = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            r.iter_mut().for_each(|v| *v /= n);
        }
        self
    }
    /// Uploads to `device` as N × dim.
    pub fn to_tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), [self.len(), self.dim]),
            device,
        )
    }
}

/// Runs the backbone in inference mode (BatchNorm running statistics) over every sample of
/// `source`, seen through `view`, in batches of at most `batch_size` (fewer where large images
/// would take too much memory: [`protoclust_nn::infer::EvalTrunk::batch_for`]).
pub fn extract(
    backbone: &ResNet,
    source: Arc<dyn Source>,
    view: &CenterView,
    batch_size: usize,
    device: &Device,
) -> Result<Features, DataError> {
    extract_trunk(
        &protoclust_nn::infer::EvalTrunk::new(backbone),
        source,
        view,
        batch_size,
        device,
    )
}

/// [`extract`] through a given trunk (its precision, e.g. bf16).
pub fn extract_trunk(
    net: &protoclust_nn::infer::EvalTrunk,
    source: Arc<dyn Source>,
    view: &CenterView,
    batch_size: usize,
    device: &Device,
) -> Result<Features, DataError> {
    let batch_size = net.batch_for(view.size, batch_size);
    extract_with(source, view, batch_size, device, &|x| net.pooled(x))
}

/// One batch of [`extract_each`]: its rows and what identifies them.
#[derive(Debug, Clone, Copy)]
pub struct FeatureBatch<'a> {
    /// Feature dimension.
    pub dim: usize,
    /// The batch's rows × dim values.
    pub rows: &'a [f32],
    /// Label per row, when known.
    pub labels: &'a [Option<u32>],
    /// Data-set index per row.
    pub indices: &'a [usize],
    /// Samples read so far, skipped ones included.
    pub read: usize,
}

/// Runs `f` (an inference-mode network on the non-autodiff device) over every sample of
/// `source`, seen through `view`, in data-set order and batches of `batch_size`.
pub fn extract_with(
    source: Arc<dyn Source>,
    view: &CenterView,
    batch_size: usize,
    device: &Device,
    f: &dyn Fn(Tensor<4>) -> Tensor<2>,
) -> Result<Features, DataError> {
    let mut out = Features {
        dim: 0,
        data: Vec::new(),
        labels: Vec::new(),
        indices: Vec::new(),
        skipped: 0,
    };
    out.skipped = extract_each(source, view, batch_size, device, f, &mut |b| {
        out.dim = b.dim;
        out.data.extend_from_slice(b.rows);
        out.labels.extend_from_slice(b.labels);
        out.indices.extend_from_slice(b.indices);
    })?;
    Ok(out)
}

/// [`extract_with`], handing each batch's rows to `each` instead of keeping them (memory
/// does not grow with the data set); returns the number of samples that could not be decoded.
pub fn extract_each(
    source: Arc<dyn Source>,
    view: &CenterView,
    batch_size: usize,
    device: &Device,
    f: &dyn Fn(Tensor<4>) -> Tensor<2>,
    each: &mut dyn FnMut(FeatureBatch<'_>),
) -> Result<usize, DataError> {
    let device = device.clone().without_autodiff();
    let loader = Loader::new(
        source.clone(),
        Arc::new(view.clone()),
        LoaderConfig {
            batch_size: batch_size.max(1),
            shuffle: false,
            drop_last: false,
            ..Default::default()
        },
        0,
    )?;
    let (mut read, mut skipped) = (0, 0);
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        skipped += batch.skipped.len();
        read += batch.skipped.len() + batch.len();
        if batch.is_empty() {
            continue;
        }
        let v = &batch.views[0];
        let x = Tensor::<4>::from_data(
            TensorData::new(v.data.clone(), [batch.len(), 3, v.size, v.size]),
            &device,
        );
        let y = f(x);
        let dim = y.dims()[1];
        let rows = y
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        each(FeatureBatch {
            dim,
            rows: &rows,
            labels: &batch.labels,
            indices: &batch.indices,
            read,
        });
    }
    Ok(skipped)
}
