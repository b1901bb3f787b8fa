//! JigClu's patches: m × m overlapping crops of each image, each augmented on its own.
//!
//! The official `JigCluTransform` (m = 2) cuts the top-left, bottom-left, top-right and
//! bottom-right quarters, each widened towards the centre by `cross` × the side, in that
//! **column-major** order (PIL's `size` is (width, height) but the code names it (h, w)). Each
//! crop then goes through RandomResizedCrop to the patch size and the photometric pipeline.
//! Crop i of the list is at grid column i / m and row i % m; that index is JigClu's location
//! label.

use super::{Photometric, View, ViewBuilder};
use crate::transform::{resample, ColorJitter, CropBox, Interpolation, RandomResizedCrop};
use crate::{DataError, RgbImage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// m × m overlapping crops per image, each RandomResizedCrop'ed and augmented independently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JigsawPatches {
    /// Crops per side m (2 in the paper; 3 in its ablation).
    pub grid: usize,
    /// Overlap: for m = 2 each crop spans 0.5 + cross of each side (the paper's c = 0.3).
    pub cross: f32,
    /// Output side of every patch in pixels.
    pub size: usize,
    /// RandomResizedCrop area range within each crop.
    pub scale: [f32; 2],
    /// Resampling filter.
    pub interpolation: Interpolation,
    /// Probability of flipping the whole image before cutting the crops (0 in the paper, which
    /// flips each patch through `photometric.flip_p` and so hides left from right).
    pub image_flip_p: f32,
    /// Photometric augmentation of every patch.
    pub photometric: Photometric,
}

impl Default for JigsawPatches {
    /// The paper's ImageNet recipe: 2 × 2 crops, c = 0.3, 112-px patches.
    fn default() -> Self {
        Self {
            grid: 2,
            cross: 0.3,
            size: 112,
            scale: [0.2, 1.0],
            interpolation: Interpolation::Bilinear,
            image_flip_p: 0.0,
            photometric: Photometric {
                jitter: ColorJitter::default(),
                grayscale_p: 0.2,
                blur_p: 0.5,
                ..Default::default()
            },
        }
    }
}

/// Bounds `[start, end)` of crop `k` of `m` along a side of `len` pixels (rounded as PIL).
fn span(k: usize, m: usize, len: usize, cross: f32) -> (usize, usize) {
    // m = 2: [0, len//2 + c·len) and [len//2 − c·len, len); the overlap scales with 2/m.
    let extend = cross * len as f32 * 2.0 / m as f32;
    let edge = |j: usize| (j * len / m) as f32;
    let start = if k == 0 { 0.0 } else { edge(k) - extend };
    let end = if k + 1 == m {
        len as f32
    } else {
        edge(k + 1) + extend
    };
    let round = |v: f32| v.round_ties_even().clamp(0.0, len as f32) as usize;
    (round(start), round(end))
}

impl JigsawPatches {
    /// Number of patches per image (m²).
    pub fn count(&self) -> usize {
        self.grid * self.grid
    }

    /// Source-pixel box `(x0, y0, x1, y1)` of crop `i` (column-major) of a `w × h` image.
    pub fn crop_box(&self, i: usize, w: usize, h: usize) -> (usize, usize, usize, usize) {
        let (col, row) = (i / self.grid, i % self.grid);
        let (x0, x1) = span(col, self.grid, w, self.cross);
        let (y0, y1) = span(row, self.grid, h, self.cross);
        (x0, y0, x1, y1)
    }

    /// Checks the grid, overlap, size and scale.
    pub fn validate(&self, field: &str, image_side: Option<usize>) -> Result<(), DataError> {
        let bad = |name: &str, reason: String| DataError::Config {
            field: format!("{field}.{name}"),
            reason,
        };
        if !(2..=4).contains(&self.grid) {
            return Err(bad("grid", format!("{} is outside 2..=4", self.grid)));
        }
        if !(0.0..=1.0).contains(&self.image_flip_p) {
            return Err(bad(
                "image_flip_p",
                format!("{} is not a probability in [0, 1]", self.image_flip_p),
            ));
        }
        if !(0.0..0.5).contains(&self.cross) {
            return Err(bad("cross", format!("{} is outside [0, 0.5)", self.cross)));
        }
        if self.size == 0 || self.size > 1024 {
            return Err(bad("size", format!("{} is outside 1..=1024", self.size)));
        }
        if let Some(side) = image_side {
            if side < 2 * self.grid {
                return Err(bad(
                    "grid",
                    format!(
                        "{side}-px images are too small for {0} × {0} crops",
                        self.grid
                    ),
                ));
            }
        }
        if !(self.scale[0] > 0.0 && self.scale[0] <= self.scale[1] && self.scale[1] <= 1.0) {
            return Err(bad(
                "scale",
                format!("{:?}: expected 0 < min <= max <= 1", self.scale),
            ));
        }
        self.photometric.validate(&format!("{field}.photometric"))
    }
}

impl ViewBuilder for JigsawPatches {
    fn sizes(&self) -> Vec<usize> {
        vec![self.size; self.count()]
    }

    fn build(&self, image: &RgbImage, rng: &mut ChaCha8Rng) -> Vec<View> {
        let mut src = image.to_float();
        // A flipped image is cut in its own (mirrored) frame: crop i is at position i of what
        // the network sees; the geometry maps it back to the original pixels.
        let mirrored = self.image_flip_p > 0.0 && rng.random::<f32>() < self.image_flip_p;
        if mirrored {
            resample::hflip(&mut src);
        }
        let rrc = RandomResizedCrop {
            size: self.size,
            scale: self.scale,
            interpolation: self.interpolation,
            ..Default::default()
        };
        (0..self.count())
            .map(|i| {
                let (x0, y0, x1, y1) = self.crop_box(i, src.width, src.height);
                let part = src.crop(x0, y0, x1, y1);
                let b = rrc.sample_box(part.width, part.height, rng);
                let img = rrc.apply_box(&part, &b);
                let x = b.x + x0 as f32;
                let crop = CropBox {
                    x: if mirrored {
                        src.width as f32 - x - b.w
                    } else {
                        x
                    },
                    y: b.y + y0 as f32,
                    w: b.w,
                    h: b.h,
                };
                let mut view = self.photometric.view(img, crop, src.width, src.height, rng);
                // A patch flip on top of the image flip undoes it.
                view.geometry.flipped ^= mirrored;
                view
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn two_by_two_crops_match_the_official_boxes_in_column_major_order() {
        let j = JigsawPatches::default();
        // PIL: (0, 0, w//2 + c·w, h//2 + c·h) etc. on a 224 × 160 image, c = 0.3.
        let (w, h) = (224, 160);
        assert_eq!(j.crop_box(0, w, h), (0, 0, 179, 128)); // top-left (112 + 67.2, 80 + 48)
        assert_eq!(j.crop_box(1, w, h), (0, 32, 179, 160)); // bottom-left
        assert_eq!(j.crop_box(2, w, h), (45, 0, 224, 128)); // top-right
        assert_eq!(j.crop_box(3, w, h), (45, 32, 224, 160)); // bottom-right
    }

    #[test]
    fn an_image_flip_cuts_the_mirrored_image_and_maps_boxes_back() {
        let j = JigsawPatches {
            size: 8,
            image_flip_p: 1.0,
            photometric: Photometric {
                flip_p: 0.0,
                jitter: ColorJitter {
                    p: 0.0,
                    ..Default::default()
                },
                grayscale_p: 0.0,
                blur_p: 0.0,
                ..Default::default()
            },
            ..Default::default()
        };
        // Left half black, right half white: the top-left crop of the mirrored image is white
        // on its left, and its box in the original frame lies on the right.
        let mut pixels = vec![0u8; 32 * 32 * 3];
        for y in 0..32 {
            for x in 16..32 {
                pixels[(y * 32 + x) * 3..(y * 32 + x) * 3 + 3].copy_from_slice(&[255; 3]);
            }
        }
        let img = RgbImage {
            width: 32,
            height: 32,
            pixels,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let views = j.build(&img, &mut rng);
        let tl = &views[0];
        assert!(tl.geometry.flipped);
        assert!(tl.geometry.crop.x + tl.geometry.crop.w > 16.0);
        // The mirrored image is white on the left: its top-left patch is brighter than its
        // top-right one.
        let mean = |v: &View| v.image.data.iter().sum::<f32>() / v.image.data.len() as f32;
        assert!(
            mean(tl) > mean(&views[2]),
            "{} vs {}",
            mean(tl),
            mean(&views[2])
        );
    }

    #[test]
    fn every_patch_comes_from_its_own_region_of_the_image() {
        let j = JigsawPatches {
            size: 16,
            ..Default::default()
        };
        let img = RgbImage {
            width: 32,
            height: 32,
            pixels: vec![128; 32 * 32 * 3],
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let views = j.build(&img, &mut rng);
            assert_eq!(views.len(), 4);
            for (i, v) in views.iter().enumerate() {
                let (x0, y0, x1, y1) = j.crop_box(i, 32, 32);
                let c = v.geometry.crop;
                assert!(c.x >= x0 as f32 && c.y >= y0 as f32);
                assert!(
                    c.x + c.w <= x1 as f32 && c.y + c.h <= y1 as f32,
                    "{i}: {c:?}"
                );
                assert_eq!(v.image.width, 16);
            }
        }
    }
}
