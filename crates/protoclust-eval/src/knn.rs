//! Weighted k-nearest-neighbour classification on L2-normalised features (InstDisc/DINO protocol).

use crate::features::Features;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// Accuracy of one kNN evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KnnResult {
    /// Neighbours used.
    pub k: usize,
    /// Temperature of the exp(sim/T) vote weights.
    pub temperature: f64,
    /// Top-1 accuracy in percent.
    pub top1: f64,
    /// Top-5 accuracy in percent.
    pub top5: f64,
}

/// Neighbour counts of the standard sweep.
pub const SWEEP_K: [usize; 7] = [1, 5, 10, 20, 50, 100, 200];
/// Temperatures of the standard sweep.
pub const SWEEP_T: [f64; 4] = [0.02, 0.07, 0.1, 0.2];

/// Every (k, T) pair of the standard sweep whose k fits `train_len` samples.
pub fn sweep_settings(train_len: usize) -> Vec<(usize, f64)> {
    SWEEP_K
        .iter()
        .filter(|&&k| k <= train_len)
        .flat_map(|&k| SWEEP_T.iter().map(move |&t| (k, t)))
        .collect()
}

/// Why kNN could not run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KnnError {
    /// A side has no labels.
    #[error("{0} features have no labels; kNN needs a labelled train and test split")]
    Unlabelled(&'static str),
    /// Dimensions disagree.
    #[error("train features have dimension {0}, test features {1}")]
    Dim(usize, usize),
    /// k out of range.
    #[error("k = {k} must be in 1..={n} (the number of train samples)")]
    K {
        /// Requested k.
        k: usize,
        /// Train samples.
        n: usize,
    },
}

/// Classifies every test row by a vote of its `k` most cosine-similar train rows, each weighted
/// by exp(sim/T); several (k, T) pairs share one similarity pass.
pub fn knn_classify(
    train: &Features,
    test: &Features,
    settings: &[(usize, f64)],
    num_classes: usize,
    device: &Device,
) -> Result<Vec<KnnResult>, KnnError> {
    let device = device.clone().without_autodiff();
    let train_labels: Vec<u32> = train
        .labels
        .iter()
        .map(|l| l.ok_or(KnnError::Unlabelled("train")))
        .collect::<Result<_, _>>()?;
    let test_labels: Vec<u32> = test
        .labels
        .iter()
        .map(|l| l.ok_or(KnnError::Unlabelled("test")))
        .collect::<Result<_, _>>()?;
    if train.dim != test.dim {
        return Err(KnnError::Dim(train.dim, test.dim));
    }
    let kmax = settings.iter().map(|s| s.0).max().unwrap_or(1);
    if let Some(&(k, _)) = settings.iter().find(|s| s.0 == 0 || s.0 > train.len()) {
        return Err(KnnError::K { k, n: train.len() });
    }
    let tr = train.clone().normalized().to_tensor(&device).transpose();
    let te_all = test.clone().normalized();
    let mut hits = vec![(0usize, 0usize); settings.len()];
    let chunk = 256;
    for start in (0..test.len()).step_by(chunk) {
        let end = (start + chunk).min(test.len());
        let rows = te_all.data[start * test.dim..end * test.dim].to_vec();
        let q = burn::tensor::Tensor::<2>::from_data(
            burn::tensor::TensorData::new(rows, [end - start, test.dim]),
            &device,
        );
        let (vals, idx) = protoclust_nn::ops::top_k_rows(q.matmul(tr.clone()), kmax);
        let vals: Vec<f32> = vals
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .unwrap_or_default();
        let idx: Vec<i64> = idx
            .into_data()
            .convert::<i64>()
            .try_to_vec()
            .unwrap_or_default();
        for r in 0..end - start {
            let truth = test_labels[start + r] as usize;
            for (s, &(k, t)) in settings.iter().enumerate() {
                let mut votes = vec![0f64; num_classes];
                for j in 0..k {
                    let c = train_labels[idx[r * kmax + j] as usize] as usize;
                    if c < num_classes {
                        votes[c] += (vals[r * kmax + j] as f64 / t).exp();
                    }
                }
                let mut order: Vec<usize> = (0..num_classes).collect();
                order.sort_by(|a, b| votes[*b].total_cmp(&votes[*a]).then(a.cmp(b)));
                if order[0] == truth {
                    hits[s].0 += 1;
                }
                if order.iter().take(5).any(|&c| c == truth) {
                    hits[s].1 += 1;
                }
            }
        }
    }
    let n = test.len().max(1) as f64;
    Ok(settings
        .iter()
        .zip(hits)
        .map(|(&(k, t), (h1, h5))| KnnResult {
            k,
            temperature: t,
            top1: 100.0 * h1 as f64 / n,
            top5: 100.0 * h5 as f64 / n,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feats(rows: &[[f32; 2]], labels: &[u32]) -> Features {
        Features {
            dim: 2,
            data: rows.iter().flatten().copied().collect(),
            labels: labels.iter().map(|&l| Some(l)).collect(),
            indices: (0..labels.len()).collect(),
            skipped: 0,
        }
    }

    #[test]
    fn separable_clusters_are_classified_and_shuffled_labels_are_not() {
        let train = feats(
            &[[1.0, 0.1], [1.0, -0.1], [0.1, 1.0], [-0.1, 1.0]],
            &[0, 0, 1, 1],
        );
        let test = feats(&[[1.0, 0.0], [0.0, 1.0]], &[0, 1]);
        let r = knn_classify(&train, &test, &[(2, 0.1)], 2, &Device::flex()).unwrap();
        assert_eq!(r[0].top1, 100.0);
        let wrong = feats(&[[1.0, 0.0], [0.0, 1.0]], &[1, 0]);
        let r = knn_classify(&train, &wrong, &[(2, 0.1)], 2, &Device::flex()).unwrap();
        assert_eq!(r[0].top1, 0.0);
        assert!(knn_classify(&train, &test, &[(9, 0.1)], 2, &Device::flex()).is_err());
    }
}
