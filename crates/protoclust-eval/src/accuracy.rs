//! Top-1/top-5 accuracy of classifier scores.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Hits of a set of predictions, turned into percentages by [`TopK::percent`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TopK {
    /// Samples whose top-scoring class is the label.
    pub top1: usize,
    /// Samples whose label is among the 5 top-scoring classes.
    pub top5: usize,
    /// Samples seen.
    pub total: usize,
}

/// Top-1/top-5 accuracy in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Top-1 accuracy in percent.
    pub top1: f64,
    /// Top-5 accuracy in percent.
    pub top5: f64,
}

impl TopK {
    /// Adds the hits of `scores` (N × C) against `labels` (N).
    pub fn add(&mut self, scores: Tensor<2>, labels: &[i64]) {
        let [n, c] = scores.dims();
        let k = c.min(5);
        let (_, idx) = protoclust_nn::ops::top_k_rows(scores, k);
        let idx: Vec<i64> = idx
            .into_data()
            .convert::<i64>()
            .try_to_vec()
            .unwrap_or_default();
        for (r, &t) in labels.iter().enumerate().take(n) {
            let row = &idx[r * k..(r + 1) * k];
            self.top1 += (row[0] == t) as usize;
            self.top5 += row.contains(&t) as usize;
        }
        self.total += n;
    }

    /// The hits as percentages of the samples seen.
    pub fn percent(&self) -> Accuracy {
        let n = self.total.max(1) as f64;
        Accuracy {
            top1: 100.0 * self.top1 as f64 / n,
            top5: 100.0 * self.top5 as f64 / n,
        }
    }
}
