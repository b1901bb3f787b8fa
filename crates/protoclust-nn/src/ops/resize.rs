//! Separable resampling of N × C × H × W maps as two small matrix products (differentiable).
//!
//! PyTorch's bilinear `F.interpolate(align_corners=False)` and `AdaptiveAvgPool2d` are both
//! linear maps along each spatial axis, so `out = A_h · x · A_wᵀ` per channel with an
//! out × in weight matrix per axis; gradients come from the matmuls.

use super::host::matrix;
use burn::tensor::Tensor;

/// Weights (out × in, row-major) of bilinear resampling with align_corners = false.
pub fn bilinear_weights(out: usize, inp: usize) -> Vec<f32> {
    let mut w = vec![0f32; out * inp];
    let scale = inp as f64 / out as f64;
    for d in 0..out {
        // PyTorch's area_pixel_compute_source_index: negative sources clamp to 0.
        let src = ((d as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(inp - 1);
        let i1 = if i0 < inp - 1 { i0 + 1 } else { i0 };
        let l = (src - i0 as f64) as f32;
        w[d * inp + i0] += 1.0 - l;
        w[d * inp + i1] += l;
    }
    w
}

/// Weights (out × in, row-major) of `AdaptiveAvgPool` along one axis.
pub fn adaptive_pool_weights(out: usize, inp: usize) -> Vec<f32> {
    let mut w = vec![0f32; out * inp];
    for o in 0..out {
        let start = o * inp / out;
        let end = ((o + 1) * inp).div_ceil(out);
        let v = 1.0 / (end - start) as f32;
        for i in start..end {
            w[o * inp + i] = v;
        }
    }
    w
}

/// Product of two row-major matrices, a (r × k) · b (k × c).
pub fn compose(a: &[f32], b: &[f32], r: usize, k: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0f32; r * c];
    for i in 0..r {
        for t in 0..k {
            let av = a[i * k + t];
            if av != 0.0 {
                for j in 0..c {
                    out[i * c + j] += av * b[t * c + j];
                }
            }
        }
    }
    out
}

/// `out[n, c, i, j] = Σ_{h, w} rows[i, h] · x[n, c, h, w] · cols[j, w]` for weight matrices
/// `rows` (OH × H) and `cols` (OW × W) given row-major.
pub fn separable(x: Tensor<4>, rows: &[f32], oh: usize, cols: &[f32], ow: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let cols_t = matrix(cols.to_vec(), ow, w, &device).transpose();
    let rows_t = matrix(rows.to_vec(), oh, h, &device).transpose();
    let y = x.reshape([n * c * h, w]).matmul(cols_t); // (n·c·h) × ow
    let y = y.reshape([n * c, h, ow]).swap_dims(1, 2); // (n·c) × ow × h
    let y = y.reshape([n * c * ow, h]).matmul(rows_t); // (n·c·ow) × oh
    y.reshape([n, c, ow, oh]).swap_dims(2, 3)
}

/// Bilinear resize to `oh × ow` (PyTorch `F.interpolate(mode="bilinear", align_corners=False)`).
pub fn resize_bilinear(x: Tensor<4>, oh: usize, ow: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    separable(
        x,
        &bilinear_weights(oh, h),
        oh,
        &bilinear_weights(ow, w),
        ow,
    )
}

/// Adaptive average pooling to `oh × ow` (PyTorch `AdaptiveAvgPool2d`).
pub fn adaptive_avg_pool(x: Tensor<4>, oh: usize, ow: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    separable(
        x,
        &adaptive_pool_weights(oh, h),
        oh,
        &adaptive_pool_weights(ow, w),
        ow,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn bilinear_to_the_same_size_is_the_identity_and_rows_sum_to_one() {
        let w = bilinear_weights(5, 5);
        for i in 0..5 {
            for j in 0..5 {
                assert_eq!(w[i * 5 + j], (i == j) as u8 as f32);
            }
        }
        for (o, i) in [(8, 7), (8, 4), (3, 11), (45, 12)] {
            let w = bilinear_weights(o, i);
            for r in 0..o {
                let s: f32 = w[r * i..(r + 1) * i].iter().sum();
                assert!((s - 1.0).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn pooling_matches_block_means_and_separable_matches_a_direct_sum() {
        let dev = Device::flex();
        let x: Tensor<4> = Tensor::random([2, 3, 4, 6], Distribution::Normal(0.0, 1.0), &dev);
        let p = adaptive_avg_pool(x.clone(), 2, 3);
        let v = crate::ops::host::to_f32(x);
        let got = crate::ops::host::to_f32(p);
        let mean = |n: usize, c: usize, i: usize, j: usize| {
            let mut s = 0.0;
            for h in 2 * i..2 * i + 2 {
                for w in 2 * j..2 * j + 2 {
                    s += v[((n * 3 + c) * 4 + h) * 6 + w];
                }
            }
            s / 4.0
        };
        for n in 0..2 {
            for c in 0..3 {
                for i in 0..2 {
                    for j in 0..3 {
                        let g = got[((n * 3 + c) * 2 + i) * 3 + j];
                        assert!((g - mean(n, c, i, j)).abs() < 1e-5);
                    }
                }
            }
        }
    }
}
