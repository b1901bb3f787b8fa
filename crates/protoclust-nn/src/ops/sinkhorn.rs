//! Sinkhorn-Knopp equipartition codes, as SwAV's `distributed_sinkhorn`.

use crate::collective::Collective;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Which arithmetic runs the Sinkhorn iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SinkhornMode {
    /// The official arithmetic, step for step: `exp(scores/eps)` without max subtraction
    /// (overflows in float32 once |score|/eps > 88).
    Official,
    /// The same iterations in the log domain: safe in float32 and half precision.
    #[default]
    Stable,
}

/// Equipartition codes for a batch of prototype scores (B × K, rows = samples).
///
/// Divides the whole matrix by its sum, then `iters` times normalises prototype rows (to 1/K)
/// and sample columns (to 1/B), ending with the samples; returns B × K rows that sum to 1.
/// `B` is the global batch size: sums over samples go through `collective`.
pub fn sinkhorn(
    scores: Tensor<2>,
    epsilon: f64,
    iters: usize,
    mode: SinkhornMode,
    collective: &impl Collective,
) -> Tensor<2> {
    let scores = scores.detach();
    match mode {
        SinkhornMode::Official => sinkhorn_official(scores, epsilon, iters, collective),
        SinkhornMode::Stable => sinkhorn_log(scores, epsilon, iters, collective),
    }
}

fn sinkhorn_official(
    scores: Tensor<2>,
    epsilon: f64,
    iters: usize,
    collective: &impl Collective,
) -> Tensor<2> {
    let [b_local, k] = scores.dims();
    let b = (b_local * collective.world_size()) as f64;
    // K × B, as the official code transposes.
    let mut q = scores.div_scalar(epsilon).exp().transpose();
    let total = collective.all_reduce_sum(q.clone().sum());
    q = q.div(total.unsqueeze());
    for _ in 0..iters {
        let rows = collective.all_reduce_sum(q.clone().sum_dim(1));
        q = q.div(rows).div_scalar(k as f64);
        let cols = q.clone().sum_dim(0);
        q = q.div(cols).div_scalar(b);
    }
    q.mul_scalar(b).transpose()
}

/// Global log-sum-exp of `x` along `dim` (or of the whole tensor when `dim` is None), where the
/// reduction crosses processes when `global` is set.
fn logsumexp(
    x: Tensor<2>,
    dim: Option<usize>,
    global: bool,
    collective: &impl Collective,
) -> Tensor<2> {
    let reduce_max = |t: Tensor<2>| -> Tensor<2> {
        match dim {
            Some(d) => t.max_dim(d),
            None => t.max().unsqueeze(),
        }
    };
    let reduce_sum = |t: Tensor<2>| -> Tensor<2> {
        match dim {
            Some(d) => t.sum_dim(d),
            None => t.sum().unsqueeze(),
        }
    };
    let mut m = reduce_max(x.clone()).detach();
    if global {
        m = collective.all_reduce_max(m);
    }
    let mut s = reduce_sum(x.sub(m.clone()).exp());
    if global {
        s = collective.all_reduce_sum(s);
    }
    s.log().add(m)
}

fn sinkhorn_log(
    scores: Tensor<2>,
    epsilon: f64,
    iters: usize,
    collective: &impl Collective,
) -> Tensor<2> {
    let [b_local, k] = scores.dims();
    let b = (b_local * collective.world_size()) as f64;
    let (ln_k, ln_b) = ((k as f64).ln(), b.ln());
    // Work in B × K: prototype rows of the official code are columns here.
    let mut log_q = scores.div_scalar(epsilon);
    log_q = log_q.clone().sub(logsumexp(log_q, None, true, collective));
    for _ in 0..iters {
        let per_proto = logsumexp(log_q.clone(), Some(0), true, collective);
        log_q = log_q.sub(per_proto).sub_scalar(ln_k);
        let per_sample = logsumexp(log_q.clone(), Some(1), false, collective);
        log_q = log_q.sub(per_sample).sub_scalar(ln_b);
    }
    log_q.add_scalar(ln_b).exp()
}
