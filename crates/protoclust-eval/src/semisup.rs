//! Semi-supervised evaluation: fine-tune the whole backbone and a linear head on a
//! class-balanced fraction of the labels (SwAV's 1% / 10% protocol), with separate backbone and
//! head learning rates, SGD momentum 0.9, cosine schedule, RandomResizedCrop + flip.

use crate::accuracy::{Accuracy, TopK};
use crate::classifier_view::classifier_loader;
use crate::error::EvalError;
use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use protoclust_data::loader::{Loader, LoaderConfig};
use protoclust_data::source::{balanced_split, Source, Subset};
use protoclust_data::views::CenterView;
use protoclust_nn::backbone::ResNet;
use protoclust_nn::optim::{OptimConfig, OptimKind, Optimizer};
use protoclust_nn::running::SyncRunningStats;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Settings of the fine-tuning runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SemiSupConfig {
    /// Percentages of the training labels, one run each.
    pub percents: Vec<f64>,
    /// Passes over the labelled subset.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Learning rate of the backbone.
    pub lr_backbone: f64,
    /// Learning rate of the linear head.
    pub lr_head: f64,
    /// Weight decay (both parts).
    pub weight_decay: f64,
    /// Area range of the train-time RandomResizedCrop.
    pub crop_scale: [f32; 2],
    /// Seed of the subsets, the batch order and the augmentations.
    pub seed: u64,
}

impl Default for SemiSupConfig {
    fn default() -> Self {
        Self {
            percents: vec![1.0, 10.0],
            epochs: 50,
            batch_size: 64,
            lr_backbone: 0.01,
            lr_head: 0.1,
            weight_decay: 0.0,
            crop_scale: [0.08, 1.0],
            seed: 0,
        }
    }
}

/// One fine-tuning run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SemiSupRun {
    /// Percentage of the training labels used.
    pub percent: f64,
    /// Labelled images it trained on.
    pub labelled: usize,
    /// Accuracy on the test split.
    pub test: Accuracy,
}

/// Every run with the settings used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SemiSupResult {
    /// One per percentage.
    pub runs: Vec<SemiSupRun>,
    /// Settings used.
    pub config: SemiSupConfig,
}

#[derive(Module, Debug)]
struct Head {
    weight: Param<Tensor<2>>,
    bias: Param<Tensor<1>>,
}

fn batch_tensor(batch: &protoclust_data::loader::Batch, device: &Device) -> Tensor<4> {
    let v = &batch.views[0];
    Tensor::from_data(
        TensorData::new(v.data.clone(), [batch.len(), 3, v.size, v.size]),
        device,
    )
}

/// Fine-tunes a copy of `backbone` (built on the autodiff device) for each percentage and
/// reports its test accuracy with the centre `view`.
pub fn semi_supervised(
    backbone: &ResNet,
    train: Arc<dyn Source>,
    test: Arc<dyn Source>,
    view: &CenterView,
    cfg: &SemiSupConfig,
    device: &Device,
    progress: &dyn Fn(f64, usize, f64),
) -> Result<SemiSupResult, EvalError> {
    if cfg.epochs == 0 || cfg.batch_size == 0 || !(cfg.lr_backbone >= 0.0 && cfg.lr_head > 0.0) {
        return Err(EvalError::Invalid(
            "semi-supervised: epochs, batch size and the head lr must be positive".into(),
        ));
    }
    let classes = train
        .num_classes()
        .ok_or_else(|| EvalError::Invalid("the train split has no labels".into()))?;
    let plain = device.clone().without_autodiff();
    let ad = plain.clone().autodiff();
    let dim = backbone.out_dim();
    let mut runs = Vec::new();
    for &percent in &cfg.percents {
        let (picked, _) = balanced_split(train.as_ref(), percent / 100.0, cfg.seed)?;
        let labelled = picked.len();
        let subset: Arc<dyn Source> = Arc::new(Subset::new(train.clone(), picked)?);
        let loader = classifier_loader(subset, view, cfg.crop_scale, cfg.batch_size, cfg.seed)?;
        let mut net = backbone.clone();
        let mut head = Head {
            weight: Param::from_tensor(Tensor::zeros([dim, classes], &ad)),
            bias: Param::from_tensor(Tensor::zeros([classes], &ad)),
        };
        let opt_cfg = OptimConfig {
            kind: OptimKind::Sgd,
            momentum: 0.9,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        };
        let (mut opt_net, mut opt_head) =
            (Optimizer::new(opt_cfg.clone()), Optimizer::new(opt_cfg));
        let total = (cfg.epochs * loader.batches_per_epoch()).max(1) as f64;
        let mut step = 0usize;
        for epoch in 0..cfg.epochs {
            let mut loss_sum = 0f64;
            for batch in loader.epoch(epoch as u64, 0) {
                let batch = batch?;
                if batch.is_empty() {
                    continue;
                }
                let x = batch_tensor(&batch, &ad);
                let y: Vec<i64> = batch.labels.iter().map(|l| l.unwrap_or(0) as i64).collect();
                let y = Tensor::<1, Int>::from_data(TensorData::new(y, [batch.len()]), &ad);
                let logits =
                    net.forward(x).pooled.matmul(head.weight.val()) + head.bias.val().unsqueeze();
                let loss = log_softmax(logits, 1)
                    .gather(1, y.unsqueeze_dim(1))
                    .mean()
                    .neg();
                loss_sum += loss.clone().into_scalar::<f32>() as f64;
                let mut grads = loss.backward();
                let g_net = GradientsParams::from_module(&mut grads, &net);
                let g_head = GradientsParams::from_module(&mut grads, &head);
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total).cos());
                net = opt_net.step(net, g_net, cfg.lr_backbone * cosine);
                head = opt_head.step(head, g_head, cfg.lr_head * cosine);
                step += 1;
            }
            progress(
                percent,
                epoch,
                loss_sum / loader.batches_per_epoch().max(1) as f64,
            );
        }
        net.sync_running_stats();
        let (net, head) = (net.valid(), head.valid());
        let test_loader = Loader::new(
            test.clone(),
            Arc::new(view.clone()),
            LoaderConfig {
                batch_size: 256,
                shuffle: false,
                drop_last: false,
                ..Default::default()
            },
            0,
        )?;
        let mut hits = TopK::default();
        for batch in test_loader.epoch(0, 0) {
            let batch = batch?;
            if batch.is_empty() {
                continue;
            }
            let labels: Vec<i64> = batch
                .labels
                .iter()
                .map(|l| l.map(|v| v as i64))
                .collect::<Option<_>>()
                .ok_or_else(|| EvalError::Invalid("the test split has no labels".into()))?;
            let logits = net
                .forward(batch_tensor(&batch, &plain))
                .pooled
                .matmul(head.weight.val())
                + head.bias.val().unsqueeze();
            hits.add(logits, &labels);
        }
        runs.push(SemiSupRun {
            percent,
            labelled,
            test: hits.percent(),
        });
    }
    Ok(SemiSupResult {
        runs,
        config: cfg.clone(),
    })
}
