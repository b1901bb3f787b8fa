//! Class re-weighting and the weighted cross-entropy of pseudo-label classification.

use burn::tensor::activation::log_softmax;
use burn::tensor::Tensor;
use protoclust_nn::collective::global_batch::mean_share;
use protoclust_nn::collective::{Collective, World};
use protoclust_nn::ops::host::{index_tensor, to_indices};

/// ODC's per-class loss weights: w_c ∝ (1/(n_c + 1e-5))^pow, normalised to sum 1, computed in
/// float32 as the official numpy code (empty classes get a huge raw weight).
pub fn class_weights(labels: &[usize], k: usize, pow: f64) -> Vec<f32> {
    let mut hist = vec![0f32; k];
    labels
        .iter()
        .filter(|&&l| l < k)
        .for_each(|&l| hist[l] += 1.0);
    let w: Vec<f32> = hist
        .iter()
        .map(|&h| (1f32 / (h + 1e-5f32)).powf(pow as f32))
        .collect();
    let s: f32 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// Weighted cross-entropy Σ w_y·nll / Σ w_y (PyTorch's `CrossEntropyLoss(weight)`).
pub fn weighted_cross_entropy(
    logits: Tensor<2>,
    targets: &[usize],
    weights: Option<&[f32]>,
) -> Tensor<1> {
    let device = logits.device();
    let [n, k] = logits.dims();
    let t = index_tensor(targets, &device).unsqueeze_dim::<2>(1);
    let nll = log_softmax(logits, 1).gather(1, t).neg().reshape([n]);
    let w = target_weights(targets, weights, k);
    let total: f32 = w.iter().sum();
    let w = Tensor::<1>::from_floats(w.as_slice(), &device);
    (nll * w).sum().div_scalar(total as f64)
}

/// Top-1 accuracy of `logits` against `targets`, in percent (one host read).
pub fn top1_accuracy(logits: Tensor<2>, targets: &[usize]) -> f64 {
    let n = logits.dims()[0];
    let pred = to_indices(logits.detach().argmax(1));
    let hits = pred.iter().zip(targets).filter(|(p, t)| p == t).count();
    100.0 * hits as f64 / n.max(1) as f64
}

/// Each target's class weight (1 without weights).
fn target_weights(targets: &[usize], weights: Option<&[f32]>, k: usize) -> Vec<f32> {
    match weights {
        Some(w) => targets.iter().map(|&t| w[t.min(k - 1)]).collect(),
        None => vec![1.0; targets.len()],
    }
}

/// [`weighted_cross_entropy`] as this rank's share of the weighted mean over the rows of every
/// rank of `world` (Σ_rank Σ w·nll / Σ_all w, times the world size, since the ranks' gradients
/// are averaged): one process's loss on the global batch.
pub fn global_weighted_cross_entropy(
    logits: Tensor<2>,
    targets: &[usize],
    weights: Option<&[f32]>,
    world: &World,
) -> Tensor<1> {
    let k = logits.dims()[1];
    let loss = weighted_cross_entropy(logits, targets, weights);
    if world.world_size() == 1 {
        return loss;
    }
    let local: f32 = target_weights(targets, weights, k).iter().sum();
    loss.mul_scalar(mean_share(world, local as f64))
}
