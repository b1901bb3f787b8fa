//! Image grids: a cluster's (or prototype's) nearest images as one strip of thumbnails.

use crate::{write_atomic, ReportError};
use image::imageops::{resize, FilterType};
use protoclust_data::source::Source;
use std::path::Path;

/// A cluster and the images to show for it.
#[derive(Debug, Clone)]
pub struct ClusterStrip {
    /// Cluster or prototype id.
    pub cluster: usize,
    /// Members in the whole split.
    pub size: usize,
    /// Source indices to show, nearest to the cluster first.
    pub images: Vec<usize>,
    /// Most frequent true label among the members and its share in percent, when labelled.
    pub majority: Option<(u32, f64)>,
    /// Caption replacing "cluster C · N images".
    pub caption: Option<String>,
}

fn thumbnail(source: &dyn Source, index: usize, side: u32) -> Result<image::RgbImage, ReportError> {
    let s = source
        .get(index)
        .map_err(|e| ReportError::Data(e.to_string()))?;
    let img =
        image::RgbImage::from_raw(s.image.width as u32, s.image.height as u32, s.image.pixels)
            .ok_or_else(|| {
                ReportError::Data(format!("sample {index}: pixel buffer of the wrong size"))
            })?;
    // Shorter side to `side`, centre crop: square thumbnails for any aspect ratio.
    let (w, h) = (img.width(), img.height());
    let scale = side as f64 / w.min(h).max(1) as f64;
    let (nw, nh) = (
        ((w as f64 * scale).round() as u32).max(side),
        ((h as f64 * scale).round() as u32).max(side),
    );
    let filter = if scale >= 1.0 {
        FilterType::Nearest
    } else {
        FilterType::Triangle
    };
    let big = resize(&img, nw, nh, filter);
    Ok(image::imageops::crop_imm(&big, (nw - side) / 2, (nh - side) / 2, side, side).to_image())
}

/// Writes the thumbnails of `images` side by side (`side` px each, 2 px gaps) as a PNG.
pub fn write_strip(
    source: &dyn Source,
    images: &[usize],
    side: u32,
    path: &Path,
) -> Result<(), ReportError> {
    let gap = 2u32;
    let n = images.len().max(1) as u32;
    let mut canvas =
        image::RgbImage::from_pixel(n * side + (n - 1) * gap, side, image::Rgb([255, 255, 255]));
    for (i, &idx) in images.iter().enumerate() {
        let t = thumbnail(source, idx, side)?;
        image::imageops::replace(&mut canvas, &t, (i as u32 * (side + gap)) as i64, 0);
    }
    write_png(canvas, path)
}

/// Writes the thumbnails of `images` as a contact sheet: rows of `cols` thumbnails (`side` px
/// each, 2 px gaps), as a PNG.
pub fn write_sheet(
    source: &dyn Source,
    images: &[usize],
    side: u32,
    cols: usize,
    path: &Path,
) -> Result<(), ReportError> {
    let gap = 2u32;
    let cols = cols.clamp(1, images.len().max(1)) as u32;
    let rows = (images.len().max(1) as u32).div_ceil(cols);
    let mut canvas = image::RgbImage::from_pixel(
        cols * side + (cols - 1) * gap,
        rows * side + (rows - 1) * gap,
        image::Rgb([255, 255, 255]),
    );
    for (i, &idx) in images.iter().enumerate() {
        let t = thumbnail(source, idx, side)?;
        let (r, c) = (i as u32 / cols, i as u32 % cols);
        image::imageops::replace(
            &mut canvas,
            &t,
            (c * (side + gap)) as i64,
            (r * (side + gap)) as i64,
        );
    }
    write_png(canvas, path)
}

fn write_png(canvas: image::RgbImage, path: &Path) -> Result<(), ReportError> {
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(canvas)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| ReportError::Draw {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    write_atomic(path, &bytes)
}

/// The `clusters` largest clusters of `labels` (over rows whose source index is
/// `indices[row]`), each with its `per_cluster` rows of highest `score`, and the majority
/// true label when `truth` is given.
pub fn largest_clusters(
    labels: &[usize],
    score: &[f32],
    indices: &[usize],
    truth: Option<&[u32]>,
    clusters: usize,
    per_cluster: usize,
) -> Vec<ClusterStrip> {
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    labels
        .iter()
        .enumerate()
        .for_each(|(row, &c)| members[c].push(row));
    let mut order: Vec<usize> = (0..k).filter(|&c| !members[c].is_empty()).collect();
    order.sort_by(|&a, &b| members[b].len().cmp(&members[a].len()).then(a.cmp(&b)));
    order
        .into_iter()
        .take(clusters)
        .map(|c| {
            let mut rows = members[c].clone();
            rows.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
            let majority = truth.map(|t| {
                let mut counts = std::collections::BTreeMap::<u32, usize>::new();
                members[c]
                    .iter()
                    .for_each(|&r| *counts.entry(t[r]).or_default() += 1);
                let (label, n) = counts
                    .into_iter()
                    .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                    .unwrap_or((0, 0));
                (label, 100.0 * n as f64 / members[c].len() as f64)
            });
            ClusterStrip {
                cluster: c,
                size: members[c].len(),
                images: rows.iter().take(per_cluster).map(|&r| indices[r]).collect(),
                majority,
                caption: None,
            }
        })
        .collect()
}

/// For each of the `prototypes` columns of `scores` (N × K, row r is source index
/// `indices[r]`) with the highest top-`per_prototype` mean, its `per_prototype` best rows: every
/// prototype's nearest images over the whole split, whatever the argmax.
pub fn prototype_neighbours(
    scores: &[f32],
    k: usize,
    indices: &[usize],
    prototypes: usize,
    per_prototype: usize,
) -> Vec<ClusterStrip> {
    let n = indices.len();
    if k == 0 || n == 0 {
        return Vec::new();
    }
    let mut argmax_count = vec![0usize; k];
    for r in 0..n {
        let row = &scores[r * k..(r + 1) * k];
        if let Some((c, _)) = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        {
            argmax_count[c] += 1;
        }
    }
    let mut ranked: Vec<(usize, Vec<usize>, f32)> = (0..k)
        .map(|c| {
            let mut rows: Vec<usize> = (0..n).collect();
            rows.sort_by(|&a, &b| {
                scores[b * k + c]
                    .total_cmp(&scores[a * k + c])
                    .then(a.cmp(&b))
            });
            rows.truncate(per_prototype);
            let mean =
                rows.iter().map(|&r| scores[r * k + c]).sum::<f32>() / rows.len().max(1) as f32;
            (c, rows, mean)
        })
        .collect();
    ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    ranked
        .into_iter()
        .take(prototypes)
        .map(|(c, rows, mean)| ClusterStrip {
            cluster: c,
            size: argmax_count[c],
            images: rows.iter().map(|&r| indices[r]).collect(),
            majority: None,
            caption: Some(format!(
                "prototype {c} · mean score of these images {mean:.3} · top prototype of {} images",
                argmax_count[c]
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_clusters_rank_by_size_then_members_by_score() {
        let labels = [2, 0, 2, 1, 2, 0];
        let score = [0.1, 0.9, 0.8, 0.5, 0.3, 0.2];
        let indices = [10, 11, 12, 13, 14, 15];
        let truth = [7, 1, 7, 3, 8, 1];
        let s = largest_clusters(&labels, &score, &indices, Some(&truth), 2, 2);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].cluster, s[0].size), (2, 3));
        assert_eq!(s[0].images, vec![12, 14]);
        let (label, share) = s[0].majority.unwrap();
        assert_eq!(label, 7);
        assert!((share - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!((s[1].cluster, s[1].images.clone()), (0, vec![11, 15]));
    }

    #[test]
    fn prototype_neighbours_rank_every_image_by_each_prototype() {
        // Prototype 0 wins every argmax; prototype 1 still has its own nearest images.
        let scores = [0.9, 0.5, 0.8, 0.7, 0.95, 0.1, 0.85, 0.6];
        let s = prototype_neighbours(&scores, 2, &[10, 11, 12, 13], 2, 2);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].cluster, s[0].images.clone(), s[0].size),
            (0, vec![12, 10], 4)
        );
        assert_eq!(
            (s[1].cluster, s[1].images.clone(), s[1].size),
            (1, vec![11, 13], 0)
        );
    }
}
