//! Linear probe, standard protocol: a linear classifier on frozen features, SGD momentum 0.9,
//! cosine schedule, no weight decay, RandomResizedCrop + flip at train time, centre crop at
//! test time; a short learning-rate grid chosen on a class-balanced validation split of the
//! training set.

use crate::accuracy::{Accuracy, TopK};
use crate::classifier_view::classifier_loader;
use crate::error::EvalError;
use crate::features::{extract_with, Features};
use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use protoclust_data::source::{balanced_split, Source, Subset};
use protoclust_data::views::CenterView;
use protoclust_nn::optim::{OptimConfig, OptimKind, Optimizer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Settings of the probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinearProbeConfig {
    /// Passes over the training images.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Learning rates tried (one classifier each, all trained on the same batches).
    pub lrs: Vec<f64>,
    /// Share of every class of the training split held out to choose the learning rate.
    pub val_fraction: f64,
    /// Area range of the train-time RandomResizedCrop.
    pub crop_scale: [f32; 2],
    /// Seed of the validation split, the batch order and the augmentations.
    pub seed: u64,
}

impl Default for LinearProbeConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 256,
            lrs: vec![0.01, 0.1, 1.0],
            val_fraction: 0.1,
            crop_scale: [0.08, 1.0],
            seed: 0,
        }
    }
}

/// One classifier of the learning-rate grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProbeRun {
    /// Its learning rate.
    pub lr: f64,
    /// Top-1 accuracy on the held-out validation split, percent.
    pub val_top1: f64,
    /// Accuracy on the test split.
    pub test: Accuracy,
}

/// The probe's outcome: every grid point and the one the validation split chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearProbeResult {
    /// Every learning rate tried.
    pub runs: Vec<ProbeRun>,
    /// The learning rate with the best validation top-1.
    pub lr: f64,
    /// Test accuracy of that classifier.
    pub test: Accuracy,
    /// Settings used.
    pub config: LinearProbeConfig,
    /// Training, validation and test samples.
    pub samples: [usize; 3],
}

#[derive(Module, Debug)]
struct Linear {
    weight: Param<Tensor<2>>,
    bias: Param<Tensor<1>>,
}

impl Linear {
    fn zeros(dim: usize, classes: usize, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::zeros([dim, classes], device)),
            bias: Param::from_tensor(Tensor::zeros([classes], device)),
        }
    }
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val()) + self.bias.val().unsqueeze()
    }
}

/// Mean and standard deviation per feature column (a fixed, affine-free BatchNorm).
struct Standardise {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Standardise {
    fn fit(f: &Features) -> Self {
        let (dim, n) = (f.dim, f.len().max(1) as f64);
        let mut mean = vec![0f64; dim];
        let mut var = vec![0f64; dim];
        for r in f.data.chunks_exact(dim) {
            r.iter()
                .zip(&mut mean)
                .for_each(|(v, m)| *m += *v as f64 / n);
        }
        for r in f.data.chunks_exact(dim) {
            r.iter()
                .zip(&mean)
                .zip(&mut var)
                .for_each(|((v, m), s)| *s += (*v as f64 - m).powi(2) / n);
        }
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: var.iter().map(|v| (v.sqrt() as f32).max(1e-6)).collect(),
        }
    }
    fn apply(&self, x: Tensor<2>) -> Tensor<2> {
        let d = self.mean.len();
        let dev = x.device();
        let m = Tensor::<1>::from_data(TensorData::new(self.mean.clone(), [d]), &dev);
        let s = Tensor::<1>::from_data(TensorData::new(self.std.clone(), [d]), &dev);
        (x - m.unsqueeze()) / s.unsqueeze()
    }
}

fn labels_of(f: &Features, side: &str) -> Result<Vec<i64>, EvalError> {
    f.labels
        .iter()
        .map(|l| {
            l.map(|v| v as i64)
                .ok_or_else(|| EvalError::Invalid(format!("the {side} split has no labels")))
        })
        .collect()
}

fn evaluate(head: &Linear, x: Tensor<2>, labels: &[i64]) -> Accuracy {
    let mut t = TopK::default();
    t.add(head.forward(x), labels);
    t.percent()
}

/// Trains one classifier per learning rate on `features` of augmented `train` images (the
/// validation share held out), picks the rate by validation top-1, reports test accuracy.
/// `features` maps a batch of views to N × D features on the non-autodiff device.
pub fn linear_probe(
    features: &dyn Fn(Tensor<4>) -> Tensor<2>,
    train: Arc<dyn Source>,
    test: Arc<dyn Source>,
    view: &CenterView,
    cfg: &LinearProbeConfig,
    device: &Device,
    progress: &dyn Fn(usize, &[f64]),
) -> Result<LinearProbeResult, EvalError> {
    if cfg.lrs.is_empty() || cfg.lrs.iter().any(|&l| l.is_nan() || l <= 0.0) {
        return Err(EvalError::Invalid(format!(
            "--linear-lrs {:?}: every learning rate must be positive (and at least one given)",
            cfg.lrs
        )));
    }
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return Err(EvalError::Invalid(
            "linear probe: epochs and batch size must be positive".into(),
        ));
    }
    let classes = train
        .num_classes()
        .ok_or_else(|| EvalError::Invalid("the train split has no labels".into()))?;
    let (val_idx, fit_idx) = balanced_split(train.as_ref(), cfg.val_fraction, cfg.seed)?;
    let fit: Arc<dyn Source> = Arc::new(Subset::new(train.clone(), fit_idx)?);
    let val: Arc<dyn Source> = Arc::new(Subset::new(train, val_idx)?);
    let plain = device.clone().without_autodiff();
    let ad = plain.clone().autodiff();
    let centre = |src: Arc<dyn Source>| extract_with(src, view, cfg.batch_size, &plain, features);
    let (fit_centre, fval, ftest) = (centre(fit.clone())?, centre(val)?, centre(test)?);
    let norm = Standardise::fit(&fit_centre);
    let dim = fit_centre.dim;
    let (yval, ytest) = (labels_of(&fval, "validation")?, labels_of(&ftest, "test")?);
    let loader = classifier_loader(fit.clone(), view, cfg.crop_scale, cfg.batch_size, cfg.seed)?;
    let mut heads: Vec<Linear> = cfg
        .lrs
        .iter()
        .map(|_| Linear::zeros(dim, classes, &ad))
        .collect();
    let mut opts: Vec<Optimizer> = cfg
        .lrs
        .iter()
        .map(|_| {
            Optimizer::new(OptimConfig {
                kind: OptimKind::Sgd,
                momentum: 0.9,
                weight_decay: 0.0,
                ..Default::default()
            })
        })
        .collect();
    let total = (cfg.epochs * loader.batches_per_epoch()).max(1) as f64;
    let mut step = 0usize;
    for epoch in 0..cfg.epochs {
        let mut losses = vec![0f64; heads.len()];
        for batch in loader.epoch(epoch as u64, 0) {
            let batch = batch?;
            if batch.is_empty() {
                continue;
            }
            let v = &batch.views[0];
            let x = Tensor::<4>::from_data(
                TensorData::new(v.data.clone(), [batch.len(), 3, v.size, v.size]),
                &plain,
            );
            let f = norm.apply(features(x)).into_data();
            let y: Vec<i64> = batch.labels.iter().map(|l| l.unwrap_or(0) as i64).collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(y, [batch.len()]), &ad);
            let cosine = 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total).cos());
            for (h, (head, opt)) in heads.iter_mut().zip(&mut opts).enumerate() {
                let x = Tensor::<2>::from_data(f.clone(), &ad);
                let loss = log_softmax(head.forward(x), 1)
                    .gather(1, y.clone().unsqueeze_dim(1))
                    .mean()
                    .neg();
                losses[h] += loss.clone().into_scalar::<f32>() as f64;
                let grads = GradientsParams::from_grads(loss.backward(), &*head);
                let taken = std::mem::replace(head, Linear::zeros(1, 1, &ad));
                *head = opt.step(taken, grads, cfg.lrs[h] * cosine);
            }
            step += 1;
        }
        let n = loader.batches_per_epoch().max(1) as f64;
        losses.iter_mut().for_each(|l| *l /= n);
        progress(epoch, &losses);
    }
    let xval = norm.apply(fval.to_tensor(&plain));
    let xtest = norm.apply(ftest.to_tensor(&plain));
    let runs: Vec<ProbeRun> = heads
        .iter()
        .zip(&cfg.lrs)
        .map(|(head, &lr)| {
            let head = head.valid();
            ProbeRun {
                lr,
                val_top1: evaluate(&head, xval.clone(), &yval).top1,
                test: evaluate(&head, xtest.clone(), &ytest),
            }
        })
        .collect();
    // Best validation top-1; ties go to the earlier (listed) rate.
    let best = runs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.val_top1.total_cmp(&b.1.val_top1).then(b.0.cmp(&a.0)))
        .map(|(_, r)| *r)
        .unwrap_or(runs[0]);
    Ok(LinearProbeResult {
        lr: best.lr,
        test: best.test,
        runs,
        config: cfg.clone(),
        samples: [fit.len(), yval.len(), ytest.len()],
    })
}
