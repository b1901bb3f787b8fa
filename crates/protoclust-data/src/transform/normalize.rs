//! Per-channel mean/std normalisation.

use crate::FloatImage;
use serde::{Deserialize, Serialize};

/// `(x - mean) / std` per channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Normalize {
    /// Channel means (RGB).
    pub mean: [f32; 3],
    /// Channel standard deviations (RGB).
    pub std: [f32; 3],
}

impl Default for Normalize {
    /// ImageNet statistics, as every paper here uses.
    fn default() -> Self {
        Self {
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

impl Normalize {
    /// Normalises in place.
    pub fn apply(&self, img: &mut FloatImage) {
        let n = img.plane();
        for c in 0..3 {
            let (m, s) = (self.mean[c], self.std[c]);
            img.data[c * n..(c + 1) * n]
                .iter_mut()
                .for_each(|v| *v = (*v - m) / s);
        }
    }
}
