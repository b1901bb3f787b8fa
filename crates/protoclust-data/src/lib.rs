//! Image sources, augmentations that record their geometry, view builders and the loader.
//!
//! Data flow: a [`source::Source`] yields [`Sample`]s (u8 RGB images with an index and maybe a
//! label); a [`views::ViewBuilder`] turns one sample into the views a method asks for, each with
//! its [`transform::Geometry`]; the [`loader::Loader`] does this in parallel, seeded by
//! (seed, epoch, index), and hands out [`loader::Batch`]es.

pub mod error;
pub mod image;
pub mod loader;
pub mod source;
pub mod transform;
pub mod views;

pub use error::DataError;
pub use image::{FloatImage, RgbImage};
pub use source::Sample;

/// Derives an independent random stream seed from a run seed and any number of coordinates.
pub fn mix_seed(parts: &[u64]) -> u64 {
    // SplitMix64 over the parts: cheap, well distributed, stable across platforms.
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        h ^= p
            .wrapping_add(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(h << 6)
            .wrapping_add(h >> 2);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}
