//! Image + mask pairs for segmentation: `images/<name>` beside `masks/<name>` (8-bit class ids).

use super::files::decode;
use super::{Sample, Source};
use crate::DataError;
use std::path::{Path, PathBuf};

/// A segmentation set: each image has a same-named single-channel mask of class ids.
#[derive(Debug, Clone)]
pub struct ImageMaskPairs {
    images: Vec<PathBuf>,
    masks: Vec<PathBuf>,
}

/// A class-id mask, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// One class id per pixel.
    pub ids: Vec<u8>,
}

impl ImageMaskPairs {
    /// Pairs every image in `images` (a folder, or a list file of image paths) with the file of
    /// the same name in `masks`.
    pub fn open(images: &Path, masks: &Path) -> Result<Self, DataError> {
        let folder = if images.is_file() {
            super::ImageFiles::open_list(images)?
        } else {
            super::ImageFiles::open_folder(images, super::FolderLayout::Classes)?
        };
        let mut imgs = Vec::new();
        let mut msks = Vec::new();
        for i in 0..folder.len() {
            let p = folder.path(i).unwrap_or(images).to_path_buf();
            let m = masks.join(p.file_name().unwrap_or_default());
            if !m.is_file() {
                return Err(DataError::Format {
                    path: m,
                    reason: format!("mask for {} is missing", p.display()),
                });
            }
            imgs.push(p);
            msks.push(m);
        }
        Ok(Self {
            images: imgs,
            masks: msks,
        })
    }

    /// Reads the mask of sample `index`.
    pub fn mask(&self, index: usize) -> Result<Mask, DataError> {
        let path = self.masks.get(index).ok_or(DataError::Index {
            index,
            len: self.masks.len(),
        })?;
        let img = image::open(path).map_err(|e| DataError::Decode {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let l = img.to_luma8();
        Ok(Mask {
            width: l.width() as usize,
            height: l.height() as usize,
            ids: l.into_raw(),
        })
    }
}

impl Source for ImageMaskPairs {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let path = self.images.get(index).ok_or(DataError::Index {
            index,
            len: self.images.len(),
        })?;
        Ok(Sample {
            image: decode(path)?,
            label: None,
            index,
        })
    }
    fn num_classes(&self) -> Option<usize> {
        None
    }
    fn label(&self, _: usize) -> Option<u32> {
        None
    }
    fn path(&self, index: usize) -> Option<&Path> {
        self.images.get(index).map(|p| p.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn png(path: &Path, value: u8) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::GrayImage::from_pixel(3, 2, image::Luma([value]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn a_list_file_takes_only_the_listed_images_and_their_masks() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for (name, v) in [("a_1.png", 1), ("b_2.png", 2), ("a_3.png", 3)] {
            png(&r.join("img").join(name), v);
            png(&r.join("ann").join(name), v);
        }
        fs::write(r.join("part.txt"), "# held out\nimg/a_3.png\nimg/a_1.png\n").unwrap();
        let p = ImageMaskPairs::open(&r.join("part.txt"), &r.join("ann")).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.path(0).unwrap(), r.join("img/a_3.png"));
        assert_eq!(p.mask(0).unwrap().ids, vec![3; 6]);
        assert_eq!(p.mask(1).unwrap().ids, vec![1; 6]);
        let all = ImageMaskPairs::open(&r.join("img"), &r.join("ann")).unwrap();
        assert_eq!(all.len(), 3);
        fs::remove_file(r.join("ann/a_1.png")).unwrap();
        let e = ImageMaskPairs::open(&r.join("part.txt"), &r.join("ann")).unwrap_err();
        assert!(e.to_string().contains("mask for"), "{e}");
    }
}
