//! Images already in memory: one N × H × W × 3 block of 8-bit RGB pixels (a NumPy batch, say),
//! optionally labelled.

use super::{Sample, Source};
use crate::{DataError, RgbImage};

/// N images of one size, row-major NHWC `u8`.
#[derive(Debug, Clone)]
pub struct InMemory {
    pixels: Vec<u8>,
    len: usize,
    height: usize,
    width: usize,
    labels: Option<Vec<u32>>,
}

impl InMemory {
    /// `len` images of `height` × `width` from `pixels` (NHWC, RGB); `labels`, one per image.
    pub fn new(
        pixels: Vec<u8>,
        len: usize,
        height: usize,
        width: usize,
        labels: Option<Vec<u32>>,
    ) -> Result<Self, DataError> {
        let field = |reason: String| DataError::Config {
            field: "images".into(),
            reason,
        };
        if height == 0 || width == 0 {
            return Err(field(format!(
                "images of {height} x {width} pixels: expected both sides >= 1"
            )));
        }
        if pixels.len() != len * height * width * 3 {
            return Err(field(format!(
                "{} bytes for {len} images of {height} x {width} x 3: expected {}",
                pixels.len(),
                len * height * width * 3
            )));
        }
        if let Some(l) = &labels {
            if l.len() != len {
                return Err(DataError::Config {
                    field: "labels".into(),
                    reason: format!("{} labels for {len} images: expected one each", l.len()),
                });
            }
        }
        Ok(Self {
            pixels,
            len,
            height,
            width,
            labels,
        })
    }
}

impl Source for InMemory {
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
        let size = self.height * self.width * 3;
        Ok(Sample {
            image: RgbImage {
                width: self.width,
                height: self.height,
                pixels: self.pixels[index * size..(index + 1) * size].to_vec(),
            },
            label: self.label(index),
            index,
        })
    }
    fn num_classes(&self) -> Option<usize> {
        self.labels
            .as_ref()
            .map(|l| l.iter().max().map_or(0, |&m| m as usize + 1))
    }
    fn label(&self, index: usize) -> Option<u32> {
        self.labels.as_ref().and_then(|l| l.get(index).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_cut_from_the_block_in_order() {
        let pixels: Vec<u8> = (0..2 * 2 * 3 * 3).map(|v| v as u8).collect();
        let m = InMemory::new(pixels, 2, 2, 3, Some(vec![4, 1])).unwrap();
        let s = m.get(1).unwrap();
        assert_eq!((s.image.height, s.image.width), (2, 3));
        assert_eq!(s.image.pixels[0], 18);
        assert_eq!((s.label, m.num_classes()), (Some(1), Some(5)));
        assert!(matches!(m.get(2), Err(DataError::Index { .. })));
    }

    #[test]
    fn a_block_of_the_wrong_size_is_refused_naming_it() {
        let e = InMemory::new(vec![0; 10], 1, 2, 2, None).unwrap_err();
        assert!(e.to_string().starts_with("images: 10 bytes"), "{e}");
        let e = InMemory::new(vec![0; 12], 1, 2, 2, Some(vec![])).unwrap_err();
        assert!(e.to_string().starts_with("labels:"), "{e}");
    }
}
