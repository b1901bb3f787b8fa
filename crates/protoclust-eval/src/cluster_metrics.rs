//! Agreement between a clustering and reference labels: NMI and adjusted Rand index.

use serde::Serialize;
use std::collections::HashMap;

/// NMI and ARI of one clustering against reference labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClusterAgreement {
    /// Normalised mutual information (arithmetic-mean normalisation, as scikit-learn).
    pub nmi: f64,
    /// Adjusted Rand index.
    pub ari: f64,
    /// Samples compared.
    pub samples: usize,
}

/// Joint counts of (a-cluster, b-cluster) pairs and the marginal counts of each side.
struct Contingency {
    cells: HashMap<(usize, usize), f64>,
    rows: Vec<f64>,
    cols: Vec<f64>,
}

fn contingency(a: &[usize], b: &[usize]) -> Contingency {
    let mut ai: HashMap<usize, usize> = HashMap::new();
    let mut bi: HashMap<usize, usize> = HashMap::new();
    let mut cells = HashMap::new();
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for (&x, &y) in a.iter().zip(b) {
        let n = ai.len();
        let i = *ai.entry(x).or_insert(n);
        let n = bi.len();
        let j = *bi.entry(y).or_insert(n);
        if i == ra.len() {
            ra.push(0.0);
        }
        if j == rb.len() {
            rb.push(0.0);
        }
        ra[i] += 1.0;
        rb[j] += 1.0;
        *cells.entry((i, j)).or_insert(0.0) += 1.0;
    }
    Contingency {
        cells,
        rows: ra,
        cols: rb,
    }
}

fn entropy(counts: &[f64], n: f64) -> f64 {
    counts
        .iter()
        .filter(|&&c| c > 0.0)
        .map(|&c| -(c / n) * (c / n).ln())
        .sum()
}

/// NMI and ARI of `pred` against `truth` (equal lengths; label values are arbitrary ids).
pub fn cluster_agreement(pred: &[usize], truth: &[usize]) -> ClusterAgreement {
    let n = pred.len().min(truth.len());
    let (pred, truth) = (&pred[..n], &truth[..n]);
    if n == 0 {
        return ClusterAgreement {
            nmi: 0.0,
            ari: 0.0,
            samples: 0,
        };
    }
    let Contingency {
        cells,
        rows: ra,
        cols: rb,
    } = contingency(pred, truth);
    let nf = n as f64;
    let mi: f64 = cells
        .iter()
        .map(|(&(i, j), &c)| (c / nf) * ((c * nf) / (ra[i] * rb[j])).ln())
        .sum();
    let (ha, hb) = (entropy(&ra, nf), entropy(&rb, nf));
    let nmi = if ha == 0.0 && hb == 0.0 {
        1.0
    } else if ha == 0.0 || hb == 0.0 {
        0.0
    } else {
        (mi / ((ha + hb) / 2.0)).clamp(0.0, 1.0)
    };
    let c2 = |x: f64| x * (x - 1.0) / 2.0;
    let sum_cells: f64 = cells.values().map(|&c| c2(c)).sum();
    let sa: f64 = ra.iter().map(|&c| c2(c)).sum();
    let sb: f64 = rb.iter().map(|&c| c2(c)).sum();
    let expected = sa * sb / c2(nf).max(1.0);
    let max = (sa + sb) / 2.0;
    let ari = if (max - expected).abs() < 1e-12 {
        1.0
    } else {
        (sum_cells - expected) / (max - expected)
    };
    ClusterAgreement {
        nmi,
        ari,
        samples: n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_partitions_score_one_whatever_the_ids() {
        let a = [0, 0, 1, 1, 2, 2];
        let b = [5, 5, 3, 3, 9, 9];
        let r = cluster_agreement(&a, &b);
        assert!((r.nmi - 1.0).abs() < 1e-12 && (r.ari - 1.0).abs() < 1e-12);
    }

    #[test]
    fn matches_scikit_learn_on_a_small_case() {
        // scikit-learn 1.9.1: normalized_mutual_info_score / adjusted_rand_score of these labels.
        let a = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2];
        let b = [0, 0, 1, 1, 1, 2, 2, 2, 0, 2];
        let r = cluster_agreement(&a, &b);
        assert!((r.nmi - 0.442_701_283_346_05).abs() < 1e-9, "nmi {}", r.nmi);
        assert!(
            (r.ari - 0.204_545_454_545_454_56).abs() < 1e-9,
            "ari {}",
            r.ari
        );
    }

    #[test]
    fn independent_labels_score_near_zero() {
        let a: Vec<usize> = (0..1000).map(|i| i % 7).collect();
        let b: Vec<usize> = (0..1000).map(|i| (i / 7) % 5).collect();
        let r = cluster_agreement(&a, &b);
        assert!(r.nmi < 0.02 && r.ari.abs() < 0.02, "{r:?}");
    }
}
