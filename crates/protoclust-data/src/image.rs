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
