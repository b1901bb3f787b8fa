//! Where a view came from in its source image, so methods can map between views.

use serde::{Deserialize, Serialize};

/// A crop rectangle in source-image pixel coordinates (x to the right, y down).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CropBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl CropBox {
    /// Area of the box.
    pub fn area(&self) -> f32 {
        self.w * self.h
    }

    /// Intersection with another box, or None when they do not overlap with positive area.
    pub fn intersect(&self, other: &CropBox) -> Option<CropBox> {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = (self.x + self.w).min(other.x + other.w);
        let y1 = (self.y + self.h).min(other.y + other.h);
        (x1 > x0 && y1 > y0).then_some(CropBox {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        })
    }
}

/// Geometry of one view: its crop box in the source, the source size, and whether it was flipped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// Crop in source pixel coordinates.
    pub crop: CropBox,
    /// Source width in pixels.
    pub source_width: usize,
    /// Source height in pixels.
    pub source_height: usize,
    /// Horizontally flipped after cropping.
    pub flipped: bool,
}

impl Geometry {
    /// The whole source, unflipped.
    pub fn identity(width: usize, height: usize) -> Self {
        Self {
            crop: CropBox {
                x: 0.0,
                y: 0.0,
                w: width as f32,
                h: height as f32,
            },
            source_width: width,
            source_height: height,
            flipped: false,
        }
    }

    /// `b` (source coordinates) in this view's normalised [0, 1] coordinates, flip applied:
    /// (x1, y1, x2, y2).
    pub fn normalized(&self, b: &CropBox) -> [f32; 4] {
        let x1 = (b.x - self.crop.x) / self.crop.w;
        let x2 = (b.x + b.w - self.crop.x) / self.crop.w;
        let y1 = (b.y - self.crop.y) / self.crop.h;
        let y2 = (b.y + b.h - self.crop.y) / self.crop.h;
        if self.flipped {
            [1.0 - x2, y1, 1.0 - x1, y2]
        } else {
            [x1, y1, x2, y2]
        }
    }
}
