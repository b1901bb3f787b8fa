//! Data sets: where samples come from.

pub mod cifar;
pub mod files;
pub mod folder;
pub mod list;
pub mod memory;
pub mod pairs;
pub mod stl10;
pub mod subset;
pub mod synthetic;

use crate::{DataError, RgbImage};
use std::path::Path;

pub use cifar::Cifar;
pub use files::ImageFiles;
pub use folder::FolderLayout;
pub use memory::InMemory;
pub use pairs::ImageMaskPairs;
pub use stl10::Stl10;
pub use subset::{balanced_split, balanced_split_labels, Subset};
pub use synthetic::Synthetic;

/// One image with its data-set index and, when known, its label.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The image.
    pub image: RgbImage,
    /// Class label, when the source has labels.
    pub label: Option<u32>,
    /// Position of the sample in its source.
    pub index: usize,
}

/// A random-access collection of samples.
pub trait Source: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads sample `index` (decoding it if needed).
    fn get(&self, index: usize) -> Result<Sample, DataError>;
    /// Number of classes, when labelled.
    fn num_classes(&self) -> Option<usize>;
    /// Label of sample `index` without decoding its image, when labelled.
    fn label(&self, index: usize) -> Option<u32>;
    /// The file sample `index` is read from, for sources of one file per image.
    fn path(&self, _index: usize) -> Option<&Path> {
        None
    }
}
