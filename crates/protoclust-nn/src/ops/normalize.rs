//! Row-wise L2 normalisation.

use burn::tensor::Tensor;

/// Divides each slice along `dim` by its L2 norm, clamped below at 1e-12 (as `F.normalize`).
pub fn l2_normalize<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(dim)
        .sqrt()
        .clamp_min(1e-12);
    x / norm
}
