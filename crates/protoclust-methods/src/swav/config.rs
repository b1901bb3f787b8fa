//! SwAV's hyper-parameters, with the paper's defaults.

use crate::method::MethodError;
use protoclust_data::views::MultiCrop;
use protoclust_nn::backbone::ResNetConfig;
use protoclust_nn::heads::MlpConfig;
use protoclust_nn::ops::SinkhornMode;
use serde::{Deserialize, Serialize};

/// Upper bound on the number of prototypes accepted by validation.
pub const MAX_PROTOTYPES: usize = 100_000;

/// Everything SwAV needs besides the optimiser and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwavConfig {
    /// Backbone architecture.
    pub backbone: ResNetConfig,
    /// Projection head (output = embedding dimension).
    pub projector: MlpConfig,
    /// Number of prototypes K.
    pub prototypes: usize,
    /// A learnt per-prototype score offset (lightly's `SwaVPrototypes`; the paper has none).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub prototype_bias: bool,
    /// Softmax temperature τ.
    pub temperature: f64,
    /// Sinkhorn ε.
    pub epsilon: f64,
    /// Sinkhorn iterations.
    pub sinkhorn_iterations: usize,
    /// Sinkhorn arithmetic: "stable" (log domain, default) or "official".
    pub sinkhorn_mode: SinkhornMode,
    /// Crops whose codes are prediction targets.
    pub crops_for_assign: Vec<usize>,
    /// Queue length per assignment crop (0: no queue); rounded down to a multiple of the batch.
    pub queue_length: usize,
    /// Epoch from which the queue is allocated.
    pub queue_start_epoch: u64,
    /// Iterations during which the prototypes receive no update.
    pub freeze_prototypes_iterations: u64,
    /// Keep the prototypes at their random initialisation for the whole run (the SwAV paper's
    /// "fixed random prototypes" ablation; robust on tiny runs, where learnt prototypes can
    /// collapse onto each other).
    pub fixed_prototypes: bool,
    /// The multi-crop views.
    pub views: MultiCrop,
}

impl Default for SwavConfig {
    /// The paper's ImageNet recipe (ResNet-50, 3000 prototypes, 2×224 + 6×96).
    fn default() -> Self {
        Self {
            backbone: ResNetConfig {
                depth: 50,
                ..Default::default()
            },
            projector: MlpConfig {
                hidden: vec![2048],
                out_dim: 128,
                batch_norm: true,
            },
            prototypes: 3000,
            prototype_bias: false,
            temperature: 0.1,
            epsilon: 0.05,
            sinkhorn_iterations: 3,
            sinkhorn_mode: SinkhornMode::Stable,
            crops_for_assign: vec![0, 1],
            queue_length: 0,
            queue_start_epoch: 15,
            freeze_prototypes_iterations: 5005,
            fixed_prototypes: false,
            views: MultiCrop::default(),
        }
    }
}

/// Refuses an empty list of assignment crops or one naming a crop beyond the `total`.
pub(crate) fn check_crops_for_assign(crops: &[usize], total: usize) -> Result<(), String> {
    if crops.is_empty() {
        return Err("at least one crop is needed".into());
    }
    match crops.iter().find(|&&c| c >= total) {
        Some(c) => Err(format!(
            "crop {c} does not exist ({total} crops configured)"
        )),
        None => Ok(()),
    }
}

fn bad(field: &str, reason: String) -> MethodError {
    MethodError::Config {
        field: format!("swav.{field}"),
        reason,
    }
}

impl SwavConfig {
    /// Legal but risky settings, each as a sentence for the user.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.prototypes <= self.projector.out_dim {
            w.push(format!(
                "swav.prototypes ({}) <= swav.projector.out_dim ({}): embeddings can collapse into the prototypes' null space (all scores 0, loss stuck at ln K); use more prototypes than dimensions",
                self.prototypes, self.projector.out_dim
            ));
        }
        w
    }

    /// Checks ranges and cross-field consistency.
    pub fn validate(&self, image_side: Option<usize>) -> Result<(), MethodError> {
        self.backbone
            .validate()
            .map_err(|e| bad("backbone", e.to_string()))?;
        if self.prototypes < 2 || self.prototypes > MAX_PROTOTYPES {
            return Err(bad(
                "prototypes",
                format!("{} is outside 2..={MAX_PROTOTYPES}", self.prototypes),
            ));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(bad(
                "temperature",
                format!("{} must be > 0", self.temperature),
            ));
        }
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            return Err(bad("epsilon", format!("{} must be > 0", self.epsilon)));
        }
        if self.sinkhorn_iterations == 0 || self.sinkhorn_iterations > 1000 {
            return Err(bad(
                "sinkhorn_iterations",
                format!("{} is outside 1..=1000", self.sinkhorn_iterations),
            ));
        }
        if self.projector.out_dim == 0 {
            return Err(bad("projector.out_dim", "must be at least 1".into()));
        }
        let total = self.views.total();
        if total < 2 {
            return Err(bad(
                "views.crops",
                "at least two crops in all are needed".into(),
            ));
        }
        check_crops_for_assign(&self.crops_for_assign, total)
            .map_err(|r| bad("crops_for_assign", r))?;
        self.views
            .validate("swav.views", image_side)
            .map_err(|e| MethodError::Config {
                field: "swav.views".into(),
                reason: e.to_string(),
            })
    }
}
