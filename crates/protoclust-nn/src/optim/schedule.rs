//! Per-iteration learning-rate schedules (burn's cosine scheduler rejects lr > 1; SwAV uses 4.8).

use serde::{Deserialize, Serialize};

/// Shape of the schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Cosine from the base lr to `final_lr`.
    #[default]
    Cosine,
    /// Multiply by `gamma` at each milestone epoch.
    Step,
    /// Constant base lr.
    Constant,
}

/// Schedule settings (warmup is linear from `warmup_start_lr` to the base lr).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Shape after warmup.
    pub kind: ScheduleKind,
    /// Warmup length in epochs (may be fractional).
    pub warmup_epochs: f64,
    /// Learning rate at the first warmup iteration.
    pub warmup_start_lr: f64,
    /// Final learning rate of the cosine.
    pub final_lr: f64,
    /// Epochs at which the step schedule decays.
    pub milestones: Vec<u64>,
    /// Decay factor of the step schedule.
    pub gamma: f64,
    /// Hold the cosine constant within an epoch (MoCo/JigClu's `adjust_learning_rate`).
    pub per_epoch: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Cosine,
            warmup_epochs: 0.0,
            warmup_start_lr: 0.0,
            final_lr: 0.0,
            milestones: Vec::new(),
            gamma: 0.1,
            per_epoch: false,
        }
    }
}

/// A schedule resolved for a run length.
#[derive(Debug, Clone)]
pub struct Schedule {
    config: ScheduleConfig,
    base_lr: f64,
    iters_per_epoch: u64,
    total: u64,
}

impl Schedule {
    /// The schedule of `epochs` epochs of `iters_per_epoch` iterations at base `base_lr`.
    pub fn new(config: ScheduleConfig, base_lr: f64, epochs: u64, iters_per_epoch: u64) -> Self {
        Self {
            config,
            base_lr,
            iters_per_epoch: iters_per_epoch.max(1),
            total: epochs * iters_per_epoch.max(1),
        }
    }

    /// Learning rate at global iteration `it` (SwAV's `np.linspace` warmup then cosine).
    pub fn lr(&self, it: u64) -> f64 {
        let c = &self.config;
        let warmup = (c.warmup_epochs * self.iters_per_epoch as f64).round() as u64;
        if it < warmup {
            // linspace(start, base, warmup)[it]
            let t = if warmup > 1 {
                it as f64 / (warmup - 1) as f64
            } else {
                1.0
            };
            return c.warmup_start_lr + (self.base_lr - c.warmup_start_lr) * t;
        }
        match c.kind {
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::Cosine => {
                let span = self.total.saturating_sub(warmup).max(1) as f64;
                let at = if c.per_epoch {
                    (it / self.iters_per_epoch * self.iters_per_epoch).max(warmup)
                } else {
                    it
                };
                let t = (at - warmup) as f64;
                c.final_lr
                    + 0.5
                        * (self.base_lr - c.final_lr)
                        * (1.0 + (std::f64::consts::PI * t / span).cos())
            }
            ScheduleKind::Step => {
                let epoch = it / self.iters_per_epoch;
                let passed = c.milestones.iter().filter(|&&m| epoch >= m).count();
                self.base_lr * c.gamma.powi(passed as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_hits_both_ends() {
        let s = Schedule::new(
            ScheduleConfig {
                warmup_epochs: 1.0,
                warmup_start_lr: 0.3,
                final_lr: 0.0048,
                ..Default::default()
            },
            4.8,
            10,
            100,
        );
        assert!((s.lr(0) - 0.3).abs() < 1e-12);
        assert!((s.lr(99) - 4.8).abs() < 1e-12);
        assert!((s.lr(100) - 4.8).abs() < 1e-12);
        assert!(s.lr(999) > 0.0048 && s.lr(999) < 0.005);
        let step = Schedule::new(
            ScheduleConfig {
                kind: ScheduleKind::Step,
                milestones: vec![2],
                gamma: 0.4,
                ..Default::default()
            },
            0.06,
            4,
            10,
        );
        assert!((step.lr(19) - 0.06).abs() < 1e-12 && (step.lr(20) - 0.024).abs() < 1e-12);
        // JigClu/MoCo: lr·0.5·(1 + cos(π·epoch/epochs)), constant within an epoch.
        let epochwise = Schedule::new(
            ScheduleConfig {
                per_epoch: true,
                ..Default::default()
            },
            0.03,
            4,
            10,
        );
        assert!((epochwise.lr(0) - 0.03).abs() < 1e-12 && (epochwise.lr(9) - 0.03).abs() < 1e-12);
        let e1 = 0.03 * 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos());
        assert!((epochwise.lr(10) - e1).abs() < 1e-12 && (epochwise.lr(19) - e1).abs() < 1e-12);
    }
}
