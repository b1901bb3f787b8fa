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
    let net = protoclust_nn::infer::EvalTrunk::new(backbone);
    let batch_size = net.batch_for(view.size, batch_size);
    extract_with(source, view, batch_size, device, &|x| net.pooled(x))
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
    extract_observed(source, view, batch_size, device, f, &mut |_| {})
}

/// [`extract_with`], calling `done` with the number of samples read after every batch.
pub fn extract_observed(
    source: Arc<dyn Source>,
    view: &CenterView,
    batch_size: usize,
    device: &Device,
    f: &dyn Fn(Tensor<4>) -> Tensor<2>,
    done: &mut dyn FnMut(usize),
) -> Result<Features, DataError> {
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
    let mut out = Features {
        dim: 0,
        data: Vec::new(),
        labels: Vec::new(),
        indices: Vec::new(),
        skipped: 0,
    };
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        out.skipped += batch.skipped.len();
        if batch.is_empty() {
            done(out.indices.len() + out.skipped);
            continue;
        }
        let v = &batch.views[0];
        let x = Tensor::<4>::from_data(
            TensorData::new(v.data.clone(), [batch.len(), 3, v.size, v.size]),
            &device,
        );
        let f = f(x);
        out.dim = f.dims()[1];
        out.data.extend(
            f.into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default(),
        );
        out.labels.extend(batch.labels);
        out.indices.extend(batch.indices);
        done(out.indices.len() + out.skipped);
    }
    Ok(out)
}
