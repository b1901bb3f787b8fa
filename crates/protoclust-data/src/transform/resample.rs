//! Separable resampling with PIL's filters (antialiased when shrinking).

use crate::FloatImage;
use serde::{Deserialize, Serialize};

/// Interpolation filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// Triangle filter (PIL BILINEAR).
    #[default]
    Bilinear,
    /// Cubic filter with a = -0.5 (PIL BICUBIC).
    Bicubic,
}

impl Interpolation {
    fn support(self) -> f32 {
        match self {
            Interpolation::Bilinear => 1.0,
            Interpolation::Bicubic => 2.0,
        }
    }
    fn weight(self, x: f32) -> f32 {
        let x = x.abs();
        match self {
            Interpolation::Bilinear => (1.0 - x).max(0.0),
            Interpolation::Bicubic => {
                let a = -0.5;
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
        }
    }
}

/// Per output index: first source index and normalised weights.
fn coefficients(
    in_start: f32,
    in_len: f32,
    in_size: usize,
    out_size: usize,
    f: Interpolation,
) -> Vec<(usize, Vec<f32>)> {
    let scale = in_len / out_size as f32;
    let filter_scale = scale.max(1.0);
    let support = f.support() * filter_scale;
    (0..out_size)
        .map(|o| {
            let center = in_start + (o as f32 + 0.5) * scale;
            let lo = ((center - support).floor().max(0.0)) as usize;
            let hi = ((center + support).ceil() as usize).min(in_size);
            let mut w: Vec<f32> = (lo..hi)
                .map(|i| f.weight((i as f32 + 0.5 - center) / filter_scale))
                .collect();
            let sum: f32 = w.iter().sum();
            if sum.abs() > 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            }
            (lo, w)
        })
        .collect()
}

/// Resamples the region (x, y, w, h) of `img` (source pixel coordinates, may be fractional) to
/// `out_w` × `out_h`.
pub fn resize_region(
    img: &FloatImage,
    region: (f32, f32, f32, f32),
    out_w: usize,
    out_h: usize,
    f: Interpolation,
) -> FloatImage {
    let (x, y, w, h) = region;
    let cx = coefficients(x, w, img.width, out_w, f);
    let cy = coefficients(y, h, img.height, out_h, f);
    let (iw, ih) = (img.width, img.height);
    // Horizontal pass: ih × out_w per channel.
    let mut tmp = vec![0f32; 3 * ih * out_w];
    for c in 0..3 {
        let plane = &img.data[c * iw * ih..(c + 1) * iw * ih];
        for row in 0..ih {
            let src = &plane[row * iw..(row + 1) * iw];
            for (o, (lo, ws)) in cx.iter().enumerate() {
                let mut acc = 0.0;
                for (k, wt) in ws.iter().enumerate() {
                    acc += src[lo + k] * wt;
                }
                tmp[c * ih * out_w + row * out_w + o] = acc;
            }
        }
    }
    let mut data = vec![0f32; 3 * out_h * out_w];
    for c in 0..3 {
        for (o, (lo, ws)) in cy.iter().enumerate() {
            let dst = &mut data[c * out_h * out_w + o * out_w..c * out_h * out_w + (o + 1) * out_w];
            for (k, wt) in ws.iter().enumerate() {
                let src =
                    &tmp[c * ih * out_w + (lo + k) * out_w..c * ih * out_w + (lo + k + 1) * out_w];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += s * wt;
                }
            }
        }
    }
    if f == Interpolation::Bicubic {
        // Cubic overshoot: keep the value range of an 8-bit pipeline.
        data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    }
    FloatImage {
        width: out_w,
        height: out_h,
        data,
    }
}

/// Resizes the whole image to `out_w` × `out_h`.
pub fn resize(img: &FloatImage, out_w: usize, out_h: usize, f: Interpolation) -> FloatImage {
    resize_region(
        img,
        (0.0, 0.0, img.width as f32, img.height as f32),
        out_w,
        out_h,
        f,
    )
}

/// Mirrors the image left to right.
pub fn hflip(img: &mut FloatImage) {
    let w = img.width;
    for row in img.data.chunks_exact_mut(w) {
        row.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_resize_keeps_pixels_and_constant_stays_constant() {
        let img = FloatImage {
            width: 4,
            height: 3,
            data: (0..36).map(|v| v as f32 / 36.0).collect(),
        };
        let same = resize(&img, 4, 3, Interpolation::Bilinear);
        for (a, b) in same.data.iter().zip(&img.data) {
            assert!((a - b).abs() < 1e-6);
        }
        let flat = FloatImage {
            width: 7,
            height: 5,
            data: vec![0.25; 105],
        };
        for f in [Interpolation::Bilinear, Interpolation::Bicubic] {
            let r = resize(&flat, 3, 11, f);
            assert!(r.data.iter().all(|v| (v - 0.25).abs() < 1e-5));
        }
    }
}
