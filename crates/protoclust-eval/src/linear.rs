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
use protoclust_data::source::{balanced_split, balanced_split_labels, Source, Subset};
use protoclust_data::views::CenterView;
use protoclust_nn::optim::{OptimConfig, OptimKind, Optimizer};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
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

/// One classifier per learning rate of the grid, all trained on the same batches.
struct Heads {
    heads: Vec<Linear>,
    opts: Vec<Optimizer>,
    lrs: Vec<f64>,
    ad: Device,
}

impl Heads {
    fn new(dim: usize, classes: usize, lrs: &[f64], ad: &Device) -> Self {
        Self {
            heads: lrs
                .iter()
                .map(|_| Linear::zeros(dim, classes, ad))
                .collect(),
            opts: lrs
                .iter()
                .map(|_| {
                    Optimizer::new(OptimConfig {
                        kind: OptimKind::Sgd,
                        momentum: 0.9,
                        weight_decay: 0.0,
                        ..Default::default()
                    })
                })
                .collect(),
            lrs: lrs.to_vec(),
            ad: ad.clone(),
        }
    }

    /// One SGD step of every head on standardised features `f` with labels `y` at
    /// `cosine` × its rate; adds each head's loss to `losses`.
    fn step(&mut self, f: &TensorData, y: &[i64], cosine: f64, losses: &mut [f64]) {
        let y = Tensor::<1, Int>::from_data(TensorData::new(y.to_vec(), [y.len()]), &self.ad);
        for (h, (head, opt)) in self.heads.iter_mut().zip(&mut self.opts).enumerate() {
            let x = Tensor::<2>::from_data(f.clone(), &self.ad);
            let loss = log_softmax(head.forward(x), 1)
                .gather(1, y.clone().unsqueeze_dim(1))
                .mean()
                .neg();
            losses[h] += loss.clone().into_scalar::<f32>() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &*head);
            let taken = std::mem::replace(head, Linear::zeros(1, 1, &self.ad));
            *head = opt.step(taken, grads, self.lrs[h] * cosine);
        }
    }

    /// Every head's validation and test accuracy, and the run the validation split chooses
    /// (best top-1; ties go to the earlier listed rate).
    fn choose(
        &self,
        val: (Tensor<2>, &[i64]),
        test: (Tensor<2>, &[i64]),
    ) -> (Vec<ProbeRun>, ProbeRun) {
        let runs: Vec<ProbeRun> = self
            .heads
            .iter()
            .zip(&self.lrs)
            .map(|(head, &lr)| {
                let head = head.valid();
                ProbeRun {
                    lr,
                    val_top1: evaluate(&head, val.0.clone(), val.1).top1,
                    test: evaluate(&head, test.0.clone(), test.1),
                }
            })
            .collect();
        let best = runs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.val_top1.total_cmp(&b.1.val_top1).then(b.0.cmp(&a.0)))
            .map(|(_, r)| *r)
            .unwrap_or(runs[0]);
        (runs, best)
    }

    /// The probe's outcome: every head on the standardised validation and test features, the
    /// validation split's choice, and the sample counts.
    fn result(
        &self,
        norm: &Standardise,
        val: (&Features, &[i64]),
        test: (&Features, &[i64]),
        fit_len: usize,
        cfg: &LinearProbeConfig,
        plain: &Device,
    ) -> LinearProbeResult {
        let xval = norm.apply(val.0.to_tensor(plain));
        let xtest = norm.apply(test.0.to_tensor(plain));
        let (runs, best) = self.choose((xval, val.1), (xtest, test.1));
        LinearProbeResult {
            lr: best.lr,
            test: best.test,
            runs,
            config: cfg.clone(),
            samples: [fit_len, val.1.len(), test.1.len()],
        }
    }
}

/// The half-cosine factor of step `step` of `total`.
fn cosine(step: usize, total: f64) -> f64 {
    0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total).cos())
}

/// Refuses an empty or non-positive rate grid and zero epochs or batch size.
fn check(cfg: &LinearProbeConfig) -> Result<(), EvalError> {
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
    Ok(())
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
    check(cfg)?;
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
    let mut heads = Heads::new(dim, classes, &cfg.lrs, &ad);
    let total = (cfg.epochs * loader.batches_per_epoch()).max(1) as f64;
    let mut step = 0usize;
    for epoch in 0..cfg.epochs {
        let mut losses = vec![0f64; cfg.lrs.len()];
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
            heads.step(&f, &y, cosine(step, total), &mut losses);
            step += 1;
        }
        let n = loader.batches_per_epoch().max(1) as f64;
        losses.iter_mut().for_each(|l| *l /= n);
        progress(epoch, &losses);
    }
    Ok(heads.result(
        &norm,
        (&fval, &yval),
        (&ftest, &ytest),
        fit.len(),
        cfg,
        &plain,
    ))
}

/// The probe on precomputed features (from any model): a class-balanced validation share of
/// `train` chooses the rate, each epoch visits the training rows in a seeded order, and the
/// features are standardised by the training rows' statistics (no augmentation: they are fixed).
pub fn linear_probe_features(
    train: &Features,
    test: &Features,
    cfg: &LinearProbeConfig,
    device: &Device,
) -> Result<LinearProbeResult, EvalError> {
    check(cfg)?;
    if train.dim != test.dim {
        return Err(EvalError::Invalid(format!(
            "train features have dimension {}, test features {}",
            train.dim, test.dim
        )));
    }
    labels_of(train, "train")?;
    labels_of(test, "test")?;
    let classes = train
        .labels
        .iter()
        .chain(&test.labels)
        .flatten()
        .max()
        .map_or(0, |&m| m as usize + 1);
    let (val_idx, fit_idx) =
        balanced_split_labels(&train.labels, classes, cfg.val_fraction, cfg.seed)?;
    let rows = |idx: &[usize]| Features {
        dim: train.dim,
        data: idx.iter().flat_map(|&i| train.row(i).to_vec()).collect(),
        labels: idx.iter().map(|&i| train.labels[i]).collect(),
        indices: idx.iter().map(|&i| train.indices[i]).collect(),
        skipped: 0,
    };
    let (fit, fval) = (rows(&fit_idx), rows(&val_idx));
    let (yfit, yval, ytest) = (
        labels_of(&fit, "train")?,
        labels_of(&fval, "validation")?,
        labels_of(test, "test")?,
    );
    let plain = device.clone().without_autodiff();
    let ad = plain.clone().autodiff();
    let norm = Standardise::fit(&fit);
    let xfit: Vec<f32> = norm
        .apply(fit.to_tensor(&plain))
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let dim = fit.dim;
    let mut heads = Heads::new(dim, classes, &cfg.lrs, &ad);
    let per_epoch = fit.len().div_ceil(cfg.batch_size).max(1);
    let total = (cfg.epochs * per_epoch) as f64;
    let mut step = 0;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..fit.len()).collect();
    for _ in 0..cfg.epochs {
        order.shuffle(&mut rng);
        let mut losses = vec![0f64; cfg.lrs.len()];
        for b in order.chunks(cfg.batch_size) {
            let x: Vec<f32> = b
                .iter()
                .flat_map(|&i| xfit[i * dim..(i + 1) * dim].iter().copied())
                .collect();
            let y: Vec<i64> = b.iter().map(|&i| yfit[i]).collect();
            heads.step(
                &TensorData::new(x, [b.len(), dim]),
                &y,
                cosine(step, total),
                &mut losses,
            );
            step += 1;
        }
    }
    Ok(heads.result(
        &norm,
        (&fval, &yval),
        (test, &ytest),
        fit.len(),
        cfg,
        &plain,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` rows of dimension 4: class c sits around a centre of its own (or, `shuffled`, the
    /// labels are drawn apart from the rows).
    fn blobs(n: usize, shuffled: bool, seed: u64) -> Features {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut data = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = (i % 3) as u32;
            for d in 0..4 {
                let centre = if d == c as usize { 3.0 } else { 0.0 };
                data.push(centre + rng.random_range(-1.0f32..1.0));
            }
            labels.push(Some(if shuffled { rng.random_range(0..3) } else { c }));
        }
        Features {
            dim: 4,
            data,
            labels,
            indices: (0..n).collect(),
            skipped: 0,
        }
    }

    #[test]
    fn the_feature_probe_separates_blobs_and_not_random_labels() {
        let cfg = LinearProbeConfig {
            epochs: 20,
            batch_size: 32,
            ..Default::default()
        };
        let dev = Device::flex();
        let good =
            linear_probe_features(&blobs(300, false, 1), &blobs(90, false, 2), &cfg, &dev).unwrap();
        assert!(good.test.top1 > 95.0, "{good:?}");
        assert_eq!(good.samples, [270, 30, 90]);
        let bad =
            linear_probe_features(&blobs(300, true, 1), &blobs(90, true, 2), &cfg, &dev).unwrap();
        assert!(bad.test.top1 < 60.0, "{bad:?}");
        let mut wrong = blobs(10, false, 3);
        wrong.dim = 2;
        wrong.data.truncate(20);
        let e = linear_probe_features(&blobs(30, false, 1), &wrong, &cfg, &dev).unwrap_err();
        assert!(e.to_string().contains("dimension"), "{e}");
    }
}
