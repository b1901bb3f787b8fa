//! Per-epoch statistics of cluster assignments, and the collapse watch.

use serde::Serialize;

/// How the samples of one epoch spread over the clusters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterStats {
    /// Number of clusters.
    pub clusters: usize,
    /// Clusters that received at least one sample.
    pub used: usize,
    /// Smallest cluster size.
    pub min: usize,
    /// Largest cluster size.
    pub max: usize,
    /// Entropy of the assignment histogram, in nats (ln K when perfectly balanced).
    pub entropy: f64,
}

/// Accumulates assignments over an epoch.
#[derive(Debug, Clone)]
pub struct ClusterCounter {
    counts: Vec<usize>,
}

impl ClusterCounter {
    /// A counter for `k` clusters.
    pub fn new(k: usize) -> Self {
        Self { counts: vec![0; k] }
    }

    /// Adds assignments (ignores out-of-range ids).
    pub fn add(&mut self, assignments: &[usize]) {
        for &a in assignments {
            if let Some(c) = self.counts.get_mut(a) {
                *c += 1;
            }
        }
    }

    /// Summarises and resets.
    pub fn take(&mut self) -> ClusterStats {
        let total: usize = self.counts.iter().sum();
        let entropy = if total == 0 {
            0.0
        } else {
            self.counts
                .iter()
                .filter(|&&c| c > 0)
                .map(|&c| {
                    let p = c as f64 / total as f64;
                    -p * p.ln()
                })
                .sum()
        };
        let s = ClusterStats {
            clusters: self.counts.len(),
            used: self.counts.iter().filter(|&&c| c > 0).count(),
            min: self.counts.iter().copied().min().unwrap_or(0),
            max: self.counts.iter().copied().max().unwrap_or(0),
            entropy,
        };
        self.counts.iter_mut().for_each(|c| *c = 0);
        s
    }
}

/// Watches for SwAV's known collapse: the loss sitting at ln(K) for many iterations.
#[derive(Debug, Clone)]
pub struct CollapseWatch {
    ln_k: f64,
    patience: u64,
    streak: u64,
    warned: bool,
}

impl CollapseWatch {
    /// Warns after `patience` consecutive iterations within 1% of ln(k).
    pub fn new(k: usize, patience: u64) -> Self {
        Self {
            ln_k: (k as f64).ln(),
            patience,
            streak: 0,
            warned: false,
        }
    }

    /// Feeds one loss; returns a warning message the first time the streak reaches patience.
    pub fn observe(&mut self, loss: f64) -> Option<String> {
        if (loss - self.ln_k).abs() <= 0.01 * self.ln_k {
            self.streak += 1;
        } else {
            self.streak = 0;
            self.warned = false;
        }
        if self.streak >= self.patience && !self.warned {
            self.warned = true;
            return Some(format!(
                "WARNING: the loss has stayed at ln(K) = {:.4} for {} iterations: the prototypes have probably collapsed (every sample gets the same uniform code). Usual causes: queue started too early, learning rate too high, prototypes not frozen long enough.",
                self.ln_k, self.streak
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_collapse_watch() {
        let mut c = ClusterCounter::new(4);
        c.add(&[0, 0, 1, 1, 9]);
        let s = c.take();
        assert_eq!((s.used, s.min, s.max), (2, 0, 2));
        assert!((s.entropy - 2f64.ln()).abs() < 1e-12);
        let mut w = CollapseWatch::new(100, 3);
        let lnk = 100f64.ln();
        assert!(w.observe(lnk).is_none() && w.observe(lnk).is_none());
        assert!(w.observe(lnk + 0.001).is_some());
        assert!(w.observe(lnk).is_none());
        assert!(w.observe(1.0).is_none());
    }
}
