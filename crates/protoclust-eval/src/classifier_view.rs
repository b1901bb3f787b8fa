//! The augmentation of supervised evaluation training: RandomResizedCrop + horizontal flip.

use protoclust_data::loader::{Loader, LoaderConfig};
use protoclust_data::source::Source;
use protoclust_data::transform::ColorJitter;
use protoclust_data::views::{CenterView, CropGroup, MultiCrop, Photometric};
use protoclust_data::DataError;
use std::sync::Arc;

/// RandomResizedCrop to the evaluation view's size (area `scale`) and a flip with p 0.5, with
/// the evaluation view's normalisation; no colour augmentation.
pub fn classifier_train_view(eval: &CenterView, scale: [f32; 2]) -> MultiCrop {
    MultiCrop {
        crops: vec![CropGroup {
            count: 1,
            size: eval.size,
            scale,
        }],
        interpolation: eval.interpolation,
        photometric: Photometric {
            flip_p: 0.5,
            jitter: ColorJitter {
                p: 0.0,
                ..Default::default()
            },
            grayscale_p: 0.0,
            blur_p: 0.0,
            solarize_p: 0.0,
            normalize: eval.normalize.clone(),
            ..Default::default()
        },
    }
}

/// Shuffled batches of `source` through [`classifier_train_view`] (last batch kept).
pub fn classifier_loader(
    source: Arc<dyn Source>,
    eval: &CenterView,
    scale: [f32; 2],
    batch_size: usize,
    seed: u64,
) -> Result<Loader, DataError> {
    Loader::new(
        source,
        Arc::new(classifier_train_view(eval, scale)),
        LoaderConfig {
            batch_size,
            shuffle: true,
            drop_last: false,
            ..Default::default()
        },
        seed,
    )
}
