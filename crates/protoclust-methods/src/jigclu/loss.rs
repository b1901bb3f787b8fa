//! JigClu's labels and its clustering loss (the official `SupCluLoss`).

use burn::tensor::Tensor;
use protoclust_nn::ops::host::matrix;

/// Source-image id (`permute mod n`) and source position (`permute div n`) of every row.
pub fn jigsaw_labels(permute: &[usize], n: usize) -> (Vec<usize>, Vec<usize>) {
    (
        permute.iter().map(|p| p % n).collect(),
        permute.iter().map(|p| p / n).collect(),
    )
}

/// Supervised-contrastive loss over L2-normalised rows `f` with `labels`: for each anchor the
/// mean over its positives of s_ip − log Σ_{a≠i} exp(s_ia), s = f·fᵀ/T, scaled by −T/T_base and
/// averaged over anchors.
pub fn sup_clu_loss(f: Tensor<2>, labels: &[usize], t: f64, base_t: f64) -> Tensor<1> {
    let [n, _] = f.dims();
    let device = f.device();
    let mut not_self = vec![1f32; n * n];
    let mut positive = vec![0f32; n * n];
    let mut counts = vec![0f32; n];
    for i in 0..n {
        not_self[i * n + i] = 0.0;
        for j in 0..n {
            if j != i && labels[j] == labels[i] {
                positive[i * n + j] = 1.0;
                counts[i] += 1.0;
            }
        }
    }
    // Anchors without a positive would divide by zero (the official code gives NaN); they
    // cannot occur in JigClu, where every image has m² patches, but are left out if they do.
    let valid: Vec<f32> = counts.iter().map(|&c| (c > 0.0) as u8 as f32).collect();
    let anchors: f32 = valid.iter().sum();
    let inv_counts: Vec<f32> = counts.iter().map(|&c| 1.0 / c.max(1.0)).collect();
    let not_self = matrix(not_self, n, n, &device);
    let positive = matrix(positive, n, n, &device);
    let s = f.clone().matmul(f.transpose()).div_scalar(t);
    let shifted = s.clone() - s.detach().max_dim(1);
    let denom = (shifted.clone().exp() * not_self).sum_dim(1).log();
    let log_prob = shifted - denom;
    let mean_pos = (log_prob * positive).sum_dim(1).reshape([n])
        * Tensor::<1>::from_floats(inv_counts.as_slice(), &device)
        * Tensor::<1>::from_floats(valid.as_slice(), &device);
    mean_pos
        .sum()
        .mul_scalar(-(t / base_t) / anchors.max(1.0) as f64)
}
