//! Unsupervised semantic segmentation (the PiCIE protocol SlotCon reports): cluster the dense
//! features of every evaluation pixel, Hungarian-match clusters to classes, report mIoU and
//! pixel accuracy; optionally draw image | ground truth | prediction panels.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use pathfinding::prelude::{kuhn_munkres, Matrix};
use protoclust_data::source::pairs::{ImageMaskPairs, Mask};
use protoclust_data::source::Source;
use protoclust_data::transform::Normalize;
use protoclust_nn::backbone::ResNet;
use protoclust_nn::cluster::{assign, kmeans, KMeansConfig, KMeansInit, KMeansMetric};
use protoclust_nn::ops::resize_bilinear;

/// Settings of the segmentation evaluation.
#[derive(Debug, Clone)]
pub struct SegmentConfig {
    /// Number of classes (clusters = classes, matched one to one).
    pub classes: usize,
    /// Mask value that is left out of every count.
    pub ignore: u8,
    /// Input normalisation.
    pub normalize: Normalize,
    /// k-means restarts and seed.
    pub restarts: usize,
    /// Seed of the k-means draws.
    pub seed: u64,
}

/// Scores of one evaluation.
#[derive(Debug, Clone)]
pub struct SegmentResult {
    /// Mean IoU over classes, in percent.
    pub miou: f64,
    /// Pixel accuracy over non-ignored pixels, in percent.
    pub pixel_accuracy: f64,
    /// IoU of every class, in percent.
    pub class_iou: Vec<f64>,
    /// Class each cluster was matched to.
    pub cluster_to_class: Vec<usize>,
    /// Non-ignored pixels counted.
    pub pixels: u64,
}

/// One image's cluster map (row-major, mask size) with its mask.
pub struct Predicted {
    /// Data-set index.
    pub index: usize,
    /// Cluster of every pixel.
    pub clusters: Vec<u8>,
    /// Ground truth.
    pub mask: Mask,
}

/// Why the evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// Reading an image or mask failed.
    #[error(transparent)]
    Data(#[from] protoclust_data::DataError),
    /// Clustering failed.
    #[error("k-means on the dense features: {0}")]
    Cluster(String),
    /// Image and mask sizes differ.
    #[error("sample {index}: image is {image:?} but its mask is {mask:?}")]
    Size {
        /// Data-set index.
        index: usize,
        /// Image (width, height).
        image: (usize, usize),
        /// Mask (width, height).
        mask: (usize, usize),
    },
    /// Nothing to score.
    #[error("no labelled pixels (all masks are {0})")]
    Empty(u8),
}

fn dense_map(net: &ResNet, img: &protoclust_data::FloatImage, device: &Device) -> Tensor<4> {
    let x = Tensor::<4>::from_data(
        TensorData::new(img.data.clone(), [1, 3, img.height, img.width]),
        device,
    );
    net.forward(x).map
}

/// Clusters every pixel of every pair with k-means (k = classes, cosine) on the backbone's
/// last map, upsampled bilinearly to the mask size, and scores the Hungarian-matched clusters.
pub fn segment_eval(
    net: &ResNet,
    pairs: &ImageMaskPairs,
    cfg: &SegmentConfig,
    device: &Device,
) -> Result<(SegmentResult, Vec<Predicted>), SegmentError> {
    let net = net.clone().valid();
    let mut maps = Vec::with_capacity(pairs.len());
    let mut cells = Vec::new();
    for i in 0..pairs.len() {
        let sample = pairs.get(i)?;
        let mask = pairs.mask(i)?;
        let mut img = sample.image.to_float();
        if (img.width, img.height) != (mask.width, mask.height) {
            return Err(SegmentError::Size {
                index: i,
                image: (img.width, img.height),
                mask: (mask.width, mask.height),
            });
        }
        cfg.normalize.apply(&mut img);
        let map = dense_map(&net, &img, device);
        let [_, c, h, w] = map.dims();
        cells.push(map.clone().reshape([c, h * w]).transpose());
        maps.push((map, mask));
    }
    // k-means on the feature-map cells of the whole split; pixels take their nearest centroid.
    let x = Tensor::cat(cells, 0);
    let km = kmeans(
        &x,
        &KMeansConfig {
            k: cfg.classes,
            max_iterations: 50,
            restarts: cfg.restarts.max(1),
            init: KMeansInit::PlusPlus,
            metric: KMeansMetric::Spherical,
            seed: cfg.seed,
            ..Default::default()
        },
    )
    .map_err(|e| SegmentError::Cluster(e.to_string()))?;
    let k = cfg.classes;
    let mut confusion = vec![vec![0u64; cfg.classes]; k];
    let mut predicted = Vec::with_capacity(maps.len());
    for (index, (map, mask)) in maps.into_iter().enumerate() {
        let [_, c, _, _] = map.dims();
        let up = resize_bilinear(map, mask.height, mask.width);
        let px = up.reshape([c, mask.height * mask.width]).transpose();
        let (labels, _) = assign(&px, &km.centroids, KMeansMetric::Spherical, 8192);
        for (&l, &g) in labels.iter().zip(&mask.ids) {
            if g != cfg.ignore && (g as usize) < cfg.classes {
                confusion[l][g as usize] += 1;
            }
        }
        predicted.push(Predicted {
            index,
            clusters: labels.into_iter().map(|l| l as u8).collect(),
            mask,
        });
    }
    Ok((score(&confusion, cfg.classes, cfg.ignore)?, predicted))
}

/// Hungarian matching (maximum matched pixels) of a clusters × classes confusion matrix, then
/// per-class IoU, mIoU and pixel accuracy.
pub fn score(
    confusion: &[Vec<u64>],
    classes: usize,
    ignore: u8,
) -> Result<SegmentResult, SegmentError> {
    let k = confusion.len();
    let total: u64 = confusion.iter().flatten().sum();
    if total == 0 {
        return Err(SegmentError::Empty(ignore));
    }
    let n = k.max(classes);
    let mut weights = Matrix::new(n, n, 0i64);
    for (i, row) in confusion.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            weights[(i, j)] = v as i64;
        }
    }
    let (_, assignment) = kuhn_munkres(&weights);
    let cluster_to_class: Vec<usize> = assignment[..k].to_vec();
    let mut tp = vec![0u64; classes];
    let mut pred = vec![0u64; classes];
    let mut gt = vec![0u64; classes];
    for (i, row) in confusion.iter().enumerate() {
        let c = cluster_to_class[i];
        for (j, &v) in row.iter().enumerate() {
            gt[j] += v;
            if c < classes {
                pred[c] += v;
                if c == j {
                    tp[c] += v;
                }
            }
        }
    }
    let class_iou: Vec<f64> = (0..classes)
        .map(|c| {
            let union = gt[c] + pred[c] - tp[c];
            if union == 0 {
                0.0
            } else {
                100.0 * tp[c] as f64 / union as f64
            }
        })
        .collect();
    let present: Vec<f64> = (0..classes)
        .filter(|&c| gt[c] > 0)
        .map(|c| class_iou[c])
        .collect();
    Ok(SegmentResult {
        miou: present.iter().sum::<f64>() / present.len().max(1) as f64,
        pixel_accuracy: 100.0 * tp.iter().sum::<u64>() as f64 / total as f64,
        class_iou,
        cluster_to_class,
        pixels: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hungarian_matching_finds_the_permutation_and_scores_it() {
        // Cluster i holds class (i + 1) % 3, with a little noise.
        let conf = vec![vec![1, 90, 0], vec![0, 2, 80], vec![70, 0, 3]];
        let r = score(&conf, 3, 255).unwrap();
        assert_eq!(r.cluster_to_class, vec![1, 2, 0]);
        let total = 246.0;
        assert!((r.pixel_accuracy - 100.0 * 240.0 / total).abs() < 1e-9);
        // Class 1: tp 90, gt 92, pred 91 -> IoU 90 / 93.
        assert!((r.class_iou[1] - 100.0 * 90.0 / 93.0).abs() < 1e-9);
    }
}
