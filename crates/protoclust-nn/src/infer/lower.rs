//! Patch rows of a channels-last convolution: for each output pixel, its kh·kw taps of C
//! input channels side by side (zeros outside the image), the left operand of the product.

use super::activation::Activation;
use crate::kernels::bf16_gemm;

/// Where a convolution's taps fall: kernel size, stride and the top/left padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taps {
    /// Kernel rows and columns.
    pub kernel: [usize; 2],
    /// Row and column stride.
    pub stride: [usize; 2],
    /// Padding above and left of the image.
    pub pad: [usize; 2],
}

impl Taps {
    /// Whether the patch rows are the input's own pixel rows (1 × 1, stride 1, no padding).
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.pad == [0, 0]
    }
}

/// Writes the patch rows of output pixels `first..first + rows` (flattened over image, row,
/// column of the `oh × ow` output) into `dst`, each `kh·kw·C` long, tap-major.
pub fn patch_rows(
    x: &Activation,
    taps: Taps,
    out_hw: [usize; 2],
    first: usize,
    rows: usize,
    dst: &mut [f32],
) {
    lower(x, taps, out_hw, first, rows, dst, 1, 0.0, |s, d| {
        d.copy_from_slice(s)
    });
}

/// [`patch_rows`] rounded to bf16 pairs as they are written (`kh·kw·C / 2` per row), for an even
/// channel count.
///
/// # Panics
/// When `C` is odd (a pair would straddle two taps) or the CPU lacks AVX512-BF16.
pub fn patch_pairs(
    x: &Activation,
    taps: Taps,
    out_hw: [usize; 2],
    first: usize,
    rows: usize,
    dst: &mut [u32],
) {
    assert!(x.c.is_multiple_of(2), "patch_pairs: odd channel count");
    lower(x, taps, out_hw, first, rows, dst, 2, 0, bf16_gemm::to_pairs);
}

/// The lowering of both: `per` input values per element of `dst`, `copy` converting a run.
#[allow(clippy::too_many_arguments)]
fn lower<T: Copy>(
    x: &Activation,
    taps: Taps,
    out_hw: [usize; 2],
    first: usize,
    rows: usize,
    dst: &mut [T],
    per: usize,
    zero: T,
    copy: impl Fn(&[f32], &mut [T]),
) {
    let [kh, kw] = taps.kernel;
    let (c, ce) = (x.c, x.c / per);
    let row_len = kh * kw * ce;
    let [oh, ow] = out_hw;
    for (r, out) in dst[..rows * row_len].chunks_exact_mut(row_len).enumerate() {
        let p = first + r;
        let (img, rest) = (p / (oh * ow), p % (oh * ow));
        let (oy, ox) = (rest / ow, rest % ow);
        let image = &x.data[img * x.h * x.w * c..(img + 1) * x.h * x.w * c];
        for dy in 0..kh {
            let iy = (oy * taps.stride[0] + dy).wrapping_sub(taps.pad[0]);
            let tap_row = &mut out[dy * kw * ce..(dy + 1) * kw * ce];
            if iy >= x.h {
                tap_row.fill(zero);
                continue;
            }
            let ix0 = (ox * taps.stride[1]) as isize - taps.pad[1] as isize;
            // The columns of this kernel row inside the image are one contiguous run.
            let lo = (-ix0).clamp(0, kw as isize) as usize;
            let hi = (x.w as isize - ix0).clamp(0, kw as isize) as usize;
            tap_row[..lo * ce].fill(zero);
            if hi > lo {
                let start = (iy * x.w) as isize + ix0 + lo as isize;
                let start = start as usize * c;
                copy(
                    &image[start..start + (hi - lo) * c],
                    &mut tap_row[lo * ce..hi * ce],
                );
            }
            tap_row[hi.max(lo) * ce..].fill(zero);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_the_rounded_patch_rows() {
        if !bf16_gemm::supported() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        for (n, c, h, w, k, stride, pad) in [
            (2, 4, 7, 5, 3, 1, 1),
            (1, 6, 9, 9, 3, 2, 1),
            (3, 2, 5, 8, 1, 2, 0),
            (1, 34, 6, 4, 3, 1, 1),
        ] {
            let data: Vec<f32> = (0..n * h * w * c)
                .map(|i| ((i * 7919 % 1013) as f32 - 500.0) / 97.0)
                .collect();
            let x = Activation { data, n, h, w, c };
            let taps = Taps {
                kernel: [k, k],
                stride: [stride, stride],
                pad: [pad, pad],
            };
            let out = [
                (h + 2 * pad - k) / stride + 1,
                (w + 2 * pad - k) / stride + 1,
            ];
            let (first, rows) = (1, n * out[0] * out[1] - 1);
            let len = k * k * c;
            let mut f = vec![f32::NAN; rows * len];
            patch_rows(&x, taps, out, first, rows, &mut f);
            let mut want = vec![0u32; rows * len / 2];
            bf16_gemm::to_pairs(&f, &mut want);
            let mut got = vec![u32::MAX; rows * len / 2];
            patch_pairs(&x, taps, out, first, rows, &mut got);
            assert_eq!(got, want, "N{n} C{c} {h}×{w} k{k} s{stride} p{pad}");
        }
    }
}
