//! The prototype-nearest-region view of SlotCon's paper (its `viz_slots.py`): for each
//! prototype, the images whose pixels it wins with the highest mean score, each cropped to the
//! region the prototype wins there, the rest of the crop dimmed.

use crate::segment::{argmax_per_pixel, Predicted};
use protoclust_data::RgbImage;

/// Brightness kept outside the prototype's region inside a crop.
const DIM: f32 = 0.4;
/// White gap between tiles of a sheet, in pixels.
const GAP: usize = 4;

/// Each prototype's ranking score on one image from its K × (h·w) score map (prototype-major):
/// the mean score over the map pixels whose argmax it is (the official masked mean), `None`
/// where it wins no pixel.
pub fn region_scores(scores: &[f32], k: usize) -> Vec<Option<f32>> {
    let hw = scores.len() / k.max(1);
    let mut sum = vec![0.0f64; k];
    let mut won = vec![0usize; k];
    for (p, best) in argmax_per_pixel(scores, k).into_iter().enumerate() {
        sum[best] += f64::from(scores[best * hw + p]);
        won[best] += 1;
    }
    (0..k)
        .map(|j| (won[j] > 0).then(|| (sum[j] / won[j] as f64) as f32))
        .collect()
}

/// One row of the view: a prototype and the images it wins best, highest score first.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionRow {
    /// Prototype index.
    pub prototype: usize,
    /// Pixels it wins over the whole split (at the mask size).
    pub pixels: u64,
    /// (position in the evaluated split, score), at most `top` of them.
    pub images: Vec<(usize, f32)>,
}

/// The `rows` prototypes that win the most pixels over the split (`predicted` at mask size),
/// each with its `top` images by their `region_scores` among those where it wins a pixel of
/// the map and of the mask.
pub fn nearest_regions(predicted: &[Predicted], rows: usize, top: usize) -> Vec<RegionRow> {
    let k = predicted.first().map_or(0, |p| p.region_scores.len());
    let mut per_image = vec![vec![0u64; k]; predicted.len()];
    for (counts, p) in per_image.iter_mut().zip(predicted) {
        for &c in &p.clusters {
            if let Some(n) = counts.get_mut(c as usize) {
                *n += 1;
            }
        }
    }
    let mut out: Vec<RegionRow> = (0..k)
        .map(|j| {
            let mut images: Vec<(usize, f32)> = predicted
                .iter()
                .enumerate()
                .filter(|(i, _)| per_image[*i][j] > 0)
                .filter_map(|(i, p)| p.region_scores[j].map(|v| (i, v)))
                .collect();
            images.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            images.truncate(top);
            RegionRow {
                prototype: j,
                pixels: per_image.iter().map(|c| c[j]).sum(),
                images,
            }
        })
        .filter(|r| r.pixels > 0 && !r.images.is_empty())
        .collect();
    out.sort_by(|a, b| b.pixels.cmp(&a.pixels).then(a.prototype.cmp(&b.prototype)));
    out.truncate(rows);
    out
}

/// The square crop of `image` around the pixels of `p` won by `prototype`: side the longer
/// extent of their bounding box plus a fifth (at least 8 px), at most the image's shorter side,
/// centred on the box and kept inside the image; pixels outside the region dimmed. `None` when
/// it wins none.
pub fn region_crop(image: &RgbImage, p: &Predicted, prototype: usize) -> Option<RgbImage> {
    let (w, h) = (p.mask.width, p.mask.height);
    let mut bbox: Option<(usize, usize, usize, usize)> = None;
    for (i, &c) in p.clusters.iter().enumerate() {
        if c as usize == prototype {
            let (x, y) = (i % w, i / w);
            bbox = Some(match bbox {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
    }
    let (x0, y0, x1, y1) = bbox?;
    let extent = (x1 - x0 + 1).max(y1 - y0 + 1);
    let side = (extent + (extent / 5).max(8)).min(w.min(h));
    // Top-left corner of a `side` window centred on [lo, hi], inside [0, size).
    let start = |lo: usize, hi: usize, size: usize| {
        (lo + hi)
            .div_ceil(2)
            .saturating_sub(side / 2)
            .min(size - side)
    };
    let (cx, cy) = (start(x0, x1, w), start(y0, y1, h));
    let mut pixels = Vec::with_capacity(side * side * 3);
    for y in cy..cy + side {
        for x in cx..cx + side {
            let i = y * w + x;
            let keep = if p.clusters[i] as usize == prototype {
                1.0
            } else {
                DIM
            };
            pixels.extend(
                image.pixels[i * 3..i * 3 + 3]
                    .iter()
                    .map(|&v| (f32::from(v) * keep).round() as u8),
            );
        }
    }
    Some(RgbImage {
        width: side,
        height: side,
        pixels,
    })
}

/// `img` scaled (bilinear) to fit a `tile` × `tile` square, centred on white.
fn fit(img: &RgbImage, tile: usize) -> RgbImage {
    let scale = tile as f32 / img.width.max(img.height) as f32;
    let (w, h) = (
        ((img.width as f32 * scale).round() as usize).clamp(1, tile),
        ((img.height as f32 * scale).round() as usize).clamp(1, tile),
    );
    let src = image::RgbImage::from_raw(img.width as u32, img.height as u32, img.pixels.clone())
        .expect("an RgbImage's buffer matches its size");
    let small = image::imageops::resize(
        &src,
        w as u32,
        h as u32,
        image::imageops::FilterType::Triangle,
    );
    let mut pixels = vec![255u8; tile * tile * 3];
    let (ox, oy) = ((tile - w) / 2, (tile - h) / 2);
    for y in 0..h {
        let row = &small.as_raw()[y * w * 3..(y + 1) * w * 3];
        let o = ((oy + y) * tile + ox) * 3;
        pixels[o..o + w * 3].copy_from_slice(row);
    }
    RgbImage {
        width: tile,
        height: tile,
        pixels,
    }
}

/// One sheet: a row of `tile`-px crops per entry of `rows` (a prototype's crops, best first),
/// `columns` wide, white between tiles and in empty places.
pub fn region_sheet(rows: &[Vec<RgbImage>], columns: usize, tile: usize) -> RgbImage {
    let width = columns * tile + columns.saturating_sub(1) * GAP;
    let height = rows.len() * tile + rows.len().saturating_sub(1) * GAP;
    let mut pixels = vec![255u8; width.max(1) * height.max(1) * 3];
    for (r, crops) in rows.iter().enumerate() {
        for (c, crop) in crops.iter().take(columns).enumerate() {
            let t = fit(crop, tile);
            let (ox, oy) = (c * (tile + GAP), r * (tile + GAP));
            for y in 0..tile {
                let o = ((oy + y) * width + ox) * 3;
                pixels[o..o + tile * 3]
                    .copy_from_slice(&t.pixels[y * tile * 3..(y + 1) * tile * 3]);
            }
        }
    }
    RgbImage {
        width: width.max(1),
        height: height.max(1),
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protoclust_data::source::pairs::Mask;

    fn predicted(index: usize, w: usize, h: usize, clusters: Vec<u16>) -> Predicted {
        Predicted {
            index,
            clusters,
            mask: Mask {
                width: w,
                height: h,
                ids: vec![0; w * h],
            },
            region_scores: Vec::new(),
        }
    }

    #[test]
    fn region_scores_are_the_mean_over_the_pixels_each_prototype_wins() {
        // K = 3 over 4 map pixels: prototype 0 wins pixels 0 and 1, prototype 2 pixel 3,
        // prototype 1 pixel 2; prototype 1's score elsewhere does not count.
        let s = [
            0.9, 0.5, 0.1, 0.0, // prototype 0
            0.2, 0.3, 0.8, 0.1, // prototype 1
            0.0, 0.1, 0.2, 0.7, // prototype 2
        ];
        let r = region_scores(&s, 3);
        assert!((r[0].unwrap() - 0.7).abs() < 1e-6);
        assert!((r[1].unwrap() - 0.8).abs() < 1e-6);
        assert!((r[2].unwrap() - 0.7).abs() < 1e-6);
        // A prototype that wins nothing has no score.
        assert_eq!(
            region_scores(&[1.0, 1.0, 0.0, 0.0], 2),
            vec![Some(1.0), None]
        );
    }

    #[test]
    fn nearest_regions_rank_images_and_order_prototypes_by_area() {
        // Three images of 2 × 2; prototype 1 wins 3 pixels in all, prototype 0 wins 5.
        let scores = [
            vec![Some(0.4), Some(0.9), None],
            vec![Some(0.6), Some(0.5), None],
            // Image 2: prototype 0 has a map score but wins no mask pixel: not shown.
            vec![Some(0.99), None, Some(0.3)],
        ];
        let clusters = [vec![0, 0, 0, 1], vec![1, 1, 0, 0], vec![2, 2, 2, 2]];
        let predicted: Vec<Predicted> = clusters
            .into_iter()
            .zip(scores)
            .enumerate()
            .map(|(i, (c, s))| Predicted {
                region_scores: s,
                ..predicted(i, 2, 2, c)
            })
            .collect();
        let rows = nearest_regions(&predicted, 2, 5);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].prototype, rows[0].pixels), (0, 5));
        assert_eq!(rows[0].images, vec![(1, 0.6), (0, 0.4)]);
        assert_eq!((rows[1].prototype, rows[1].pixels), (2, 4));
        let top1 = nearest_regions(&predicted, 3, 1);
        assert_eq!(top1[2].prototype, 1);
        assert_eq!(top1[2].images, vec![(0, 0.9)]);
    }

    #[test]
    fn region_crop_keeps_the_region_and_dims_the_rest() {
        // 40 × 20 image of grey 100; prototype 3 wins the block x 20..30, y 5..10.
        let (w, h) = (40, 20);
        let clusters: Vec<u16> = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                if (20..30).contains(&x) && (5..10).contains(&y) {
                    3
                } else {
                    0
                }
            })
            .collect();
        let p = predicted(0, w, h, clusters);
        let img = RgbImage {
            width: w,
            height: h,
            pixels: vec![100; w * h * 3],
        };
        let crop = region_crop(&img, &p, 3).unwrap();
        // A 10 × 5 box: a square of 10 + 8 px, centred on it (x 16..34), moved down inside
        // the image (y 0..18).
        assert_eq!((crop.width, crop.height), (18, 18));
        let at = |x: usize, y: usize| crop.pixels[(y * crop.width + x) * 3];
        assert_eq!(at(8, 7), 100, "inside the region: image (24, 7)");
        assert_eq!(at(4, 7), 100, "image (20, 7), the region's left edge");
        assert_eq!(at(3, 7), 40, "image (19, 7), outside, dimmed");
        assert_eq!(at(8, 4), 40, "image (24, 4), above the region");
        // A region as wide as the image gets a square as tall as the image.
        let band = predicted(
            0,
            w,
            h,
            (0..w * h).map(|i| u16::from(i / w == 10)).collect(),
        );
        let crop = region_crop(&img, &band, 1).unwrap();
        assert_eq!((crop.width, crop.height), (20, 20));
        assert!(region_crop(&img, &p, 1).is_none());
        let sheet = region_sheet(&[vec![crop.clone(), crop], vec![]], 3, 16);
        assert_eq!(
            (sheet.width, sheet.height),
            (3 * 16 + 2 * GAP, 2 * 16 + GAP)
        );
    }
}
