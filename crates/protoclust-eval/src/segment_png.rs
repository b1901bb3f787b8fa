//! Image | ground truth | prediction panels of the segmentation evaluation, as PNG.

use crate::segment::Predicted;
use protoclust_data::RgbImage;

/// SegNet's CamVid colours for classes 0..=10; other ids (void) are black.
pub const CAMVID_COLOURS: [[u8; 3]; 11] = [
    [128, 128, 128],
    [128, 0, 0],
    [192, 192, 128],
    [128, 64, 128],
    [60, 40, 222],
    [128, 128, 0],
    [192, 128, 128],
    [64, 64, 128],
    [64, 0, 128],
    [64, 64, 0],
    [0, 128, 192],
];

fn colour(class: usize, palette: &[[u8; 3]]) -> [u8; 3] {
    palette.get(class).copied().unwrap_or([0, 0, 0])
}

/// The three panels side by side with a 4-px white gap: the photo, the mask in class colours
/// and the predicted clusters in the colour of the class each was matched to.
pub fn panel(
    image: &RgbImage,
    p: &Predicted,
    cluster_to_class: &[usize],
    palette: &[[u8; 3]],
) -> RgbImage {
    let (w, h) = (p.mask.width, p.mask.height);
    let gap = 4;
    let width = 3 * w + 2 * gap;
    let mut pixels = vec![255u8; width * h * 3];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let src = &image.pixels[i * 3..i * 3 + 3];
            let gt = colour(p.mask.ids[i] as usize, palette);
            let pr = colour(
                cluster_to_class
                    .get(p.clusters[i] as usize)
                    .copied()
                    .unwrap_or(usize::MAX),
                palette,
            );
            for (panel, rgb) in [(0, [src[0], src[1], src[2]]), (1, gt), (2, pr)] {
                let o = (y * width + panel * (w + gap) + x) * 3;
                pixels[o..o + 3].copy_from_slice(&rgb);
            }
        }
    }
    RgbImage {
        width,
        height: h,
        pixels,
    }
}

/// PNG bytes of an RGB image.
pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::new();
    let buf = image::RgbImage::from_raw(img.width as u32, img.height as u32, img.pixels.clone())
        .ok_or_else(|| {
            image::ImageError::Parameter(image::error::ParameterError::from_kind(
                image::error::ParameterErrorKind::DimensionMismatch,
            ))
        })?;
    buf.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)?;
    Ok(out)
}
