//! Optimiser configuration.

use serde::{Deserialize, Serialize};

/// Which update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    /// SGD with momentum (PyTorch semantics, dampening configurable, default 0).
    Sgd,
    /// SGD wrapped in layer-wise adaptive rate scaling (apex LARC / solo-learn LARS).
    #[default]
    Lars,
    /// Adam with decoupled weight decay.
    Adamw,
}

/// LARS/LARC settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LarsConfig {
    /// Trust coefficient η.
    pub trust_coefficient: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// LARC "clip" mode: local lr = min(local/lr, 1).
    pub clip: bool,
    /// Leave 1-D parameters (biases, norm scales) unadapted and undecayed.
    pub exclude_bias_and_norm: bool,
}

impl Default for LarsConfig {
    /// SwAV's LARC: trust 0.001, no clipping, every parameter adapted.
    fn default() -> Self {
        Self {
            trust_coefficient: 0.001,
            eps: 1e-8,
            clip: false,
            exclude_bias_and_norm: false,
        }
    }
}

/// Overrides for the parameters whose path starts with `prefix` (first match wins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Parameter path prefix, e.g. "prototypes" or "projector".
    pub prefix: String,
    /// Multiplies the scheduled learning rate.
    #[serde(default)]
    pub lr_scale: Option<f64>,
    /// Replaces the weight decay.
    #[serde(default)]
    pub weight_decay: Option<f64>,
    /// Replaces the momentum.
    #[serde(default)]
    pub momentum: Option<f64>,
}

/// Optimiser settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Update rule.
    pub kind: OptimKind,
    /// Base learning rate (the schedule scales it).
    pub lr: f64,
    /// Momentum (SGD/LARS).
    pub momentum: f64,
    /// Momentum dampening (PyTorch default 0).
    pub dampening: f64,
    /// Nesterov momentum (SGD/LARS).
    pub nesterov: bool,
    /// Weight decay (L2 for SGD/LARS, decoupled for AdamW).
    pub weight_decay: f64,
    /// LARS settings.
    pub lars: LarsConfig,
    /// Adam β1, β2.
    pub betas: [f64; 2],
    /// Adam ε.
    pub adam_eps: f64,
    /// Parameter groups with their own settings.
    pub groups: Vec<GroupConfig>,
}

impl Default for OptimConfig {
    /// SwAV's batch-256 recipe: LARC over SGD, lr 0.6, momentum 0.9, wd 1e-6.
    fn default() -> Self {
        Self {
            kind: OptimKind::Lars,
            lr: 0.6,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 1e-6,
            lars: LarsConfig::default(),
            betas: [0.9, 0.999],
            adam_eps: 1e-8,
            groups: Vec::new(),
        }
    }
}

impl OptimConfig {
    /// Checks ranges; errors name the field.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            ("optim.lr", self.lr, self.lr > 0.0 && self.lr < 1e3),
            (
                "optim.momentum",
                self.momentum,
                (0.0..1.0).contains(&self.momentum),
            ),
            (
                "optim.dampening",
                self.dampening,
                (0.0..=1.0).contains(&self.dampening),
            ),
            (
                "optim.weight_decay",
                self.weight_decay,
                (0.0..1.0).contains(&self.weight_decay),
            ),
            (
                "optim.betas[0]",
                self.betas[0],
                (0.0..1.0).contains(&self.betas[0]),
            ),
            (
                "optim.betas[1]",
                self.betas[1],
                (0.0..1.0).contains(&self.betas[1]),
            ),
        ];
        for (name, v, ok) in checks {
            if !ok || !v.is_finite() {
                return Err(format!("{name} = {v} is out of range"));
            }
        }
        if self.nesterov && (self.momentum == 0.0 || self.dampening != 0.0) {
            return Err("optim.nesterov needs momentum > 0 and dampening 0".into());
        }
        Ok(())
    }
}
