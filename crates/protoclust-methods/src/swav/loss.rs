//! SwAV's swapped-prediction loss, as one iteration of the official `train` loop.

use super::queue::SwavQueue;
use burn::tensor::activation::log_softmax;
use burn::tensor::Tensor;
use protoclust_nn::collective::Collective;
use protoclust_nn::heads::Prototypes;
use protoclust_nn::ops::rows;
use protoclust_nn::ops::{sinkhorn, SinkhornMode};

/// Hyper-parameters of the loss.
#[derive(Debug, Clone)]
pub struct SwavLossParams {
    /// Total number of crops (all sizes).
    pub total_crops: usize,
    /// Crops whose codes serve as targets (`crops_for_assign`).
    pub crops_for_assign: Vec<usize>,
    /// Softmax temperature τ of the predictions.
    pub temperature: f64,
    /// Sinkhorn ε.
    pub epsilon: f64,
    /// Sinkhorn iterations.
    pub sinkhorn_iters: usize,
    /// Sinkhorn arithmetic.
    pub mode: SinkhornMode,
}

/// Loss and the codes behind it.
pub struct SwavLoss {
    /// Scalar loss.
    pub loss: Tensor<1>,
    /// Full Sinkhorn output per assignment crop (queue rows first when the queue was used).
    pub codes: Vec<Tensor<2>>,
    /// Whether queue rows entered Sinkhorn in this step.
    pub queue_used: bool,
}

/// SwAV loss of crop-major scores (`total_crops·bs` × K).
///
/// For each assignment crop c: codes q_c = Sinkhorn of its detached scores (with the queue's
/// scores on top when used; targets are the last bs rows), then the mean over the batch of
/// −Σ_k q_c · log softmax(scores_v/τ) summed over every other crop v, divided by (crops − 1);
/// averaged over assignment crops. The queue is scored with `prototypes` before it is updated
/// with `embeddings` of crop c.
pub fn swav_loss(
    scores: Tensor<2>,
    embeddings: &Tensor<2>,
    prototypes: &Prototypes,
    mut queue: Option<&mut SwavQueue>,
    p: &SwavLossParams,
    collective: &impl Collective,
) -> SwavLoss {
    let [n_rows, _] = scores.dims();
    let bs = n_rows / p.total_crops;
    let log_probs = log_softmax(scores.clone().div_scalar(p.temperature), 1);
    let mut total: Option<Tensor<1>> = None;
    let mut codes = Vec::new();
    let mut queue_used = false;
    for (i, &c) in p.crops_for_assign.iter().enumerate() {
        let mut out = rows(scores.clone(), c * bs..(c + 1) * bs).detach();
        if let Some(q) = queue.as_deref_mut() {
            if q.use_queue || q.is_full(i) {
                q.use_queue = true;
                let queue_scores = prototypes.score_detached(q.queues[i].clone());
                out = Tensor::cat(vec![queue_scores, out], 0);
            }
            q.push(i, rows(embeddings.clone(), c * bs..(c + 1) * bs).detach());
            queue_used |= q.use_queue;
        }
        let full = sinkhorn(out, p.epsilon, p.sinkhorn_iters, p.mode, collective);
        let [n, _] = full.dims();
        let q = rows(full.clone(), n - bs..n);
        codes.push(full);
        let mut sub: Option<Tensor<1>> = None;
        for v in (0..p.total_crops).filter(|&v| v != c) {
            let lp = rows(log_probs.clone(), v * bs..(v + 1) * bs);
            let term = (q.clone() * lp).sum_dim(1).mean().neg();
            sub = Some(match sub {
                Some(s) => s + term,
                None => term,
            });
        }
        let sub = sub
            .expect("at least two crops")
            .div_scalar((p.total_crops - 1) as f64);
        total = Some(match total {
            Some(t) => t + sub,
            None => sub,
        });
    }
    let loss = total
        .expect("at least one assignment crop")
        .div_scalar(p.crops_for_assign.len() as f64);
    SwavLoss {
        loss,
        codes,
        queue_used,
    }
}
