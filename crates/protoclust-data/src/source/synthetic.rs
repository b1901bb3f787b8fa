//! A procedural labelled data set of shapes, for the demo and fast tests (no files needed).
//!
//! Each class is a shape (disk, square, triangle, ring, cross, bar) filled with stripes of a
//! class-specific frequency; position, scale, rotation, stripe phase, colours and background vary
//! per image. The class survives the usual augmentations (crops see the large shape, colour
//! jitter and grayscale leave shape and stripe frequency), while colour alone gives it away
//! nowhere, so a representation has to learn shape and texture to separate the classes.

use super::{Sample, Source};
use crate::{mix_seed, DataError, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Names of the shape classes, in label order.
pub const CLASSES: [&str; 6] = ["disk", "square", "triangle", "ring", "cross", "bar"];

/// Procedurally drawn shapes; sample `i` is the same image for the same seed.
#[derive(Debug, Clone)]
pub struct Synthetic {
    len: usize,
    size: usize,
    seed: u64,
}

impl Synthetic {
    /// `len` images of `size`×`size` pixels drawn from `seed`.
    pub fn new(len: usize, size: usize, seed: u64) -> Self {
        Self { len, size, seed }
    }

    fn draw(&self, index: usize) -> (RgbImage, u32) {
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[self.seed, index as u64, 7]));
        let label = (index % CLASSES.len()) as u32;
        let s = self.size as f32;
        let bg0: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..1.0));
        let bg1: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..1.0));
        let fg: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..1.0));
        let r = rng.random_range(0.28..0.42) * s;
        let cx = rng.random_range(r..s - r);
        let cy = rng.random_range(r..s - r);
        let angle: f32 = rng.random_range(0.0..std::f32::consts::TAU);
        let stripes = 1.6 + 1.1 * label as f32;
        let phase = rng.random_range(0.0..std::f32::consts::TAU);
        let noise = rng.random_range(0.0..0.12f32);
        let (sin, cos) = angle.sin_cos();
        let mut pixels = vec![0u8; self.size * self.size * 3];
        for y in 0..self.size {
            for x in 0..self.size {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                // Rotated, scaled coordinates relative to the shape centre.
                let (dx, dy) = ((px - cx) / r, (py - cy) / r);
                let (u, v) = (dx * cos + dy * sin, -dx * sin + dy * cos);
                let inside = match label {
                    0 => u * u + v * v <= 1.0,
                    1 => u.abs() <= 0.8 && v.abs() <= 0.8,
                    2 => v <= 0.6 && v >= -0.9 + 1.5 * u.abs() * 1.2,
                    3 => {
                        let d = (u * u + v * v).sqrt();
                        (0.55..=1.0).contains(&d)
                    }
                    4 => (u.abs() <= 0.28 && v.abs() <= 1.0) || (v.abs() <= 0.28 && u.abs() <= 1.0),
                    _ => u.abs() <= 1.0 && v.abs() <= 0.3,
                };
                let t = (px + py) / (2.0 * s);
                let texture = 0.6 + 0.4 * (u * stripes * std::f32::consts::PI + phase).sin();
                for c in 0..3 {
                    let base = if inside {
                        fg[c] * texture
                    } else {
                        bg0[c] * (1.0 - t) + bg1[c] * t
                    };
                    let n = rng.random_range(-noise..=noise);
                    pixels[(y * self.size + x) * 3 + c] =
                        ((base + n).clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
        (
            RgbImage {
                width: self.size,
                height: self.size,
                pixels,
            },
            label,
        )
    }
}

impl Source for Synthetic {
    fn len(&self) -> usize {
        self.len
    }
    fn get(&self, index: usize) -> Result<Sample, DataError> {
        if index >= self.len {
            return Err(DataError::Index {
                index,
                len: self.len,
            });
        }
        let (image, label) = self.draw(index);
        Ok(Sample {
            image,
            label: Some(label),
            index,
        })
    }
    fn num_classes(&self) -> Option<usize> {
        Some(CLASSES.len())
    }
    fn label(&self, index: usize) -> Option<u32> {
        (index < self.len).then_some((index % CLASSES.len()) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_image_and_balanced_labels() {
        let a = Synthetic::new(12, 32, 1);
        let b = Synthetic::new(12, 32, 1);
        assert_eq!(a.get(5).unwrap().image, b.get(5).unwrap().image);
        assert_ne!(
            a.get(5).unwrap().image,
            Synthetic::new(12, 32, 2).get(5).unwrap().image
        );
        let counts = (0..12).fold([0; 6], |mut c, i| {
            c[a.label(i).unwrap() as usize] += 1;
            c
        });
        assert_eq!(counts, [2; 6]);
    }
}
