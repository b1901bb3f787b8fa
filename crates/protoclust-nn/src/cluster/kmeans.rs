//! k-means on burn tensors (Lloyd iterations, k-means++ or random init, restarts).
//!
//! Distances and centroid sums run on the tensors' device, so the same code clusters on the CPU
//! and on a GPU backend; only per-sample labels and distances come back to the host, for the
//! seeding draws and the empty-cluster repair.

use crate::ops::host::{index_tensor, to_f32, to_indices};
use crate::ops::{l2_normalize, rows};
use burn::tensor::{IndexingUpdateOp, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How the first centroids are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KMeansInit {
    /// k-means++ seeding (Arthur & Vassilvitskii, 2007).
    PlusPlus,
    /// k distinct samples drawn uniformly.
    Random,
}

/// The geometry clusters are formed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KMeansMetric {
    /// Squared Euclidean distance to the mean.
    Euclidean,
    /// Cosine similarity on the unit sphere: rows and centroids are L2-normalised.
    Spherical,
}

/// k-means settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KMeansConfig {
    /// Number of clusters.
    pub k: usize,
    /// Maximum Lloyd iterations per restart.
    pub max_iterations: usize,
    /// Independent restarts; the one with the lowest inertia wins.
    pub restarts: usize,
    /// Seeding.
    pub init: KMeansInit,
    /// Distance.
    pub metric: KMeansMetric,
    /// Stop when the inertia improves by less than this fraction (0: only when no label
    /// changes).
    pub tolerance: f64,
    /// Seed of the initialisation draws.
    pub seed: u64,
    /// Rows per distance block (bounds memory at block × k).
    pub block_rows: usize,
}

impl Default for KMeansConfig {
    fn default() -> Self {
        Self {
            k: 10,
            max_iterations: 50,
            restarts: 1,
            init: KMeansInit::PlusPlus,
            metric: KMeansMetric::Euclidean,
            tolerance: 1e-6,
            seed: 0,
            block_rows: 4096,
        }
    }
}

/// Why clustering could not run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KMeansError {
    /// k is zero or exceeds the number of samples.
    #[error("k-means: k = {k} clusters but {n} samples (k must be in 1..=number of samples)")]
    K {
        /// Requested clusters.
        k: usize,
        /// Samples available.
        n: usize,
    },
    /// The input has non-finite values.
    #[error("k-means: the features contain NaN or infinite values")]
    NonFinite,
}

/// A clustering: centroids, labels and its cost.
#[derive(Debug, Clone)]
pub struct KMeansResult {
    /// k × D centroids (unit rows in spherical mode).
    pub centroids: Tensor<2>,
    /// Cluster of each row.
    pub labels: Vec<usize>,
    /// Sum of squared distances to the assigned centroid (spherical: of 2 − 2·cos).
    pub inertia: f64,
    /// Lloyd iterations of the winning restart.
    pub iterations: usize,
    /// Times an empty cluster was re-seeded in the winning restart.
    pub reseeded: usize,
}

impl KMeansResult {
    /// Members per cluster.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![0; self.centroids.dims()[0]];
        self.labels.iter().for_each(|&l| s[l] += 1);
        s
    }
}

/// Clusters the rows of `x` (N × D).
pub fn kmeans(x: &Tensor<2>, cfg: &KMeansConfig) -> Result<KMeansResult, KMeansError> {
    let [n, _] = x.dims();
    check(x, cfg.k, n)?;
    let x = prepare(x, cfg.metric);
    let norms = sq_norms(&x);
    let mut best: Option<KMeansResult> = None;
    for r in 0..cfg.restarts.max(1) {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ (r as u64).wrapping_mul(0x9E37_79B9));
        let init = match cfg.init {
            KMeansInit::PlusPlus => plus_plus(&x, &norms, cfg.k, &mut rng),
            KMeansInit::Random => random_rows(&x, cfg.k, &mut rng),
        };
        let res = lloyd(&x, &norms, init, cfg);
        if best.as_ref().is_none_or(|b| res.inertia < b.inertia) {
            best = Some(res);
        }
    }
    Ok(best.expect("at least one restart"))
}

/// Runs Lloyd iterations from the given k × D centroids.
pub fn kmeans_from(
    x: &Tensor<2>,
    centroids: Tensor<2>,
    cfg: &KMeansConfig,
) -> Result<KMeansResult, KMeansError> {
    let [n, _] = x.dims();
    let k = centroids.dims()[0];
    check(x, k, n)?;
    let x = prepare(x, cfg.metric);
    let norms = sq_norms(&x);
    Ok(lloyd(
        &x,
        &norms,
        centroids,
        &KMeansConfig { k, ..cfg.clone() },
    ))
}

/// Nearest centroid of every row of `x` and its squared distance.
pub fn assign(
    x: &Tensor<2>,
    centroids: &Tensor<2>,
    metric: KMeansMetric,
    block_rows: usize,
) -> (Vec<usize>, Vec<f32>) {
    let x = prepare(x, metric);
    let norms = sq_norms(&x);
    assign_prepared(&x, &norms, centroids, block_rows)
}

fn check(x: &Tensor<2>, k: usize, n: usize) -> Result<(), KMeansError> {
    if k == 0 || k > n {
        return Err(KMeansError::K { k, n });
    }
    if !crate::ops::host::scalar(x.clone().sum()).is_finite() {
        return Err(KMeansError::NonFinite);
    }
    Ok(())
}

fn prepare(x: &Tensor<2>, metric: KMeansMetric) -> Tensor<2> {
    match metric {
        KMeansMetric::Euclidean => x.clone(),
        KMeansMetric::Spherical => l2_normalize(x.clone(), 1),
    }
}

fn sq_norms(x: &Tensor<2>) -> Vec<f32> {
    to_f32(x.clone().powf_scalar(2.0).sum_dim(1))
}

fn plus_plus(x: &Tensor<2>, norms: &[f32], k: usize, rng: &mut ChaCha8Rng) -> Tensor<2> {
    let n = norms.len();
    let device = x.device();
    let mut chosen = vec![rng.random_range(0..n)];
    let mut d2 = dist_to_row(x, norms, chosen[0]);
    while chosen.len() < k {
        let total: f64 = d2.iter().map(|&v| v.max(0.0) as f64).sum();
        let next = if total > 0.0 {
            let mut u = rng.random::<f64>() * total;
            let mut pick = n - 1;
            for (i, &v) in d2.iter().enumerate() {
                u -= v.max(0.0) as f64;
                if u <= 0.0 && v > 0.0 {
                    pick = i;
                    break;
                }
            }
            pick
        } else {
            // All remaining points coincide with a centre: any unused row will do.
            (0..n).find(|i| !chosen.contains(i)).unwrap_or(0)
        };
        chosen.push(next);
        let dn = dist_to_row(x, norms, next);
        d2.iter_mut().zip(dn).for_each(|(a, b)| *a = a.min(b));
    }
    x.clone().select(0, index_tensor(&chosen, &device))
}

fn dist_to_row(x: &Tensor<2>, norms: &[f32], i: usize) -> Vec<f32> {
    let c = rows(x.clone(), i..i + 1);
    let dots = to_f32(x.clone().matmul(c.transpose()));
    dots.iter()
        .zip(norms)
        .map(|(d, nx)| (nx - 2.0 * d + norms[i]).max(0.0))
        .collect()
}

fn random_rows(x: &Tensor<2>, k: usize, rng: &mut ChaCha8Rng) -> Tensor<2> {
    let n = x.dims()[0];
    let picks = rand::seq::index::sample(rng, n, k).into_vec();
    x.clone().select(0, index_tensor(&picks, &x.device()))
}

fn assign_prepared(
    x: &Tensor<2>,
    norms: &[f32],
    centroids: &Tensor<2>,
    block_rows: usize,
) -> (Vec<usize>, Vec<f32>) {
    let n = norms.len();
    let ct = centroids.clone().transpose();
    let cn = centroids.clone().powf_scalar(2.0).sum_dim(1).transpose();
    let mut labels = Vec::with_capacity(n);
    let mut dist = Vec::with_capacity(n);
    for start in (0..n).step_by(block_rows.max(1)) {
        let end = (start + block_rows.max(1)).min(n);
        // ‖c‖² − 2⟨x, c⟩: the row's own ‖x‖² does not change the argmin.
        let d = cn.clone()
            - rows(x.clone(), start..end)
                .matmul(ct.clone())
                .mul_scalar(2.0);
        let (v, i) = d.min_dim_with_indices(1);
        labels.extend(to_indices(i));
        dist.extend(
            to_f32(v)
                .into_iter()
                .zip(&norms[start..end])
                .map(|(v, nx)| (v + nx).max(0.0)),
        );
    }
    (labels, dist)
}

fn lloyd(x: &Tensor<2>, norms: &[f32], init: Tensor<2>, cfg: &KMeansConfig) -> KMeansResult {
    let k = init.dims()[0];
    let device = x.device();
    let mut centroids = init;
    let mut reseeded = 0;
    let mut prev = f64::INFINITY;
    let mut iterations = 0;
    let (mut labels, mut dist) = assign_prepared(x, norms, &centroids, cfg.block_rows);
    for _ in 0..cfg.max_iterations {
        iterations += 1;
        let mut sizes = vec![0usize; k];
        labels.iter().for_each(|&l| sizes[l] += 1);
        reseeded += reseed_empty(&mut labels, &mut dist, &mut sizes);
        let sums = Tensor::<2>::zeros(centroids.dims(), &device).select_assign(
            0,
            index_tensor(&labels, &device),
            x.clone(),
            IndexingUpdateOp::Add,
        );
        let counts: Vec<f32> = sizes.iter().map(|&s| s.max(1) as f32).collect();
        let counts = Tensor::<1>::from_floats(counts.as_slice(), &device).unsqueeze_dim(1);
        centroids = sums / counts;
        if cfg.metric == KMeansMetric::Spherical {
            centroids = l2_normalize(centroids, 1);
        }
        let (l, d) = assign_prepared(x, norms, &centroids, cfg.block_rows);
        let inertia: f64 = d.iter().map(|&v| v as f64).sum();
        let changed = l.iter().zip(&labels).any(|(a, b)| a != b);
        labels = l;
        dist = d;
        let converged = !changed
            || (cfg.tolerance > 0.0
                && prev.is_finite()
                && (prev - inertia) <= cfg.tolerance * prev.abs().max(1e-30));
        prev = inertia;
        if converged {
            break;
        }
    }
    // The last assignment may leave a cluster empty (ties); give it its farthest point.
    let mut sizes = vec![0usize; k];
    labels.iter().for_each(|&l| sizes[l] += 1);
    let empty: Vec<usize> = (0..k).filter(|&c| sizes[c] == 0).collect();
    if !empty.is_empty() {
        let before = labels.clone();
        reseeded += reseed_empty(&mut labels, &mut dist, &mut sizes);
        let moved: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] != before[i])
            .collect();
        let pts = x.clone().select(0, index_tensor(&moved, &device));
        centroids = centroids.select_assign(
            0,
            index_tensor(&empty, &device),
            pts,
            IndexingUpdateOp::Assign,
        );
    }
    KMeansResult {
        inertia: dist.iter().map(|&v| v as f64).sum(),
        centroids,
        labels,
        iterations,
        reseeded,
    }
}

/// Moves, for each empty cluster, the sample farthest from its centroid (in a cluster with more
/// than one member) into it, as scikit-learn does; returns how many clusters were re-seeded.
fn reseed_empty(labels: &mut [usize], dist: &mut [f32], sizes: &mut [usize]) -> usize {
    let empty: Vec<usize> = (0..sizes.len()).filter(|&c| sizes[c] == 0).collect();
    if empty.is_empty() {
        return 0;
    }
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| dist[b].total_cmp(&dist[a]).then(a.cmp(&b)));
    let mut next = order.into_iter();
    for &e in &empty {
        for i in next.by_ref() {
            if sizes[labels[i]] > 1 {
                sizes[labels[i]] -= 1;
                labels[i] = e;
                sizes[e] = 1;
                dist[i] = 0.0;
                break;
            }
        }
    }
    empty.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::host::matrix;
    use burn::tensor::Device;

    fn blobs(per: usize, centres: &[[f32; 2]], seed: u64) -> (Tensor<2>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut v = Vec::new();
        let mut truth = Vec::new();
        for i in 0..per * centres.len() {
            let c = centres[i % centres.len()];
            v.push(c[0] + rng.random_range(-0.5..0.5));
            v.push(c[1] + rng.random_range(-0.5..0.5));
            truth.push(i % centres.len());
        }
        (matrix(v, truth.len(), 2, &Device::flex()), truth)
    }

    fn same_partition(a: &[usize], b: &[usize]) -> bool {
        let mut map = std::collections::HashMap::new();
        a.iter()
            .zip(b)
            .all(|(x, y)| *map.entry(*x).or_insert(*y) == *y)
    }

    #[test]
    fn separated_blobs_are_recovered_by_both_inits() {
        let (x, truth) = blobs(30, &[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [9.0, 9.0]], 1);
        for init in [KMeansInit::PlusPlus, KMeansInit::Random] {
            let cfg = KMeansConfig {
                k: 4,
                restarts: 5,
                init,
                ..Default::default()
            };
            let r = kmeans(&x, &cfg).unwrap();
            assert!(same_partition(&r.labels, &truth), "{init:?}");
            assert!(same_partition(&truth, &r.labels), "{init:?}");
            assert_eq!(r.sizes(), vec![30; 4]);
        }
    }

    #[test]
    fn k_above_n_is_an_error_not_a_crash() {
        let (x, _) = blobs(2, &[[0.0, 0.0]], 0);
        let e = kmeans(
            &x,
            &KMeansConfig {
                k: 3,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e, KMeansError::K { k: 3, n: 2 });
        assert!(e.to_string().contains("3 clusters but 2 samples"));
    }

    #[test]
    fn no_cluster_is_left_empty_even_from_a_bad_start() {
        // All initial centroids far away on one side: Lloyd alone would leave k−1 empty.
        let (x, _) = blobs(20, &[[0.0, 0.0], [5.0, 5.0]], 2);
        let init = matrix(
            vec![100.0, 100.0, 101.0, 101.0, 102.0, 102.0],
            3,
            2,
            &x.device(),
        );
        let r = kmeans_from(&x, init, &KMeansConfig::default()).unwrap();
        assert!(r.sizes().iter().all(|&s| s > 0), "{:?}", r.sizes());
        assert!(r.reseeded > 0);
    }

    #[test]
    fn spherical_mode_clusters_by_direction() {
        // Two directions at different radii: Euclidean k=2 would split by radius.
        let mut v = Vec::new();
        for i in 0..40 {
            let r = if i % 4 < 2 { 1.0 } else { 20.0 };
            let a: f32 = if i % 2 == 0 { 0.1 } else { 1.5 };
            v.extend([r * a.cos(), r * a.sin()]);
        }
        let x = matrix(v, 40, 2, &Device::flex());
        let r = kmeans(
            &x,
            &KMeansConfig {
                k: 2,
                metric: KMeansMetric::Spherical,
                restarts: 3,
                ..Default::default()
            },
        )
        .unwrap();
        let dir: Vec<usize> = (0..40).map(|i| i % 2).collect();
        assert!(same_partition(&r.labels, &dir) && same_partition(&dir, &r.labels));
        let c = to_f32(r.centroids.powf_scalar(2.0).sum_dim(1));
        assert!(c.iter().all(|v| (v - 1.0).abs() < 1e-5));
    }

    #[test]
    fn a_tolerance_does_not_stop_lloyd_after_its_first_iteration() {
        let (x, _) = blobs(25, &[[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [3.0, 3.0]], 5);
        let init = rows(x.clone(), 0..1).repeat_dim(0, 4)
            + matrix(
                vec![0.0, 0.0, 0.1, 0.0, 0.0, 0.1, 0.1, 0.1],
                4,
                2,
                &x.device(),
            );
        let r = kmeans_from(&x, init, &KMeansConfig::default()).unwrap();
        assert!(r.iterations > 1, "{} iterations", r.iterations);
    }

    #[test]
    fn restarts_never_increase_inertia_and_seeds_reproduce() {
        let (x, _) = blobs(25, &[[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [3.0, 3.0]], 3);
        let one = KMeansConfig {
            k: 6,
            restarts: 1,
            init: KMeansInit::Random,
            seed: 7,
            ..Default::default()
        };
        let many = KMeansConfig {
            restarts: 8,
            ..one.clone()
        };
        let a = kmeans(&x, &one).unwrap();
        let b = kmeans(&x, &many).unwrap();
        assert!(b.inertia <= a.inertia + 1e-9);
        assert_eq!(a.labels, kmeans(&x, &one).unwrap().labels);
    }
}
