//! DeepCluster-v2's hyper-parameters, with the official defaults (`main_deepclusterv2.py`).

use crate::method::MethodError;
use crate::swav::config::{check_crops_for_assign, MAX_PROTOTYPES};
use protoclust_data::views::MultiCrop;
use protoclust_nn::backbone::ResNetConfig;
use protoclust_nn::heads::MlpConfig;
use serde::{Deserialize, Serialize};

/// Everything DeepCluster-v2 needs besides the optimiser and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeepClusterV2Config {
    /// Backbone architecture.
    pub backbone: ResNetConfig,
    /// Projection head (output = embedding dimension); its output is L2-normalised.
    pub projector: MlpConfig,
    /// Clusters of each head (one k-means and one prototype layer per entry).
    pub prototypes: Vec<usize>,
    /// Softmax temperature of the scores.
    pub temperature: f64,
    /// Crops kept in the memory bank; head h clusters the bank of crop `crops_for_assign[h %
    /// len]`.
    pub crops_for_assign: Vec<usize>,
    /// k-means update rounds per head and epoch (11 assignment passes).
    pub kmeans_iterations: usize,
    /// Iterations during which the prototypes get no gradient (the official default 1e10:
    /// never; they are the k-means centroids refreshed every epoch).
    pub freeze_prototypes_iterations: u64,
    /// The multi-crop views.
    pub views: MultiCrop,
}

impl Default for DeepClusterV2Config {
    /// The released ImageNet recipe's model (ResNet-50, 2048 → 128, 3 × 3000 prototypes).
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
            prototypes: vec![3000; 3],
            temperature: 0.1,
            crops_for_assign: vec![0, 1],
            kmeans_iterations: 10,
            freeze_prototypes_iterations: 10_000_000_000,
            views: MultiCrop::default(),
        }
    }
}

fn bad(field: &str, reason: String) -> MethodError {
    MethodError::Config {
        field: format!("deepclusterv2.{field}"),
        reason,
    }
}

impl DeepClusterV2Config {
    /// Checks ranges and cross-field consistency.
    pub fn validate(&self, image_side: Option<usize>) -> Result<(), MethodError> {
        self.backbone
            .validate()
            .map_err(|e| bad("backbone", e.to_string()))?;
        if self.prototypes.is_empty() {
            return Err(bad("prototypes", "at least one head is needed".into()));
        }
        if let Some(k) = self
            .prototypes
            .iter()
            .find(|&&k| !(2..=MAX_PROTOTYPES).contains(&k))
        {
            return Err(bad(
                "prototypes",
                format!("{k} is outside 2..={MAX_PROTOTYPES}"),
            ));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(bad(
                "temperature",
                format!("{} must be > 0", self.temperature),
            ));
        }
        if self.kmeans_iterations == 0 || self.kmeans_iterations > 1000 {
            return Err(bad(
                "kmeans_iterations",
                format!("{} is outside 1..=1000", self.kmeans_iterations),
            ));
        }
        if self.projector.out_dim == 0 {
            return Err(bad("projector.out_dim", "must be at least 1".into()));
        }
        let total = self.views.total();
        check_crops_for_assign(&self.crops_for_assign, total)
            .map_err(|r| bad("crops_for_assign", r))?;
        self.views
            .validate("deepclusterv2.views", image_side)
            .map_err(|e| bad("views", e.to_string()))
    }
}
