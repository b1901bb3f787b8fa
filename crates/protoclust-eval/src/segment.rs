//! Unsupervised semantic segmentation, in two modes: k-means on the dense features of every
//! evaluation pixel (the PiCIE protocol), or each pixel's prototype argmax from a method's
//! dense scores (SlotCon's); clusters are matched to classes (Hungarian one-to-one, or each
//! to its majority class), then mIoU and pixel accuracy; optionally image | ground truth |
//! prediction panels.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use pathfinding::prelude::{kuhn_munkres, Matrix};
use protoclust_data::source::pairs::{ImageMaskPairs, Mask};
use protoclust_data::source::Source;
use protoclust_data::transform::Normalize;
use protoclust_nn::backbone::{ResNet, ResNetOutput};
use protoclust_nn::cluster::{assign, kmeans, KMeansConfig, KMeansInit, KMeansMetric};
use protoclust_nn::ops::{host, resize_bilinear};

/// How clusters (k-means clusters or prototypes) are matched to classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    /// One-to-one, maximising matched pixels (Hungarian); clusters beyond the class count
    /// stay unmatched and count as errors.
    Hungarian,
    /// Many-to-one: every cluster takes the class it overlaps most.
    Majority,
}

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
    /// Cluster (or prototype) of every pixel.
    pub clusters: Vec<u16>,
    /// Ground truth.
    pub mask: Mask,
    /// Prototype mode: each prototype's mean score over the map pixels it wins (`None`: it
    /// wins none), what the prototype-region view ranks by; empty for k-means.
    pub region_scores: Vec<Option<f32>>,
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

/// Image `i` of `pairs`, normalised, with its mask (sizes checked).
fn eval_pair(
    pairs: &ImageMaskPairs,
    i: usize,
    cfg: &SegmentConfig,
) -> Result<(protoclust_data::FloatImage, Mask), SegmentError> {
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
    Ok((img, mask))
}

/// Adds one image's (cluster, class) pixel counts to `confusion`, ignored pixels left out.
fn count(confusion: &mut [Vec<u64>], labels: &[usize], mask: &Mask, cfg: &SegmentConfig) {
    for (&l, &g) in labels.iter().zip(&mask.ids) {
        if g != cfg.ignore && (g as usize) < cfg.classes {
            confusion[l][g as usize] += 1;
        }
    }
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
        let (img, mask) = eval_pair(pairs, i, cfg)?;
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
    let mut confusion = vec![vec![0u64; cfg.classes]; cfg.classes];
    let mut predicted = Vec::with_capacity(maps.len());
    for (index, (map, mask)) in maps.into_iter().enumerate() {
        let [_, c, _, _] = map.dims();
        let up = resize_bilinear(map, mask.height, mask.width);
        let px = up.reshape([c, mask.height * mask.width]).transpose();
        let (labels, _) = assign(&px, &km.centroids, KMeansMetric::Spherical, 8192);
        count(&mut confusion, &labels, &mask, cfg);
        predicted.push(Predicted {
            index,
            clusters: labels.into_iter().map(|l| l as u16).collect(),
            mask,
            region_scores: Vec::new(),
        });
    }
    Ok((
        score(&confusion, cfg.classes, cfg.ignore, Matching::Hungarian)?,
        predicted,
    ))
}

/// A method's per-pixel prototype scores (1 × K × h × w) from the backbone's output on one
/// image.
pub type DenseScores<'a> = &'a dyn Fn(&ResNetOutput) -> Tensor<4>;

/// Gives every pixel its prototype (argmax of `dense`'s scores, upsampled bilinearly to the
/// mask size) and scores the prototypes matched to classes by `matching`.
pub fn segment_eval_prototypes(
    net: &ResNet,
    dense: DenseScores<'_>,
    pairs: &ImageMaskPairs,
    cfg: &SegmentConfig,
    matching: Matching,
    device: &Device,
) -> Result<(SegmentResult, Vec<Predicted>), SegmentError> {
    let net = net.clone().valid();
    let mut confusion: Vec<Vec<u64>> = Vec::new();
    let mut predicted = Vec::with_capacity(pairs.len());
    for index in 0..pairs.len() {
        let (img, mask) = eval_pair(pairs, index, cfg)?;
        let x = Tensor::<4>::from_data(
            TensorData::new(img.data.clone(), [1, 3, img.height, img.width]),
            device,
        );
        let scores = dense(&net.forward(x));
        let k = scores.dims()[1];
        let region_scores =
            crate::prototype_regions::region_scores(&host::to_f32(scores.clone()), k);
        let labels = pixel_argmax(scores, mask.height, mask.width);
        if confusion.is_empty() {
            confusion = vec![vec![0u64; cfg.classes]; k];
        }
        count(&mut confusion, &labels.0, &mask, cfg);
        predicted.push(Predicted {
            index,
            clusters: labels.0.into_iter().map(|l| l as u16).collect(),
            mask,
            region_scores,
        });
    }
    Ok((
        score(&confusion, cfg.classes, cfg.ignore, matching)?,
        predicted,
    ))
}

/// The argmax over K of every pixel of 1 × K × h × w `scores` resized to `height × width`,
/// row-major, with K.
pub fn pixel_argmax(scores: Tensor<4>, height: usize, width: usize) -> (Vec<usize>, usize) {
    let [_, k, _, _] = scores.dims();
    let up = resize_bilinear(scores, height, width).reshape([k, height * width]);
    (argmax_per_pixel(&host::to_f32(up), k), k)
}

/// The best of `k` prototype-major score planes (K × P values) at each of the P pixels, the
/// lowest index on ties.
pub(crate) fn argmax_per_pixel(v: &[f32], k: usize) -> Vec<usize> {
    let n = v.len() / k.max(1);
    (0..n)
        .map(|p| {
            let mut best = 0;
            for j in 1..k {
                if v[j * n + p] > v[best * n + p] {
                    best = j;
                }
            }
            best
        })
        .collect()
}

/// Matches the clusters of a clusters × classes confusion matrix to classes, then per-class
/// IoU, mIoU and pixel accuracy. A cluster matched to no class has the index `classes` or
/// above.
pub fn score(
    confusion: &[Vec<u64>],
    classes: usize,
    ignore: u8,
    matching: Matching,
) -> Result<SegmentResult, SegmentError> {
    let k = confusion.len();
    let total: u64 = confusion.iter().flatten().sum();
    if total == 0 {
        return Err(SegmentError::Empty(ignore));
    }
    let cluster_to_class: Vec<usize> = match matching {
        Matching::Hungarian => {
            let n = k.max(classes);
            let mut weights = Matrix::new(n, n, 0i64);
            for (i, row) in confusion.iter().enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    weights[(i, j)] = v as i64;
                }
            }
            let (_, assignment) = kuhn_munkres(&weights);
            assignment[..k].to_vec()
        }
        Matching::Majority => confusion
            .iter()
            .map(|row| {
                let best = (0..row.len()).max_by_key(|&j| (row[j], std::cmp::Reverse(j)));
                match best {
                    Some(j) if row[j] > 0 => j,
                    _ => classes,
                }
            })
            .collect(),
    };
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
        let r = score(&conf, 3, 255, Matching::Hungarian).unwrap();
        assert_eq!(r.cluster_to_class, vec![1, 2, 0]);
        let total = 246.0;
        assert!((r.pixel_accuracy - 100.0 * 240.0 / total).abs() < 1e-9);
        // Class 1: tp 90, gt 92, pred 91 -> IoU 90 / 93.
        assert!((r.class_iou[1] - 100.0 * 90.0 / 93.0).abs() < 1e-9);
    }

    #[test]
    fn majority_matching_maps_many_prototypes_to_one_class() {
        // Prototypes 0 and 1 sit on class 0, prototype 2 on class 1, prototype 3 on nothing.
        let conf = vec![vec![10, 0], vec![8, 2], vec![0, 5], vec![0, 0]];
        let r = score(&conf, 2, 255, Matching::Majority).unwrap();
        assert_eq!(r.cluster_to_class, vec![0, 0, 1, 2]);
        // Class 0: tp 18, gt 18, predicted 20 -> 90%; class 1: tp 5, gt 7, predicted 5 -> 5/7.
        assert!((r.class_iou[0] - 90.0).abs() < 1e-9, "{:?}", r.class_iou);
        assert!((r.class_iou[1] - 100.0 * 5.0 / 7.0).abs() < 1e-9);
        assert!((r.pixel_accuracy - 100.0 * 23.0 / 25.0).abs() < 1e-9);
        // One-to-one leaves prototype 1 unmatched: its 10 pixels count as errors.
        let h = score(&conf, 2, 255, Matching::Hungarian).unwrap();
        assert!(
            (h.pixel_accuracy - 100.0 * 15.0 / 25.0).abs() < 1e-9,
            "{h:?}"
        );
    }

    #[test]
    fn pixel_argmax_takes_the_best_prototype_of_every_pixel() {
        let device = Device::flex();
        // K = 3 over a 2 × 2 map: pixel p's best prototype is [2, 0, 1, 2][p].
        let v = vec![
            0.1, 0.9, 0.0, 0.2, // prototype 0
            0.3, 0.1, 0.8, 0.1, // prototype 1
            0.7, 0.2, 0.1, 0.9, // prototype 2
        ];
        let t = Tensor::<4>::from_data(TensorData::new(v, [1, 3, 2, 2]), &device);
        assert_eq!(pixel_argmax(t, 2, 2), (vec![2, 0, 1, 2], 3));
    }

    #[test]
    fn prototype_mode_scores_a_known_segmentation_exactly() {
        use protoclust_nn::backbone::ResNetConfig;
        let dir = std::env::temp_dir().join(format!("pc-seg-proto-{}", std::process::id()));
        let (images, masks) = (dir.join("images"), dir.join("masks"));
        std::fs::create_dir_all(&images).unwrap();
        std::fs::create_dir_all(&masks).unwrap();
        // Two 8 × 8 frames: class 0 on the left half, class 1 on the right, row 0 ignored.
        let mask = image::GrayImage::from_fn(8, 8, |x, y| {
            image::Luma([if y == 0 { 255 } else { u8::from(x >= 4) }])
        });
        for name in ["a.png", "b.png"] {
            image::RgbImage::new(8, 8).save(images.join(name)).unwrap();
            mask.save(masks.join(name)).unwrap();
        }
        let device = Device::flex();
        let cfg = ResNetConfig {
            depth: 18,
            width: 4,
            small_stem: true,
            stem_padding: None,
            zero_init_residual: false,
        };
        let net = protoclust_nn::backbone::resnet(&cfg, 0, &device).unwrap();
        // A fixed head: prototype 2 wins the left half, prototype 0 the right, 1 nowhere.
        let dense = |_: &ResNetOutput| {
            let mut v = vec![0.0f32; 3 * 64];
            for p in 0..64 {
                let k = if p % 8 < 4 { 2 } else { 0 };
                v[k * 64 + p] = 1.0;
            }
            Tensor::<4>::from_data(TensorData::new(v, [1, 3, 8, 8]), &Device::flex())
        };
        let pairs = ImageMaskPairs::open(&images, &masks).unwrap();
        let sc = SegmentConfig {
            classes: 2,
            ignore: 255,
            normalize: Normalize::default(),
            restarts: 1,
            seed: 0,
        };
        for matching in [Matching::Hungarian, Matching::Majority] {
            let (r, predicted) =
                segment_eval_prototypes(&net, &dense, &pairs, &sc, matching, &device).unwrap();
            assert_eq!(r.cluster_to_class[0], 1, "{matching:?}");
            assert_eq!(r.cluster_to_class[2], 0, "{matching:?}");
            assert_eq!(r.pixels, 2 * 56);
            assert!((r.miou - 100.0).abs() < 1e-9 && (r.pixel_accuracy - 100.0).abs() < 1e-9);
            assert_eq!(predicted[1].clusters[8..16], [2, 2, 2, 2, 0, 0, 0, 0]);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
