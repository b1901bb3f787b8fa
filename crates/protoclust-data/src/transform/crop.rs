//! RandomResizedCrop with torchvision's sampling, returning the crop box it chose.

use super::geometry::CropBox;
use super::resample::{resize_region, Interpolation};
use crate::FloatImage;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// torchvision's `RandomResizedCrop(size, scale, ratio, interpolation)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomResizedCrop {
    /// Output side in pixels (square output).
    pub size: usize,
    /// Range of the crop's area as a fraction of the image area.
    pub scale: [f32; 2],
    /// Range of the crop's aspect ratio (w/h), sampled log-uniformly.
    pub ratio: [f32; 2],
    /// Resampling filter.
    pub interpolation: Interpolation,
}

impl Default for RandomResizedCrop {
    fn default() -> Self {
        Self {
            size: 224,
            scale: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
            interpolation: Interpolation::Bilinear,
        }
    }
}

impl RandomResizedCrop {
    /// Samples a crop box in integer pixel coordinates (10 tries, then a central crop).
    pub fn sample_box(&self, width: usize, height: usize, rng: &mut impl Rng) -> CropBox {
        let (w_img, h_img) = (width as f32, height as f32);
        let area = w_img * h_img;
        let (lr0, lr1) = (self.ratio[0].ln(), self.ratio[1].ln());
        for _ in 0..10 {
            let target = area * rng.random_range(self.scale[0]..=self.scale[1]);
            let aspect = rng.random_range(lr0..=lr1).exp();
            let w = (target * aspect).sqrt().round();
            let h = (target / aspect).sqrt().round();
            if w > 0.0 && h > 0.0 && w <= w_img && h <= h_img {
                let i = rng.random_range(0..=(height - h as usize));
                let j = rng.random_range(0..=(width - w as usize));
                return CropBox {
                    x: j as f32,
                    y: i as f32,
                    w,
                    h,
                };
            }
        }
        // Fallback: the largest central crop within the ratio range.
        let in_ratio = w_img / h_img;
        let (w, h) = if in_ratio < self.ratio[0] {
            (w_img, (w_img / self.ratio[0]).round())
        } else if in_ratio > self.ratio[1] {
            ((h_img * self.ratio[1]).round(), h_img)
        } else {
            (w_img, h_img)
        };
        CropBox {
            x: ((w_img - w) / 2.0).floor(),
            y: ((h_img - h) / 2.0).floor(),
            w,
            h,
        }
    }

    /// Crops `b` out of `img` and resizes it to `size` × `size`.
    pub fn apply_box(&self, img: &FloatImage, b: &CropBox) -> FloatImage {
        resize_region(
            img,
            (b.x, b.y, b.w, b.h),
            self.size,
            self.size,
            self.interpolation,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn boxes_stay_inside_and_respect_scale() {
        let rrc = RandomResizedCrop {
            size: 16,
            scale: [0.14, 1.0],
            ..Default::default()
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..500 {
            let b = rrc.sample_box(32, 24, &mut rng);
            assert!(b.x >= 0.0 && b.y >= 0.0 && b.x + b.w <= 32.0 && b.y + b.h <= 24.0);
            assert!(b.area() >= 0.10 * 32.0 * 24.0, "{b:?}");
        }
    }
}
