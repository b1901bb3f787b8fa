//! Photometric augmentations: colour jitter, grayscale, solarize.

use crate::FloatImage;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// torchvision's `ColorJitter(brightness, contrast, saturation, hue)` in random order, applied
/// with probability `p` (`RandomApply`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColorJitter {
    /// Brightness strength: factor in [max(0, 1-b), 1+b].
    pub brightness: f32,
    /// Contrast strength.
    pub contrast: f32,
    /// Saturation strength.
    pub saturation: f32,
    /// Hue shift range [-h, h] (fraction of a turn, at most 0.5).
    pub hue: f32,
    /// Probability of applying the jitter at all.
    pub p: f32,
}

impl Default for ColorJitter {
    fn default() -> Self {
        Self {
            brightness: 0.8,
            contrast: 0.8,
            saturation: 0.8,
            hue: 0.2,
            p: 0.8,
        }
    }
}

fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

fn blend(img: &mut FloatImage, other: impl Fn(usize, usize) -> f32, factor: f32) {
    let n = img.plane();
    for c in 0..3 {
        for p in 0..n {
            let v = &mut img.data[c * n + p];
            *v = (factor * *v + (1.0 - factor) * other(c, p)).clamp(0.0, 1.0);
        }
    }
}

fn gray_plane(img: &FloatImage) -> Vec<f32> {
    let n = img.plane();
    (0..n)
        .map(|p| luma(img.data[p], img.data[n + p], img.data[2 * n + p]))
        .collect()
}

fn shift_hue(img: &mut FloatImage, shift: f32) {
    let n = img.plane();
    for p in 0..n {
        let (r, g, b) = (img.data[p], img.data[n + p], img.data[2 * n + p]);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let d = max - min;
        let v = max;
        let s = if max > 0.0 { d / max } else { 0.0 };
        let mut h = if d == 0.0 {
            0.0
        } else if max == r {
            ((g - b) / d).rem_euclid(6.0) / 6.0
        } else if max == g {
            ((b - r) / d + 2.0) / 6.0
        } else {
            ((r - g) / d + 4.0) / 6.0
        };
        h = (h + shift).rem_euclid(1.0);
        let i = (h * 6.0).floor();
        let f = h * 6.0 - i;
        let (pp, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let (r2, g2, b2) = match i as i32 % 6 {
            0 => (v, t, pp),
            1 => (q, v, pp),
            2 => (pp, v, t),
            3 => (pp, q, v),
            4 => (t, pp, v),
            _ => (v, pp, q),
        };
        img.data[p] = r2;
        img.data[n + p] = g2;
        img.data[2 * n + p] = b2;
    }
}

impl ColorJitter {
    /// Applies the jitter in place (or leaves the image alone with probability 1-p).
    pub fn apply(&self, img: &mut FloatImage, rng: &mut impl Rng) {
        if rng.random::<f32>() >= self.p {
            return;
        }
        let mut order = [0usize, 1, 2, 3];
        order.shuffle(rng);
        let factor = |s: f32, rng: &mut dyn rand::RngCore| -> Option<f32> {
            (s > 0.0).then(|| rng.random_range((1.0 - s).max(0.0)..=1.0 + s))
        };
        for op in order {
            match op {
                0 => {
                    if let Some(f) = factor(self.brightness, rng) {
                        blend(img, |_, _| 0.0, f);
                    }
                }
                1 => {
                    if let Some(f) = factor(self.contrast, rng) {
                        let g = gray_plane(img);
                        let mean = g.iter().sum::<f32>() / g.len().max(1) as f32;
                        blend(img, |_, _| mean, f);
                    }
                }
                2 => {
                    if let Some(f) = factor(self.saturation, rng) {
                        let g = gray_plane(img);
                        blend(img, |_, p| g[p], f);
                    }
                }
                _ => {
                    if self.hue > 0.0 {
                        let h = rng.random_range(-self.hue..=self.hue);
                        shift_hue(img, h);
                    }
                }
            }
        }
    }
}

/// Replaces every channel by the luma (ITU-R 601-2, as PIL's "L").
pub fn grayscale(img: &mut FloatImage) {
    let g = gray_plane(img);
    let n = img.plane();
    for c in 0..3 {
        img.data[c * n..(c + 1) * n].copy_from_slice(&g);
    }
}

/// Inverts values at or above `threshold` (128/255 in the papers).
pub fn solarize(img: &mut FloatImage, threshold: f32) {
    img.data
        .iter_mut()
        .filter(|v| **v >= threshold)
        .for_each(|v| *v = 1.0 - *v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hue_shift_by_a_full_turn_is_identity_and_grayscale_is_grey() {
        let mut img = FloatImage {
            width: 2,
            height: 1,
            data: vec![0.9, 0.1, 0.2, 0.6, 0.3, 0.8],
        };
        let orig = img.clone();
        shift_hue(&mut img, 1.0);
        for (a, b) in img.data.iter().zip(&orig.data) {
            assert!((a - b).abs() < 1e-5);
        }
        grayscale(&mut img);
        assert_eq!(img.data[0], img.data[2]);
        assert_eq!(img.data[0], img.data[4]);
    }
}
