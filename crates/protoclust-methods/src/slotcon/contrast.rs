//! Slot contrast (`SlotCon.ctr_loss_filtered`): InfoNCE between the student's and the
//! teacher's slots that own at least one pixel.

use crate::pseudo::weighted_cross_entropy;
use burn::tensor::Tensor;
use protoclust_nn::collective::global_batch::{mean_share, row_span};
use protoclust_nn::collective::{Collective, World};
use protoclust_nn::ops::host::{index_tensor, to_indices};
use protoclust_nn::ops::l2_normalize;

/// What the slot contrast produced.
pub struct SlotContrast {
    /// CE × 2τ.
    pub loss: Tensor<1>,
    /// Flat (b·K + k) mask of student slots owning a pixel.
    pub mask_q: Vec<bool>,
    /// The same for the teacher.
    pub mask_k: Vec<bool>,
    /// Flat indices kept in both masks (the queries).
    pub idxs_q: Vec<usize>,
    /// Column of each query's own slot among the kept teacher slots.
    pub labels: Vec<usize>,
    /// Queries × kept keys, cosine / τ.
    pub logits: Tensor<2>,
}

/// Slots (b, k) whose prototype k is the argmax of at least one pixel of `score` (B × K × H × W).
pub fn owning_slots(score: Tensor<4>) -> Vec<bool> {
    let [b, k, h, w] = score.dims();
    let arg = to_indices(score.detach().argmax(1).reshape([b, h * w]));
    let mut mask = vec![false; b * k];
    for i in 0..b {
        for &a in &arg[i * h * w..(i + 1) * h * w] {
            mask[i * k + a] = true;
        }
    }
    mask
}

/// Contrast of student slots `q` (B × K × D, through `predictor` on the kept ones) against
/// teacher slots `k` of every rank of `world` (the official `concat_all_gather`), with the slot
/// masks from the score maps, at temperature `tau`. The cross-entropy is this rank's share of
/// the mean over the global batch's queries, so averaging the ranks' gradients gives one
/// process's.
pub fn slot_contrast(
    q: Tensor<3>,
    k: Tensor<3>,
    score_q: Tensor<4>,
    score_k: Tensor<4>,
    tau: f64,
    predictor: &dyn Fn(Tensor<2>) -> Tensor<2>,
    world: &World,
) -> SlotContrast {
    let [b, kk, d] = q.dims();
    let device = q.device();
    let mask_q = owning_slots(score_q);
    let mask_k = owning_slots(score_k);
    let idxs_q: Vec<usize> = (0..b * kk).filter(|&i| mask_q[i] && mask_k[i]).collect();
    // Every rank's teacher slots and masks, in rank order; this rank's start at `first`.
    let span = row_span(world, b);
    let first = span.offset * kk;
    let flags: Vec<f32> = mask_k.iter().map(|&m| f32::from(u8::from(m))).collect();
    let mask_all: Vec<bool> = world
        .all_gather_host(&flags)
        .into_iter()
        .map(|v| v > 0.5)
        .collect();
    let keys: Vec<usize> = (0..mask_all.len()).filter(|&i| mask_all[i]).collect();
    let mut column = vec![0usize; mask_all.len()];
    for (c, &i) in keys.iter().enumerate() {
        column[i] = c;
    }
    let labels: Vec<usize> = idxs_q.iter().map(|&i| column[first + i]).collect();
    let qs = q
        .reshape([b * kk, d])
        .select(0, index_tensor(&idxs_q, &device));
    let qs = l2_normalize(predictor(qs), 1);
    let k_all = world.all_gather(k.reshape([b * kk, d]).detach());
    let ks = l2_normalize(k_all.select(0, index_tensor(&keys, &device)), 1);
    let logits = qs.matmul(ks.transpose()).div_scalar(tau);
    let ce = weighted_cross_entropy(logits.clone(), &labels, None);
    let share = mean_share(world, idxs_q.len() as f64);
    SlotContrast {
        loss: ce.mul_scalar(2.0 * tau * share),
        mask_q,
        mask_k,
        idxs_q,
        labels,
        logits,
    }
}
