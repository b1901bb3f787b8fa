//! A set of image files with optional labels, decoded on access: what an image folder and a
//! list file both open into.

use super::folder::Skipped;
use super::{Sample, Source};
use crate::{DataError, RgbImage};
use std::path::{Path, PathBuf};

/// Image files, with a class per file when labelled; opened by
/// [`ImageFiles::open_folder`] or [`ImageFiles::open_list`].
#[derive(Debug, Clone)]
pub struct ImageFiles {
    files: Vec<PathBuf>,
    labels: Option<Vec<u32>>,
    classes: Vec<String>,
    skipped: Skipped,
}

impl ImageFiles {
    /// The set of `files` (with their `labels` into `classes`, when labelled).
    pub(crate) fn new(
        files: Vec<PathBuf>,
        labels: Option<Vec<u32>>,
        classes: Vec<String>,
        skipped: Skipped,
    ) -> Self {
        Self {
            files,
            labels,
            classes,
            skipped,
        }
    }

    /// The given image files, in order and unlabelled; every one must exist.
    pub fn from_paths(files: Vec<PathBuf>) -> Result<Self, DataError> {
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(DataError::Io {
                path: missing.clone(),
                error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such image file"),
            });
        }
        Ok(Self::new(files, None, Vec::new(), Skipped::default()))
    }

    /// Class names in label order (empty when unlabelled).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Files the listing passed over (none for a list file).
    pub fn skipped(&self) -> &Skipped {
        &self.skipped
    }
}

/// Decodes an image file to 8-bit RGB (grey and alpha images are converted).
pub fn decode(path: &Path) -> Result<RgbImage, DataError> {
    let bytes = std::fs::read(path).map_err(|error| DataError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let img = image::load_from_memory(&bytes).map_err(|e| DataError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let rgb = img.to_rgb8();
    Ok(RgbImage {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        pixels: rgb.into_raw(),
    })
}

impl Source for ImageFiles {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let path = self.files.get(index).ok_or(DataError::Index {
            index,
            len: self.files.len(),
        })?;
        Ok(Sample {
            image: decode(path)?,
            label: self.label(index),
            index,
        })
    }
    fn num_classes(&self) -> Option<usize> {
        self.labels.as_ref().map(|_| self.classes.len())
    }
    fn label(&self, index: usize) -> Option<u32> {
        self.labels.as_ref().and_then(|l| l.get(index).copied())
    }
    fn path(&self, index: usize) -> Option<&Path> {
        self.files.get(index).map(|p| p.as_path())
    }
}
