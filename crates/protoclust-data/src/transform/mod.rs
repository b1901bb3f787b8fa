//! Augmentations with the papers' semantics; geometric ones record where the view came from.

pub mod blur;
pub mod color;
pub mod crop;
pub mod geometry;
pub mod normalize;
pub mod resample;

pub use blur::gaussian_blur;
pub use color::{grayscale, solarize, ColorJitter};
pub use crop::RandomResizedCrop;
pub use geometry::{CropBox, Geometry};
pub use normalize::Normalize;
pub use resample::{resize, Interpolation};
