//! The cluster of every image of a data set: the method's own clusters (SwAV/SlotCon prototype
//! argmax, ODC/DeepCluster classifier argmax) or spherical k-means on the backbone's pooled
//! features (asked for, or for JigClu and exported backbones). The `assign` command writes the
//! rows; the Python binding returns them.

use crate::model_file::ModelFile;
use crate::suite::{self, split_features};
use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use protoclust_data::source::{Source, Subset};
use protoclust_data::views::CenterView;
use protoclust_eval::Features;
use protoclust_nn::cluster::{kmeans, KMeansConfig, KMeansMetric};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Images per chunk (features of one chunk are in memory at a time).
const CHUNK: usize = 2048;

/// Temperature of the soft scores of k-means clusters (cosine similarity to the centroids).
const KMEANS_TEMPERATURE: f64 = 0.1;

/// Which clusters to assign to.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignOptions {
    /// k-means with K clusters on the backbone's features instead of the method's own clusters.
    pub k: Option<usize>,
    /// Images k-means is fitted on, evenly spread over the data.
    pub fit_images: usize,
    /// Seed of k-means.
    pub seed: u64,
}

impl Default for AssignOptions {
    fn default() -> Self {
        Self {
            k: None,
            fit_images: 20000,
            seed: 0,
        }
    }
}

/// Where cluster scores come from.
enum Scorer {
    /// The method's head scores, soft scores at the method's temperature.
    Method { temperature: f64 },
    /// Cosine similarity to unit centroids (k × dim, row-major).
    KMeans { centroids: Vec<f32>, dim: usize },
}

/// One image's cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Position of the image in its source.
    pub index: usize,
    /// Its file, for sources of files.
    pub path: Option<PathBuf>,
    /// The best cluster.
    pub cluster: usize,
    /// Its raw score (prototype or classifier score, or cosine to the k-means centroid).
    pub score: f32,
    /// (cluster, soft score), best first, up to five.
    pub top: Vec<(usize, f32)>,
    /// Soft score of the best cluster minus that of the second.
    pub confidence: f32,
    /// The image's label, when the source has one.
    pub label: Option<u32>,
}

impl Assignment {
    /// Soft score of the best cluster.
    pub fn probability(&self) -> f32 {
        self.top[0].1
    }
}

/// Softmax of `scores / t`, in f64 for the exponentials.
fn softmax(scores: &[f32], t: f64) -> Vec<f32> {
    let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = scores.iter().map(|&s| ((s as f64 - m) / t).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|v| (v / z) as f32).collect()
}

/// The assignment of one image from its cluster scores (argmax ties go to the lower id, as
/// `eval cluster`).
fn assignment(
    index: usize,
    path: Option<PathBuf>,
    label: Option<u32>,
    scores: &[f32],
    t: f64,
) -> Assignment {
    let soft = softmax(scores, t);
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let top: Vec<(usize, f32)> = order.iter().take(5).map(|&c| (c, soft[c])).collect();
    let cluster = order[0];
    let second = top.get(1).map_or(0.0, |t| t.1);
    Assignment {
        index,
        path,
        cluster,
        score: scores[cluster],
        confidence: top[0].1 - second,
        top,
        label,
    }
}

/// The method's own clusters, or k-means on backbone features when asked or when the model
/// file has none.
fn scorer(
    args: &AssignOptions,
    model: &ModelFile,
    source: &Arc<dyn Source>,
    view: &CenterView,
    dev: &Device,
) -> Result<Scorer> {
    let method_t = model.config.as_ref().and_then(|c| match c.method.as_str() {
        "swav" => Some(c.swav.temperature),
        "slotcon" => Some(c.slotcon.teacher_temp),
        "odc" | "deepcluster" => Some(1.0),
        "deepclusterv2" => Some(c.deepclusterv2.temperature),
        _ => None,
    });
    if let (None, Some(temperature)) = (args.k, method_t) {
        if model.head.is_some() {
            return Ok(Scorer::Method { temperature });
        }
    }
    let Some(k) = args.k else {
        bail!(
            "{}: this model has no clusters of its own (a JigClu checkpoint or an exported \
             backbone): give --k K for k-means on its backbone features",
            model.path.display()
        );
    };
    let n = source.len();
    let m = args.fit_images.clamp(1, n.max(1));
    let picks: Vec<usize> = (0..m).map(|i| i * n / m).collect();
    if k < 2 || k >= picks.len() {
        bail!(
            "--k {k}: k-means needs 2 <= k < the {} images it is fitted on (--fit-images)",
            picks.len()
        );
    }
    let fit = Arc::new(Subset::new(source.clone(), picks)?);
    let f = protoclust_eval::extract(&model.backbone, fit, view, 256, dev)?;
    let plain = dev.clone().without_autodiff();
    let r = kmeans(
        &f.to_tensor(&plain),
        &KMeansConfig {
            k,
            restarts: 3,
            max_iterations: 100,
            metric: KMeansMetric::Spherical,
            seed: args.seed,
            ..Default::default()
        },
    )?;
    let centroids = protoclust_nn::ops::host::to_f32(r.centroids);
    Ok(Scorer::KMeans {
        centroids,
        dim: f.dim,
    })
}

/// Cluster scores of every row of one chunk (N × K, row-major) and K.
fn chunk_scores(scorer: &Scorer, feats: &suite::SplitFeatures) -> Result<(Vec<f32>, usize)> {
    match scorer {
        Scorer::Method { .. } => {
            let s = feats
                .scores
                .as_ref()
                .context("the model's head gave no cluster scores")?;
            Ok((s.data.clone(), s.dim))
        }
        Scorer::KMeans { centroids, dim } => {
            let b: &Features = &feats.backbone;
            let k = centroids.len() / dim;
            let mut out = Vec::with_capacity(b.len() * k);
            for r in b.data.chunks_exact(*dim) {
                let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                for c in centroids.chunks_exact(*dim) {
                    out.push(r.iter().zip(c).map(|(a, b)| a * b).sum::<f32>() / norm);
                }
            }
            Ok((out, k))
        }
    }
}

/// Assigns every image of `source` (seen through `view`) in order, handing each row to `each`
/// as soon as its chunk is scored.
pub fn assign_each(
    model: &ModelFile,
    source: &Arc<dyn Source>,
    view: &CenterView,
    opts: &AssignOptions,
    dev: &Device,
    mut each: impl FnMut(Assignment) -> Result<()>,
) -> Result<()> {
    let scorer = scorer(opts, model, source, view, dev)?;
    let temperature = match &scorer {
        Scorer::Method { temperature } => *temperature,
        Scorer::KMeans { .. } => KMEANS_TEMPERATURE,
    };
    let n = source.len();
    for start in (0..n).step_by(CHUNK) {
        let idx: Vec<usize> = (start..(start + CHUNK).min(n)).collect();
        let chunk: Arc<dyn Source> = Arc::new(Subset::new(source.clone(), idx.clone())?);
        let feats = split_features(model, chunk, view, dev)?;
        let (scores, k) = chunk_scores(&scorer, &feats)?;
        for (i, s) in scores.chunks_exact(k.max(1)).enumerate() {
            let global = idx[feats.backbone.indices[i]];
            each(assignment(
                global,
                source.path(global).map(Path::to_path_buf),
                feats.backbone.labels[i],
                s,
                temperature,
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_rank_clusters_and_measure_the_margin() {
        let r = assignment(7, None, Some(2), &[0.1, 0.9, 0.9, -0.3, 0.0, 0.5], 0.1);
        assert_eq!(r.cluster, 1, "ties go to the lower id");
        assert_eq!(
            r.top.iter().map(|t| t.0).collect::<Vec<_>>(),
            [1, 2, 5, 0, 4]
        );
        assert!((r.top[0].1 - r.top[1].1).abs() < 1e-6 && r.confidence.abs() < 1e-6);
        let sum: f32 = softmax(&[0.1, 0.9, 0.9, -0.3, 0.0, 0.5], 0.1).iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }
}
