//! ODC's two memories: per-sample features and pseudo-labels, and per-cluster centroids.
//!
//! Semantics follow OpenSelfSup's `ODCMemory` (see the fixtures README): features are stored
//! L2-normalised, centroids are plain (un-normalised) means, labels are re-assigned by dot
//! product with the centroids.

use burn::tensor::{Bool, Device, IndexingUpdateOp, Tensor, TensorData};
use protoclust_nn::cluster::{kmeans, KMeansConfig, KMeansInit};
use protoclust_nn::ops::host::{index_tensor, to_indices};
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Divides each row by (‖row‖ + 1e-10), as the official code.
pub fn odc_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .add_scalar(1e-10);
    x / norm
}

/// One split of a large cluster to refill an emptied one.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The (largest) cluster that was split.
    pub from: usize,
    /// The emptied cluster that received a half.
    pub into: usize,
    /// Samples that kept label `from` (sorted).
    pub kept: Vec<usize>,
    /// Samples moved to `into` (sorted).
    pub moved: Vec<usize>,
}

/// What small-cluster handling did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SmallClusterReport {
    /// Clusters below the minimum size, ascending.
    pub small: Vec<usize>,
    /// Labels after dissolving the small clusters (before splitting).
    pub labels_after_reassign: Vec<usize>,
    /// The splits, in order.
    pub splits: Vec<Split>,
}

/// Sample memory and centroid memory.
#[derive(Debug, Clone)]
pub struct OdcMemory {
    /// N × D normalised features.
    pub bank: Tensor<2>,
    /// Pseudo-label of each sample.
    pub labels: Vec<usize>,
    /// K × D centroids.
    pub centroids: Tensor<2>,
    k: usize,
}

impl OdcMemory {
    /// Initialises from raw features (N × D) and a clustering without empty clusters.
    pub fn init(features: Tensor<2>, labels: Vec<usize>, k: usize) -> Self {
        let bank = odc_normalize(features);
        let centroids = Tensor::zeros([k, bank.dims()[1]], &bank.device());
        let mut m = Self {
            bank,
            labels,
            centroids,
            k,
        };
        m.update_centroids(None);
        m
    }

    /// Restores saved memories.
    pub fn from_parts(bank: Tensor<2>, labels: Vec<usize>, centroids: Tensor<2>) -> Self {
        let k = centroids.dims()[0];
        Self {
            bank,
            labels,
            centroids,
            k,
        }
    }

    /// Number of clusters.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Members per cluster.
    pub fn sizes(&self) -> Vec<usize> {
        let mut h = vec![0; self.k];
        self.labels.iter().for_each(|&l| h[l] += 1);
        h
    }

    fn device(&self) -> Device {
        self.bank.device()
    }

    /// Blends the batch's new features into the bank (momentum on the *new* feature), relabels
    /// those samples by the nearest centroid (dot product) and returns the fraction that changed.
    /// A sample drawn twice in one batch keeps its last occurrence, as an indexed write does.
    pub fn update_samples(&mut self, indices: &[usize], features: Tensor<2>, momentum: f64) -> f64 {
        let device = self.device();
        let mut last = std::collections::BTreeMap::new();
        indices.iter().enumerate().for_each(|(r, &i)| {
            last.insert(i, r);
        });
        let (ids, rows): (Vec<usize>, Vec<usize>) = last.into_iter().unzip();
        let f = odc_normalize(features.select(0, index_tensor(&rows, &device)));
        let ind = index_tensor(&ids, &device);
        let old = self.bank.clone().select(0, ind.clone());
        let new = odc_normalize(old.mul_scalar(1.0 - momentum) + f.mul_scalar(momentum));
        self.bank = self
            .bank
            .clone()
            .select_assign(0, ind, new.clone(), IndexingUpdateOp::Assign);
        let newlabel = to_indices(new.matmul(self.centroids.clone().transpose()).argmax(1));
        // The official ratio counts batch rows, duplicates included.
        let mut changed = 0usize;
        for &i in indices {
            let r = ids.binary_search(&i).unwrap_or(0);
            if newlabel[r] != self.labels[i] {
                changed += 1;
            }
        }
        for (r, &i) in ids.iter().enumerate() {
            self.labels[i] = newlabel[r];
        }
        changed as f64 / indices.len().max(1) as f64
    }

    /// Recomputes the centroids of `clusters` (all when None) as member means; an empty
    /// cluster keeps its old centroid.
    pub fn update_centroids(&mut self, clusters: Option<&[usize]>) {
        let device = self.device();
        let sizes = self.sizes();
        let sums = Tensor::<2>::zeros(self.centroids.dims(), &device).select_assign(
            0,
            index_tensor(&self.labels, &device),
            self.bank.clone(),
            IndexingUpdateOp::Add,
        );
        let counts: Vec<f32> = sizes.iter().map(|&s| s.max(1) as f32).collect();
        let means = sums / Tensor::<1>::from_floats(counts.as_slice(), &device).unsqueeze_dim(1);
        let update: Vec<bool> = (0..self.k)
            .map(|c| sizes[c] > 0 && clusters.is_none_or(|cs| cs.contains(&c)))
            .collect();
        let mask = Tensor::<1, Bool>::from_data(TensorData::new(update, [self.k]), &device)
            .unsqueeze_dim::<2>(1)
            .expand(self.centroids.dims());
        self.centroids = self.centroids.clone().mask_where(mask, means);
    }

    /// Dissolves clusters with fewer than `min_cluster` members into the nearest non-small
    /// centroid (stale centroids), then refills each by splitting the largest cluster with
    /// 2-means. `seed` drives the 2-means seeding and the random fallback split.
    pub fn deal_with_small_clusters(
        &mut self,
        min_cluster: usize,
        seed: u64,
    ) -> SmallClusterReport {
        let sizes = self.sizes();
        let small: Vec<usize> = (0..self.k).filter(|&c| sizes[c] < min_cluster).collect();
        let mut report = SmallClusterReport {
            small: small.clone(),
            ..Default::default()
        };
        if small.is_empty() {
            report.labels_after_reassign = self.labels.clone();
            return report;
        }
        let device = self.device();
        let keep: Vec<usize> = (0..self.k).filter(|c| !small.contains(c)).collect();
        if keep.is_empty() {
            report.labels_after_reassign = self.labels.clone();
            return report;
        }
        let members: Vec<usize> = (0..self.labels.len())
            .filter(|&i| small.contains(&self.labels[i]))
            .collect();
        if !members.is_empty() {
            let c = self
                .centroids
                .clone()
                .select(0, index_tensor(&keep, &device));
            let f = self.bank.clone().select(0, index_tensor(&members, &device));
            let target = to_indices(f.matmul(c.transpose()).argmax(1));
            for (m, t) in members.iter().zip(target) {
                self.labels[*m] = keep[t];
            }
        }
        report.labels_after_reassign = self.labels.clone();
        for (j, &e) in small.iter().enumerate() {
            let sizes = self.sizes();
            let mut from = 0;
            for c in 0..self.k {
                if sizes[c] > sizes[from] {
                    from = c;
                }
            }
            let inds: Vec<usize> = (0..self.labels.len())
                .filter(|&i| self.labels[i] == from)
                .collect();
            let (kept, moved) = self.partition(&inds, seed.wrapping_add(j as u64));
            for &i in &moved {
                self.labels[i] = e;
            }
            self.update_centroids(Some(&[from, e]));
            report.splits.push(Split {
                from,
                into: e,
                kept,
                moved,
            });
        }
        report
    }

    /// 2-means over the bank rows `inds`; falls back to a random halving when one side is empty.
    fn partition(&self, inds: &[usize], seed: u64) -> (Vec<usize>, Vec<usize>) {
        let device = self.device();
        if inds.len() >= 2 {
            let data = self.bank.clone().select(0, index_tensor(inds, &device));
            let cfg = KMeansConfig {
                k: 2,
                max_iterations: 20,
                restarts: 1,
                init: KMeansInit::PlusPlus,
                seed,
                ..Default::default()
            };
            if let Ok(r) = kmeans(&data, &cfg) {
                let side = |s: usize| -> Vec<usize> {
                    inds.iter()
                        .zip(&r.labels)
                        .filter(|(_, &l)| l == s)
                        .map(|(&i, _)| i)
                        .collect()
                };
                let (a, b) = (side(0), side(1));
                if !a.is_empty() && !b.is_empty() {
                    return (a, b);
                }
            }
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut shuffled = inds.to_vec();
        shuffled.shuffle(&mut rng);
        let (a, b) = shuffled.split_at(inds.len() / 2);
        let (mut a, mut b) = (a.to_vec(), b.to_vec());
        a.sort_unstable();
        b.sort_unstable();
        (a, b)
    }
}
