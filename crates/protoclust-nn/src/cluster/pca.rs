//! PCA whitening of feature rows (DeepCluster's preprocessing before k-means).

use crate::ops::host::{matrix, to_f32};
use burn::tensor::Tensor;
use nalgebra::{DMatrix, SymmetricEigen};

/// Why whitening could not run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PcaError {
    /// More output dimensions than input dimensions or samples.
    #[error("PCA: cannot keep {dim} components of {d}-dimensional features from {n} samples")]
    Dim {
        /// Requested components.
        dim: usize,
        /// Feature dimension.
        d: usize,
        /// Samples.
        n: usize,
    },
}

/// Projects centred rows of `x` (N × D) onto the top `dim` principal axes, each scaled by
/// 1/√(eigenvalue + eps) (faiss `PCAMatrix` with eigen power −0.5).
pub fn pca_whiten(x: &Tensor<2>, dim: usize, eps: f64) -> Result<Tensor<2>, PcaError> {
    let [n, d] = x.dims();
    if dim == 0 || dim > d || n < 2 {
        return Err(PcaError::Dim { dim, d, n });
    }
    let device = x.device();
    let mean = x.clone().mean_dim(0);
    let xc = x.clone() - mean;
    let cov = to_f32(
        xc.clone()
            .transpose()
            .matmul(xc.clone())
            .div_scalar(n as f64),
    );
    let cov = DMatrix::from_iterator(d, d, cov.iter().map(|&v| v as f64));
    let eig = SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let mut proj = vec![0f32; d * dim];
    for (j, &c) in order.iter().take(dim).enumerate() {
        let scale = 1.0 / (eig.eigenvalues[c].max(0.0) + eps).sqrt();
        for i in 0..d {
            proj[i * dim + j] = (eig.eigenvectors[(i, c)] * scale) as f32;
        }
    }
    Ok(xc.matmul(matrix(proj, d, dim, &device)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use rand::{Rng, SeedableRng};

    #[test]
    fn whitened_features_have_identity_covariance() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let n = 500;
        let mut v = Vec::new();
        for _ in 0..n {
            let a: f32 = rng.random_range(-1.0..1.0);
            let b: f32 = rng.random_range(-1.0..1.0);
            let c: f32 = rng.random_range(-1.0..1.0);
            // Correlated, anisotropic 4-d data.
            v.extend([3.0 * a, 3.0 * a + 0.5 * b, 0.2 * c, b - c]);
        }
        let x = matrix(v, n, 4, &Device::flex());
        let y = pca_whiten(&x, 3, 1e-8).unwrap();
        assert_eq!(y.dims(), [n, 3]);
        let cov = to_f32(y.clone().transpose().matmul(y).div_scalar(n as f64));
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((cov[i * 3 + j] - want).abs() < 1e-3, "{cov:?}");
            }
        }
        assert!(pca_whiten(&x, 5, 1e-8).is_err());
    }
}
