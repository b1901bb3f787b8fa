//! Image folders: `root/<class>/<image>` (labelled) or `root/<image>` (flat, unlabelled).

use super::{Sample, Source};
use crate::{DataError, RgbImage};
use std::path::{Path, PathBuf};

const EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp"];

/// Images listed from a directory tree and decoded on access.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    files: Vec<PathBuf>,
    labels: Option<Vec<u32>>,
    classes: Vec<String>,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let rd = std::fs::read_dir(dir).map_err(|error| DataError::Io {
        path: dir.to_path_buf(),
        error,
    })?;
    let mut out: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    out.sort();
    Ok(out)
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

impl ImageFolder {
    /// Lists `root`: sub-directories are classes (sorted names); if there are none, the images
    /// directly under `root` form an unlabelled set.
    pub fn open(root: &Path) -> Result<Self, DataError> {
        let entries = list(root)?;
        let class_dirs: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
        if class_dirs.is_empty() {
            let files: Vec<PathBuf> = entries.into_iter().filter(|p| is_image(p)).collect();
            if files.is_empty() {
                return Err(DataError::Format {
                    path: root.to_path_buf(),
                    reason: "no images (jpg, jpeg, png, webp) and no class sub-folders".into(),
                });
            }
            return Ok(Self {
                files,
                labels: None,
                classes: Vec::new(),
            });
        }
        let mut files = Vec::new();
        let mut labels = Vec::new();
        let mut classes = Vec::new();
        for (c, dir) in class_dirs.iter().enumerate() {
            classes.push(
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
            for f in list(dir)?.into_iter().filter(|p| is_image(p)) {
                files.push(f);
                labels.push(c as u32);
            }
        }
        if files.is_empty() {
            return Err(DataError::Format {
                path: root.to_path_buf(),
                reason: "class sub-folders contain no images".into(),
            });
        }
        Ok(Self {
            files,
            labels: Some(labels),
            classes,
        })
    }

    /// Class names in label order (empty when unlabelled).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Path of sample `index`.
    pub fn path(&self, index: usize) -> Option<&Path> {
        self.files.get(index).map(|p| p.as_path())
    }
}

impl Source for ImageFolder {
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
}
