//! Agreement between a clustering and reference labels: NMI, adjusted Rand index and
//! Hungarian-matched accuracy.

use pathfinding::prelude::{kuhn_munkres, Matrix};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// NMI, ARI and Hungarian accuracy of one clustering against reference labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusterAgreement {
    /// Normalised mutual information (arithmetic-mean normalisation, as scikit-learn).
    pub nmi: f64,
    /// Adjusted Rand index.
    pub ari: f64,
    /// Accuracy in percent after the one-to-one cluster → class matching that maximises it
    /// (clusters left unmatched when there are more clusters than classes count as wrong).
    pub accuracy: f64,
    /// Samples compared.
    pub samples: usize,
}

/// Joint counts of (a-cluster, b-cluster) pairs and the marginal counts of each side.
struct Contingency {
    cells: BTreeMap<(usize, usize), f64>,
    rows: Vec<f64>,
    cols: Vec<f64>,
}

fn contingency(a: &[usize], b: &[usize]) -> Contingency {
    let mut ai: HashMap<usize, usize> = HashMap::new();
    let mut bi: HashMap<usize, usize> = HashMap::new();
    let mut cells = BTreeMap::new();
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
            accuracy: 0.0,
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
    let accuracy = 100.0 * hungarian_matches(&cells, ra.len(), rb.len()) / nf;
    ClusterAgreement {
        nmi,
        ari,
        accuracy,
        samples: n,
    }
}

/// Samples on the diagonal of the best one-to-one matching of a rows × cols contingency table.
fn hungarian_matches(cells: &BTreeMap<(usize, usize), f64>, rows: usize, cols: usize) -> f64 {
    // kuhn_munkres needs no more rows than columns: put the smaller side on the rows.
    let transpose = rows > cols;
    let (r, c) = if transpose {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let mut weights = Matrix::new(r, c, 0i64);
    for (&(i, j), &v) in cells {
        let at = if transpose { (j, i) } else { (i, j) };
        weights[at] = v as i64;
    }
    let (total, _) = kuhn_munkres(&weights);
    total as f64
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
        assert_eq!(r.accuracy, 100.0);
    }

    #[test]
    fn hungarian_accuracy_matches_one_cluster_per_class() {
        // Clusters 0 and 1 are both mostly class 7: only one of them may take it.
        let pred = [0, 0, 0, 1, 1, 2, 2, 2];
        let truth = [7, 7, 7, 7, 8, 9, 9, 8];
        let r = cluster_agreement(&pred, &truth);
        // 0→7 (3), 1→8 (1), 2→9 (2) = 6 of 8; a majority vote would give 7 of 8.
        assert!((r.accuracy - 75.0).abs() < 1e-12, "{r:?}");
        // More clusters than classes: the extra cluster's samples count as wrong.
        let r = cluster_agreement(&[0, 1, 2, 3], &[0, 0, 1, 1]);
        assert!((r.accuracy - 50.0).abs() < 1e-12, "{r:?}");
        // Fewer clusters than classes.
        let r = cluster_agreement(&[0, 0, 0, 0], &[0, 1, 2, 2]);
        assert!((r.accuracy - 50.0).abs() < 1e-12, "{r:?}");
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
