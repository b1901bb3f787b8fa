//! Linear probe: a softmax classifier trained on frozen features.

use crate::features::Features;
use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use protoclust_nn::optim::{OptimConfig, OptimKind, Optimizer};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// Settings of the probe (SGD momentum 0.9, cosine schedule, on standardised features).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinearProbeConfig {
    /// Passes over the training features.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Initial learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Shuffling seed.
    pub seed: u64,
}

impl Default for LinearProbeConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 256,
            lr: 0.1,
            weight_decay: 0.0,
            seed: 0,
        }
    }
}

/// Accuracy of the probe on the test features.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinearProbeResult {
    /// Top-1 accuracy in percent.
    pub top1: f64,
    /// Top-5 accuracy in percent.
    pub top5: f64,
}

#[derive(Module, Debug)]
struct Probe {
    weight: Param<Tensor<2>>,
    bias: Param<Tensor<1>>,
}

fn standardise(f: &Features, mean: &[f32], std: &[f32]) -> Vec<f32> {
    f.data
        .chunks_exact(f.dim)
        .flat_map(|r| r.iter().zip(mean).zip(std).map(|((v, m), s)| (v - m) / s))
        .collect()
}

/// Trains on `train`, reports accuracy on `test`; labels must be present on both.
pub fn linear_probe(
    train: &Features,
    test: &Features,
    num_classes: usize,
    config: &LinearProbeConfig,
    device: &Device,
) -> Result<LinearProbeResult, String> {
    let dim = train.dim;
    let labels = |f: &Features, side: &str| -> Result<Vec<i64>, String> {
        f.labels
            .iter()
            .map(|l| {
                l.map(|v| v as i64)
                    .ok_or(format!("{side} features have no labels"))
            })
            .collect()
    };
    let (ytr, yte) = (labels(train, "train")?, labels(test, "test")?);
    if train.is_empty() || test.is_empty() || dim != test.dim {
        return Err("linear probe needs non-empty train/test features of one dimension".into());
    }
    let n = train.len() as f32;
    let mut mean = vec![0f32; dim];
    let mut var = vec![0f32; dim];
    for r in train.data.chunks_exact(dim) {
        r.iter().zip(&mut mean).for_each(|(v, m)| *m += v / n);
    }
    for r in train.data.chunks_exact(dim) {
        r.iter()
            .zip(&mean)
            .zip(&mut var)
            .for_each(|((v, m), s)| *s += (v - m) * (v - m) / n);
    }
    let std: Vec<f32> = var.iter().map(|v| v.sqrt().max(1e-6)).collect();
    let ad = device.clone().without_autodiff().autodiff();
    let xtr = standardise(train, &mean, &std);
    let mut probe = Probe {
        weight: Param::from_tensor(Tensor::zeros([dim, num_classes], &ad)),
        bias: Param::from_tensor(Tensor::zeros([num_classes], &ad)),
    };
    let mut opt = Optimizer::new(OptimConfig {
        kind: OptimKind::Sgd,
        momentum: 0.9,
        weight_decay: config.weight_decay,
        ..Default::default()
    });
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let steps_per_epoch = train.len().div_ceil(config.batch_size);
    let total = (config.epochs * steps_per_epoch).max(1) as f64;
    let mut step = 0usize;
    for _ in 0..config.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(config.batch_size) {
            let x: Vec<f32> = chunk
                .iter()
                .flat_map(|&i| xtr[i * dim..(i + 1) * dim].iter().copied())
                .collect();
            let y: Vec<i64> = chunk.iter().map(|&i| ytr[i]).collect();
            let x = Tensor::<2>::from_data(TensorData::new(x, [chunk.len(), dim]), &ad);
            let y = Tensor::<1, Int>::from_data(TensorData::new(y, [chunk.len()]), &ad);
            let logits = x.matmul(probe.weight.val()) + probe.bias.val().unsqueeze();
            let loss = log_softmax(logits, 1)
                .gather(1, y.unsqueeze_dim(1))
                .mean()
                .neg();
            let grads = GradientsParams::from_grads(loss.backward(), &probe);
            let lr = 0.5 * config.lr * (1.0 + (std::f64::consts::PI * step as f64 / total).cos());
            probe = opt.step(probe, grads, lr);
            step += 1;
        }
    }
    let plain = device.clone().without_autodiff();
    let xte = standardise(test, &mean, &std);
    let x = Tensor::<2>::from_data(TensorData::new(xte, [test.len(), dim]), &plain);
    let probe = probe.valid();
    let logits = x.matmul(probe.weight.val()) + probe.bias.val().unsqueeze();
    let k = num_classes.min(5);
    let (_, idx) = logits.topk_with_indices(k, 1);
    let idx: Vec<i64> = idx
        .into_data()
        .convert::<i64>()
        .try_to_vec()
        .unwrap_or_default();
    let (mut h1, mut h5) = (0usize, 0usize);
    for (r, &t) in yte.iter().enumerate() {
        let row = &idx[r * k..(r + 1) * k];
        h1 += (row[0] == t) as usize;
        h5 += row.contains(&t) as usize;
    }
    let n = test.len() as f64;
    Ok(LinearProbeResult {
        top1: 100.0 * h1 as f64 / n,
        top5: 100.0 * h5 as f64 / n,
    })
}
