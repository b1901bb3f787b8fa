//! Patch rows of a channels-last convolution: for each output pixel, its kh·kw taps of C
//! input channels side by side (zeros outside the image), the left operand of the product.

use super::activation::Activation;

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
    let [kh, kw] = taps.kernel;
    let c = x.c;
    let row_len = kh * kw * c;
    let [oh, ow] = out_hw;
    for (r, out) in dst[..rows * row_len].chunks_exact_mut(row_len).enumerate() {
        let p = first + r;
        let (img, rest) = (p / (oh * ow), p % (oh * ow));
        let (oy, ox) = (rest / ow, rest % ow);
        let image = &x.data[img * x.h * x.w * c..(img + 1) * x.h * x.w * c];
        for dy in 0..kh {
            let iy = (oy * taps.stride[0] + dy).wrapping_sub(taps.pad[0]);
            let tap_row = &mut out[dy * kw * c..(dy + 1) * kw * c];
            if iy >= x.h {
                tap_row.fill(0.0);
                continue;
            }
            let ix0 = (ox * taps.stride[1]) as isize - taps.pad[1] as isize;
            // The columns of this kernel row inside the image are one contiguous run.
            let lo = (-ix0).clamp(0, kw as isize) as usize;
            let hi = (x.w as isize - ix0).clamp(0, kw as isize) as usize;
            tap_row[..lo * c].fill(0.0);
            if hi > lo {
                let start = (iy * x.w) as isize + ix0 + lo as isize;
                let start = start as usize * c;
                tap_row[lo * c..hi * c].copy_from_slice(&image[start..start + (hi - lo) * c]);
            }
            tap_row[hi.max(lo) * c..].fill(0.0);
        }
    }
}
