//! View builders: what a method asks to see of each image.

use crate::transform::{
    gaussian_blur, grayscale, resample, solarize, ColorJitter, Geometry, Interpolation, Normalize,
    RandomResizedCrop,
};
use crate::{DataError, FloatImage, RgbImage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub mod jigsaw;
pub mod overlap;
pub use jigsaw::JigsawPatches;
pub use overlap::OverlapPair;

/// One augmented view of an image with the geometry it came from.
#[derive(Debug, Clone)]
pub struct View {
    /// Normalised CHW pixels.
    pub image: FloatImage,
    /// Crop and flip that produced it.
    pub geometry: Geometry,
}

/// Turns one image into the views a method needs.
pub trait ViewBuilder: Send + Sync {
    /// Output side length of each view, in view order.
    fn sizes(&self) -> Vec<usize>;
    /// Builds the views of `image` from `rng`.
    fn build(&self, image: &RgbImage, rng: &mut ChaCha8Rng) -> Vec<View>;
}

/// The photometric part of an augmentation pipeline, in torchvision's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Photometric {
    /// Probability of a horizontal flip.
    pub flip_p: f32,
    /// Colour jitter (with its own probability).
    pub jitter: ColorJitter,
    /// Probability of converting to grayscale.
    pub grayscale_p: f32,
    /// Probability of a Gaussian blur.
    pub blur_p: f32,
    /// Range the blur sigma is drawn from, in pixels of the view.
    pub blur_sigma: [f32; 2],
    /// Probability of solarizing.
    pub solarize_p: f32,
    /// Final normalisation.
    pub normalize: Normalize,
}

impl Default for Photometric {
    /// SwAV's ImageNet recipe.
    fn default() -> Self {
        Self {
            flip_p: 0.5,
            jitter: ColorJitter::default(),
            grayscale_p: 0.2,
            blur_p: 0.5,
            blur_sigma: [0.1, 2.0],
            solarize_p: 0.0,
            normalize: Normalize::default(),
        }
    }
}

impl Photometric {
    /// Checks probabilities and ranges.
    pub fn validate(&self, field: &str) -> Result<(), DataError> {
        let probs = [
            ("flip_p", self.flip_p),
            ("jitter.p", self.jitter.p),
            ("grayscale_p", self.grayscale_p),
            ("blur_p", self.blur_p),
            ("solarize_p", self.solarize_p),
        ];
        for (name, p) in probs {
            if !(0.0..=1.0).contains(&p) {
                return Err(DataError::Config {
                    field: format!("{field}.{name}"),
                    reason: format!("{p} is not a probability in [0, 1]"),
                });
            }
        }
        if !(0.0..=0.5).contains(&self.jitter.hue) {
            return Err(DataError::Config {
                field: format!("{field}.jitter.hue"),
                reason: format!("{} is outside [0, 0.5]", self.jitter.hue),
            });
        }
        if self.blur_sigma[0] <= 0.0 || self.blur_sigma[0] > self.blur_sigma[1] {
            return Err(DataError::Config {
                field: format!("{field}.blur_sigma"),
                reason: "expected 0 < min <= max".into(),
            });
        }
        if self.normalize.std.iter().any(|s| *s <= 0.0) {
            return Err(DataError::Config {
                field: format!("{field}.normalize.std"),
                reason: "standard deviations must be positive".into(),
            });
        }
        Ok(())
    }

    /// The view of a `crop` (already cut and resized into `image`) of a `source_width ×
    /// source_height` image after this pipeline, with its geometry.
    pub fn view(
        &self,
        mut image: FloatImage,
        crop: crate::transform::CropBox,
        source_width: usize,
        source_height: usize,
        rng: &mut impl Rng,
    ) -> View {
        let mut geometry = Geometry {
            crop,
            source_width,
            source_height,
            flipped: false,
        };
        self.apply(&mut image, &mut geometry, rng);
        View { image, geometry }
    }

    /// Flips (recording it), then jitter, grayscale, blur, solarize, normalise.
    pub fn apply(&self, img: &mut FloatImage, geometry: &mut Geometry, rng: &mut impl Rng) {
        if rng.random::<f32>() < self.flip_p {
            resample::hflip(img);
            geometry.flipped = true;
        }
        self.jitter.apply(img, rng);
        if rng.random::<f32>() < self.grayscale_p {
            grayscale(img);
        }
        if rng.random::<f32>() < self.blur_p {
            let s = rng.random_range(self.blur_sigma[0]..=self.blur_sigma[1]);
            gaussian_blur(img, s);
        }
        if rng.random::<f32>() < self.solarize_p {
            solarize(img, 128.0 / 255.0);
        }
        self.normalize.apply(img);
    }
}

/// A group of crops sharing size and scale range (SwAV's `nmb_crops`/`size_crops`/scales).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropGroup {
    /// Number of crops in the group.
    pub count: usize,
    /// Output side in pixels.
    pub size: usize,
    /// Area fraction range.
    pub scale: [f32; 2],
}

/// Multi-crop: for each group, `count` RandomResizedCrops with the shared photometric pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiCrop {
    /// Crop groups, large crops first.
    pub crops: Vec<CropGroup>,
    /// Resampling filter of the crops.
    pub interpolation: Interpolation,
    /// Photometric augmentation of every crop.
    pub photometric: Photometric,
}

impl Default for MultiCrop {
    /// SwAV's 2×224 (0.14–1) + 6×96 (0.05–0.14).
    fn default() -> Self {
        Self {
            crops: vec![
                CropGroup {
                    count: 2,
                    size: 224,
                    scale: [0.14, 1.0],
                },
                CropGroup {
                    count: 6,
                    size: 96,
                    scale: [0.05, 0.14],
                },
            ],
            interpolation: Interpolation::Bilinear,
            photometric: Photometric::default(),
        }
    }
}

impl MultiCrop {
    /// Checks counts, sizes and ranges against the source images' size.
    pub fn validate(&self, field: &str, image_side: Option<usize>) -> Result<(), DataError> {
        if self.total() == 0 {
            return Err(DataError::Config {
                field: format!("{field}.crops"),
                reason: "at least one crop is needed".into(),
            });
        }
        for (i, c) in self.crops.iter().enumerate() {
            let f = format!("{field}.crops[{i}]");
            if c.size == 0 || c.size > 1024 {
                return Err(DataError::Config {
                    field: format!("{f}.size"),
                    reason: format!("{} is outside 1..=1024", c.size),
                });
            }
            if let Some(side) = image_side {
                if c.size > side {
                    return Err(DataError::Config {
                        field: format!("{f}.size"),
                        reason: format!(
                            "a {} px crop is larger than every image ({side} px): each crop \
                             would only be upsampled; use crops of at most {side} px",
                            c.size
                        ),
                    });
                }
            }
            if !(c.scale[0] > 0.0 && c.scale[0] <= c.scale[1] && c.scale[1] <= 1.0) {
                return Err(DataError::Config {
                    field: format!("{f}.scale"),
                    reason: format!("{:?}: expected 0 < min <= max <= 1", c.scale),
                });
            }
        }
        self.photometric.validate(&format!("{field}.photometric"))
    }

    /// Total number of crops.
    pub fn total(&self) -> usize {
        self.crops.iter().map(|c| c.count).sum()
    }
}

impl ViewBuilder for MultiCrop {
    fn sizes(&self) -> Vec<usize> {
        self.crops
            .iter()
            .flat_map(|c| std::iter::repeat_n(c.size, c.count))
            .collect()
    }

    fn build(&self, image: &RgbImage, rng: &mut ChaCha8Rng) -> Vec<View> {
        let src = image.to_float();
        let mut out = Vec::with_capacity(self.total());
        for g in &self.crops {
            let rrc = RandomResizedCrop {
                size: g.size,
                scale: g.scale,
                interpolation: self.interpolation,
                ..Default::default()
            };
            for _ in 0..g.count {
                let b = rrc.sample_box(src.width, src.height, rng);
                let img = rrc.apply_box(&src, &b);
                out.push(self.photometric.view(img, b, src.width, src.height, rng));
            }
        }
        out
    }
}

/// Evaluation view: resize the shorter side to `resize`, centre-crop `size`, normalise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CenterView {
    /// Shorter side after resizing.
    pub resize: usize,
    /// Side of the centre crop.
    pub size: usize,
    /// Resampling filter.
    pub interpolation: Interpolation,
    /// Normalisation.
    pub normalize: Normalize,
}

impl Default for CenterView {
    fn default() -> Self {
        Self {
            resize: 256,
            size: 224,
            interpolation: Interpolation::Bilinear,
            normalize: Normalize::default(),
        }
    }
}

impl ViewBuilder for CenterView {
    fn sizes(&self) -> Vec<usize> {
        vec![self.size]
    }

    fn build(&self, image: &RgbImage, _: &mut ChaCha8Rng) -> Vec<View> {
        let (w, h) = (image.width as f32, image.height as f32);
        let s = self.resize as f32 / w.min(h);
        // Centre crop expressed in source coordinates, then one resampling pass.
        let (cw, ch) = (self.size as f32 / s, self.size as f32 / s);
        let b = crate::transform::CropBox {
            x: (w - cw) / 2.0,
            y: (h - ch) / 2.0,
            w: cw,
            h: ch,
        };
        let src = image.to_float();
        let mut img = resample::resize_region(
            &src,
            (b.x, b.y, b.w, b.h),
            self.size,
            self.size,
            self.interpolation,
        );
        self.normalize.apply(&mut img);
        vec![View {
            image: img,
            geometry: Geometry {
                crop: b,
                source_width: image.width,
                source_height: image.height,
                flipped: false,
            },
        }]
    }
}
