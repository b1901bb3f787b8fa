//! In-memory images: 8-bit RGB as stored, and float CHW as transformed.

/// An 8-bit RGB image, row-major HWC.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// Converts to float CHW in [0, 1].
    pub fn to_float(&self) -> FloatImage {
        let (w, h) = (self.width, self.height);
        let mut data = vec![0f32; 3 * w * h];
        for (p, px) in self.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * w * h + p] = px[c] as f32 / 255.0;
            }
        }
        FloatImage {
            width: w,
            height: h,
            data,
        }
    }
}

/// A float image, planar CHW with 3 channels, values nominally in [0, 1] before normalisation.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `3 * height * width` values, channel planes in R, G, B order.
    pub data: Vec<f32>,
}

impl FloatImage {
    /// Number of pixels per channel.
    pub fn plane(&self) -> usize {
        self.width * self.height
    }

    /// The pixels of columns `x0..x1` and rows `y0..y1` (clamped to the image).
    pub fn crop(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> FloatImage {
        let (x1, y1) = (x1.min(self.width), y1.min(self.height));
        let (x0, y0) = (x0.min(x1), y0.min(y1));
        let (w, h) = (x1 - x0, y1 - y0);
        let mut data = Vec::with_capacity(3 * w * h);
        for c in 0..3 {
            let plane = &self.data[c * self.plane()..(c + 1) * self.plane()];
            for y in y0..y1 {
                data.extend_from_slice(&plane[y * self.width + x0..y * self.width + x1]);
            }
        }
        FloatImage {
            width: w,
            height: h,
            data,
        }
    }

    /// Back to 8-bit RGB (values clamped to [0, 1] and rounded).
    pub fn to_rgb(&self) -> RgbImage {
        let n = self.plane();
        let mut pixels = vec![0u8; n * 3];
        for p in 0..n {
            for c in 0..3 {
                pixels[p * 3 + c] = (self.data[c * n + p].clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
        RgbImage {
            width: self.width,
            height: self.height,
            pixels,
        }
    }
}
