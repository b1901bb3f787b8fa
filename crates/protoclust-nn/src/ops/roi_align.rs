//! RoIAlign (torchvision `roi_align`, aligned = true) of one box per sample, with an optional
//! horizontal flip of the result — SlotCon's inverse augmentation.
//!
//! With a bin grid of g samples per bin side, each output cell is a mean of bilinear samples,
//! and a bilinear sample's weight is a product of a row weight and a column weight; so the
//! whole operation is `out[b] = R_b · x[b] · C_bᵀ` with per-sample matrices built on the host,
//! and the backward pass comes from the matmuls.

use burn::tensor::{Tensor, TensorData};

/// One box in map pixels (x1, y1, x2, y2), before the aligned −0.5 shift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoiBox {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

/// Weights (out × len, row-major) of the bins along one axis: `out` bins over [start, end)
/// (already shifted), `grid` samples per bin (0: adaptive, ceil(extent / out)).
pub fn roi_axis_weights(start: f32, end: f32, out: usize, len: usize, grid: usize) -> Vec<f32> {
    let extent = end - start;
    let bin = extent / out as f32;
    let g = if grid > 0 {
        grid
    } else {
        (extent / out as f32).ceil().max(1.0) as usize
    };
    let mut w = vec![0f32; out * len];
    for o in 0..out {
        for s in 0..g {
            let mut p = start + o as f32 * bin + (s as f32 + 0.5) * bin / g as f32;
            // torchvision's bilinear_interpolate, one axis at a time.
            if p < -1.0 || p > len as f32 {
                continue;
            }
            if p <= 0.0 {
                p = 0.0;
            }
            let mut lo = p.floor() as usize;
            let hi;
            if lo >= len - 1 {
                lo = len - 1;
                hi = len - 1;
                p = lo as f32;
            } else {
                hi = lo + 1;
            }
            let l = p - lo as f32;
            w[o * len + lo] += (1.0 - l) / g as f32;
            w[o * len + hi] += l / g as f32;
        }
    }
    w
}

/// RoIAlign of `x` (B × C × H × W) over one box per sample to `oh × ow` (spatial scale 1,
/// aligned, adaptive sampling), then a horizontal flip of the samples whose `flip` is set.
pub fn roi_align_flip(
    x: Tensor<4>,
    boxes: &[RoiBox],
    flip: &[bool],
    oh: usize,
    ow: usize,
) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let device = x.device();
    let mut rows = Vec::with_capacity(b * oh * h);
    let mut cols = Vec::with_capacity(b * w * ow);
    for (i, r) in boxes.iter().enumerate().take(b) {
        rows.extend(roi_axis_weights(r.y1 - 0.5, r.y2 - 0.5, oh, h, 0));
        let cw = roi_axis_weights(r.x1 - 0.5, r.x2 - 0.5, ow, w, 0);
        // C_bᵀ (w × ow), output columns reversed when flipped.
        let mut t = vec![0f32; w * ow];
        for o in 0..ow {
            let dst = if flip.get(i).copied().unwrap_or(false) {
                ow - 1 - o
            } else {
                o
            };
            for k in 0..w {
                t[k * ow + dst] = cw[o * w + k];
            }
        }
        cols.extend(t);
    }
    let rows: Tensor<4> = Tensor::<3>::from_data(TensorData::new(rows, [b, oh, h]), &device)
        .unsqueeze_dim::<4>(1)
        .expand([b, c, oh, h]);
    let cols: Tensor<4> = Tensor::<3>::from_data(TensorData::new(cols, [b, w, ow]), &device)
        .unsqueeze_dim::<4>(1)
        .expand([b, c, w, ow]);
    rows.matmul(x).matmul(cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn the_whole_map_without_flip_is_the_identity_and_a_flip_reverses_columns() {
        let dev = Device::flex();
        let x: Tensor<4> = Tensor::random([2, 3, 5, 6], Distribution::Normal(0.0, 1.0), &dev);
        let full = RoiBox {
            x1: 0.0,
            y1: 0.0,
            x2: 6.0,
            y2: 5.0,
        };
        let same = roi_align_flip(x.clone(), &[full, full], &[false, true], 5, 6);
        let a = crate::ops::host::to_f32(x);
        let b = crate::ops::host::to_f32(same);
        for i in 0..3 * 5 * 6 {
            assert!((a[i] - b[i]).abs() < 1e-5);
        }
        for c in 0..3 {
            for y in 0..5 {
                for x in 0..6 {
                    let src = ((3 + c) * 5 + y) * 6 + x;
                    let dst = ((3 + c) * 5 + y) * 6 + (5 - x);
                    assert!((a[src] - b[dst]).abs() < 1e-5);
                }
            }
        }
    }
}
