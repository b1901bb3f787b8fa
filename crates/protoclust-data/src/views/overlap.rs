//! SlotCon's two views: RandomResizedCrops where the second is re-drawn until it overlaps the
//! first, each flipped (recorded) and augmented with its own photometric pipeline.

use super::{Photometric, View, ViewBuilder};
use crate::transform::{ColorJitter, CropBox, Interpolation, RandomResizedCrop};
use crate::{DataError, RgbImage};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Two overlapping crops of one image (the official `CustomTwoCrop` + flip + two pipelines).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverlapPair {
    /// Output side of both views in pixels.
    pub size: usize,
    /// RandomResizedCrop area range.
    pub scale: [f32; 2],
    /// Resampling filter (bicubic in the paper).
    pub interpolation: Interpolation,
    /// The second crop must cover at least this fraction of its own area inside the first.
    pub min_overlap: f32,
    /// Draws of the second crop before falling back to the first crop's box.
    pub tries: usize,
    /// Photometric pipeline of view 1 (blur p 1).
    pub view1: Photometric,
    /// Photometric pipeline of view 2 (blur p 0.1, solarize p 0.2).
    pub view2: Photometric,
}

impl Default for OverlapPair {
    /// The paper's COCO recipe: 224 px, scale 0.08–1, bicubic, 1 % overlap, 10 tries.
    fn default() -> Self {
        let jitter = ColorJitter {
            saturation: 0.2,
            ..ColorJitter::default()
        };
        Self {
            size: 224,
            scale: [0.08, 1.0],
            interpolation: Interpolation::Bicubic,
            min_overlap: 0.01,
            tries: 10,
            view1: Photometric {
                jitter: jitter.clone(),
                blur_p: 1.0,
                ..Default::default()
            },
            view2: Photometric {
                jitter,
                blur_p: 0.1,
                solarize_p: 0.2,
                ..Default::default()
            },
        }
    }
}

impl OverlapPair {
    /// Checks sizes, ranges and both pipelines.
    pub fn validate(&self, field: &str) -> Result<(), DataError> {
        let bad = |name: &str, reason: String| DataError::Config {
            field: format!("{field}.{name}"),
            reason,
        };
        if self.size == 0 || self.size > 1024 {
            return Err(bad("size", format!("{} is outside 1..=1024", self.size)));
        }
        if !(self.scale[0] > 0.0 && self.scale[0] <= self.scale[1] && self.scale[1] <= 1.0) {
            return Err(bad(
                "scale",
                format!("{:?}: expected 0 < min <= max <= 1", self.scale),
            ));
        }
        if !(0.0..=1.0).contains(&self.min_overlap) {
            return Err(bad(
                "min_overlap",
                format!("{} is outside [0, 1]", self.min_overlap),
            ));
        }
        self.view1.validate(&format!("{field}.view1"))?;
        self.view2.validate(&format!("{field}.view2"))
    }

    /// The two crop boxes: the second re-drawn until its overlap with the first is at least
    /// `min_overlap` of its area, else (unlike the official fallback, which may give an empty
    /// intersection) the first box itself.
    pub fn sample_boxes(&self, w: usize, h: usize, rng: &mut ChaCha8Rng) -> [CropBox; 2] {
        let rrc = self.crop();
        let first = rrc.sample_box(w, h, rng);
        for _ in 0..self.tries {
            let b = rrc.sample_box(w, h, rng);
            let common = first.intersect(&b).map(|i| i.area()).unwrap_or(0.0);
            if common > 0.0 && common >= self.min_overlap * b.area() {
                return [first, b];
            }
        }
        [first, first]
    }

    fn crop(&self) -> RandomResizedCrop {
        RandomResizedCrop {
            size: self.size,
            scale: self.scale,
            interpolation: self.interpolation,
            ..Default::default()
        }
    }
}

impl ViewBuilder for OverlapPair {
    fn sizes(&self) -> Vec<usize> {
        vec![self.size; 2]
    }

    fn build(&self, image: &RgbImage, rng: &mut ChaCha8Rng) -> Vec<View> {
        let src = image.to_float();
        let rrc = self.crop();
        let boxes = self.sample_boxes(src.width, src.height, rng);
        boxes
            .iter()
            .zip([&self.view1, &self.view2])
            .map(|(b, photometric)| {
                photometric.view(rrc.apply_box(&src, b), *b, src.width, src.height, rng)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_two_crops_always_overlap_even_at_tiny_scales() {
        let pair = OverlapPair {
            size: 8,
            scale: [0.01, 0.02],
            ..Default::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut fallbacks = 0;
        for _ in 0..300 {
            let [a, b] = pair.sample_boxes(240, 180, &mut rng);
            assert!(a.intersect(&b).is_some(), "{a:?} {b:?}");
            fallbacks += (a == b) as usize;
        }
        // Tiny crops rarely overlap by chance: the fallback must have been exercised.
        assert!(fallbacks > 0);
    }
}
