//! The evaluation suite's record of one model: kNN sweeps, clustering metrics, linear probe and
//! semi-supervised numbers, serialisable and printable as Markdown tables.

use crate::cluster_metrics::ClusterAgreement;
use crate::knn::KnnResult;
use crate::linear::LinearProbeResult;
use crate::semisup::SemiSupResult;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// A kNN sweep on one kind of feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnTable {
    /// "backbone" or "embedding" (the method head's output).
    pub features: String,
    /// Feature dimension.
    pub dim: usize,
    /// One entry per (k, T).
    pub results: Vec<KnnResult>,
}

/// How well one set of cluster assignments agrees with the true labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusteringRow {
    /// Where the assignments come from.
    pub assignments: String,
    /// Clusters available.
    pub clusters: usize,
    /// Clusters with at least one member.
    pub used: usize,
    /// Split the images come from.
    pub split: String,
    /// NMI, ARI and Hungarian accuracy.
    pub agreement: ClusterAgreement,
}

/// Everything the suite measured, with what it measured it on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteResult {
    /// Model file.
    pub model: String,
    /// Method of the checkpoint (None for an exported backbone).
    pub method: Option<String>,
    /// Training iterations of the checkpoint.
    pub iteration: Option<u64>,
    /// Size and modification time of the model file when it was evaluated (tells a rewritten
    /// checkpoint from the one evaluated).
    #[serde(default)]
    pub model_stamp: String,
    /// Training and test splits.
    pub splits: [String; 2],
    /// Seed of every random choice of the suite.
    pub seed: u64,
    /// kNN sweeps.
    pub knn: Vec<KnnTable>,
    /// Clustering metrics.
    pub clustering: Vec<ClusteringRow>,
    /// Linear probe (None when skipped).
    pub linear: Option<LinearProbeResult>,
    /// Semi-supervised fine-tuning (None when skipped).
    pub semisup: Option<SemiSupResult>,
}

impl SuiteResult {
    /// The numbers as Markdown tables.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        for t in &self.knn {
            let _ = writeln!(
                s,
                "kNN top-1 / top-5 (%), {} features ({}-d)\n",
                t.features, t.dim
            );
            let ts = t.temperatures();
            let _ = writeln!(
                s,
                "| k | {} |",
                ts.iter()
                    .map(|t| format!("T={t}"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(s, "|---|{}", "---|".repeat(ts.len()));
            for k in t.ks() {
                let cells: Vec<String> = ts
                    .iter()
                    .map(|&temp| match t.get(k, temp) {
                        Some(r) => format!("{:.2} / {:.2}", r.top1, r.top5),
                        None => "–".into(),
                    })
                    .collect();
                let _ = writeln!(s, "| {k} | {} |", cells.join(" | "));
            }
            let _ = writeln!(s);
        }
        if !self.clustering.is_empty() {
            let _ = writeln!(
                s,
                "| assignments | split | clusters (used) | NMI | ARI | Hungarian acc |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|");
            for r in &self.clustering {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} ({}) | {:.4} | {:.4} | {:.2}% |",
                    r.assignments,
                    r.split,
                    r.clusters,
                    r.used,
                    r.agreement.nmi,
                    r.agreement.ari,
                    r.agreement.accuracy
                );
            }
            let _ = writeln!(s);
        }
        if let Some(l) = &self.linear {
            let _ = writeln!(
                s,
                "Linear probe ({} epochs, batch {}, SGD momentum 0.9, cosine, no weight decay; lr chosen on a {}% validation split): **top-1 {:.2}%, top-5 {:.2}%** at lr {}\n",
                l.config.epochs, l.config.batch_size, l.config.val_fraction * 100.0, l.test.top1, l.test.top5, l.lr
            );
            let _ = writeln!(
                s,
                "| lr | val top-1 | test top-1 | test top-5 |\n|---|---|---|---|"
            );
            for r in &l.runs {
                let _ = writeln!(
                    s,
                    "| {} | {:.2} | {:.2} | {:.2} |",
                    r.lr, r.val_top1, r.test.top1, r.test.top5
                );
            }
            let _ = writeln!(s);
        }
        if let Some(ss) = &self.semisup {
            let c = &ss.config;
            let _ = writeln!(
                s,
                "Semi-supervised fine-tuning ({} epochs, batch {}, lr backbone {} / head {}, cosine)\n",
                c.epochs, c.batch_size, c.lr_backbone, c.lr_head
            );
            let _ = writeln!(s, "| labels | images | top-1 | top-5 |\n|---|---|---|---|");
            for r in &ss.runs {
                let _ = writeln!(
                    s,
                    "| {}% | {} | {:.2} | {:.2} |",
                    r.percent, r.labelled, r.test.top1, r.test.top5
                );
            }
        }
        s
    }
}

impl KnnTable {
    /// Neighbour counts present, ascending.
    pub fn ks(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.results.iter().map(|r| r.k).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
    /// Temperatures present, ascending.
    pub fn temperatures(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.results.iter().map(|r| r.temperature).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    }
    /// The result for (k, T).
    pub fn get(&self, k: usize, t: f64) -> Option<&KnnResult> {
        self.results.iter().find(|r| r.k == k && r.temperature == t)
    }
    /// The best top-1 over the sweep.
    pub fn best(&self) -> Option<&KnnResult> {
        self.results.iter().max_by(|a, b| a.top1.total_cmp(&b.top1))
    }
}
