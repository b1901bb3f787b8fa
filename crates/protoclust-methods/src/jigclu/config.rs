//! JigClu's hyper-parameters, with the paper's defaults (official `main.py`).

use crate::method::MethodError;
use protoclust_data::views::JigsawPatches;
use protoclust_nn::backbone::ResNetConfig;
use serde::{Deserialize, Serialize};

/// Everything JigClu needs besides the optimiser and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JigCluConfig {
    /// Backbone architecture.
    pub backbone: ResNetConfig,
    /// Output width of the clustering MLP (C → C → dim, ReLU, no BatchNorm).
    pub dim: usize,
    /// Temperature of the supervised-contrastive (clustering) loss.
    pub temperature: f64,
    /// The loss is scaled by temperature / base_temperature (official SupCluLoss).
    pub base_temperature: f64,
    /// Weight α of the clustering loss.
    pub clu_weight: f64,
    /// Weight β of the location loss.
    pub loc_weight: f64,
    /// Side of the map the decoupling module resamples to before pooling to m × m
    /// (0: the smallest multiple of m not below the backbone map's side — 8 for a 7 × 7 map
    /// and m = 2, the official constant).
    pub upsample: usize,
    /// The patches cut from each image (their grid m is the montage's).
    pub views: JigsawPatches,
}

impl Default for JigCluConfig {
    /// The paper's ImageNet recipe on a ResNet-50 (README: `--loss-t 0.3`).
    fn default() -> Self {
        Self {
            backbone: ResNetConfig {
                depth: 50,
                ..Default::default()
            },
            dim: 128,
            temperature: 0.3,
            base_temperature: 0.07,
            clu_weight: 1.0,
            loc_weight: 1.0,
            upsample: 0,
            views: JigsawPatches::default(),
        }
    }
}

impl JigCluConfig {
    /// Grid side m.
    pub fn grid(&self) -> usize {
        self.views.grid
    }

    /// Checks ranges against the source images' side when known.
    pub fn validate(&self, image_side: Option<usize>) -> Result<(), MethodError> {
        let bad = |field: &str, reason: String| MethodError::Config {
            field: format!("jigclu.{field}"),
            reason,
        };
        self.backbone
            .validate()
            .map_err(|e| bad("backbone", e.to_string()))?;
        self.views
            .validate("jigclu.views", image_side)
            .map_err(|e| bad("views", e.to_string()))?;
        if self.dim == 0 {
            return Err(bad("dim", "must be at least 1".into()));
        }
        if !(self.temperature > 0.0 && self.base_temperature > 0.0) {
            return Err(bad(
                "temperature",
                "temperature and base_temperature must be positive".into(),
            ));
        }
        if self.clu_weight < 0.0
            || self.loc_weight < 0.0
            || self.clu_weight + self.loc_weight == 0.0
        {
            return Err(bad(
                "clu_weight",
                "loss weights must be non-negative and not both 0".into(),
            ));
        }
        if self.upsample != 0 && self.upsample < self.grid() {
            return Err(bad(
                "upsample",
                format!("{} is smaller than the grid {}", self.upsample, self.grid()),
            ));
        }
        Ok(())
    }
}
