//! f64 direct convolutions (forward, weight gradient, input gradient) for the kernels' unit
//! tests, and the fixtures README's float32 comparison rule.

use super::geometry::ConvGeometry;

/// Every (output index, input index, weight index) triple of `g` that contributes a product.
fn each_product(g: &ConvGeometry, mut f: impl FnMut(usize, usize, usize)) {
    for n in 0..g.batch {
        for o in 0..g.out_c {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let yi = ((n * g.out_c + o) * g.out_h + oy) * g.out_w + ox;
                    for c in 0..g.in_c {
                        for ky in 0..g.k_h {
                            for kx in 0..g.k_w {
                                let iy = (oy * g.stride_h + ky) as isize - g.pad_t as isize;
                                let ix = (ox * g.stride_w + kx) as isize - g.pad_l as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= g.in_h as isize
                                    || ix >= g.in_w as isize
                                {
                                    continue;
                                }
                                let xi = ((n * g.in_c + c) * g.in_h + iy as usize) * g.in_w
                                    + ix as usize;
                                let wi = ((o * g.in_c + c) * g.k_h + ky) * g.k_w + kx;
                                f(yi, xi, wi);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `y = conv(x, w)`.
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f64> {
    let mut y = vec![0.0; g.batch * g.out_len()];
    each_product(g, |yi, xi, wi| y[yi] += x[xi] as f64 * w[wi] as f64);
    y
}

/// `dw = Σ dy · x` over the batch.
pub fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f64> {
    let mut dw = vec![0.0; g.out_c * g.patch_len()];
    each_product(g, |yi, xi, wi| dw[wi] += dy[yi] as f64 * x[xi] as f64);
    dw
}

/// `dx = Σ dy · w`.
pub fn input_grad(g: &ConvGeometry, w: &[f32], dy: &[f32]) -> Vec<f64> {
    let mut dx = vec![0.0; g.batch * g.in_len()];
    each_product(g, |yi, xi, wi| dx[xi] += dy[yi] as f64 * w[wi] as f64);
    dx
}

/// The fixtures README's float32 rule: max|got − want| ≤ 2e-5 · max|want| + 1e-7.
pub fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (*a as f64 - b).abs() <= 2e-5 * scale + 1e-7,
            "{what}[{i}]: {a} vs {b}"
        );
    }
}

/// Deterministic test values in [-1, 1].
pub fn values(len: usize, seed: f32) -> Vec<f32> {
    (0..len)
        .map(|i| ((i as f32 + seed) * 0.618).sin())
        .collect()
}
