//! SlotCon's hyper-parameters, with the paper's COCO defaults.

use super::distill::TeacherCentering;
use super::predictor::DinoHeadConfig;
use crate::method::MethodError;
use protoclust_data::views::OverlapPair;
use protoclust_nn::backbone::ResNetConfig;
use serde::{Deserialize, Serialize};

/// The dense projector: 1 × 1 convolutions in → hidden → hidden → out with BN and GELU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenseProjectorConfig {
    /// Hidden width (4096 in the paper).
    pub hidden: usize,
    /// Output width D (256).
    pub out_dim: usize,
}

impl Default for DenseProjectorConfig {
    fn default() -> Self {
        Self {
            hidden: 4096,
            out_dim: 256,
        }
    }
}

/// Everything SlotCon needs besides the optimiser and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlotConConfig {
    /// Backbone architecture (its last map is the dense feature map).
    pub backbone: ResNetConfig,
    /// Dense projector.
    pub projector: DenseProjectorConfig,
    /// Number of prototypes K.
    pub prototypes: usize,
    /// Slot predictor (DINO head, D → hidden → hidden → D).
    pub predictor: DinoHeadConfig,
    /// Teacher EMA momentum at the start (cosine to 1 over the run).
    pub teacher_momentum: f64,
    /// Student temperature of the grouping loss.
    pub student_temp: f64,
    /// Teacher temperature (also the grouping attention's).
    pub teacher_temp: f64,
    /// Centre EMA momentum.
    pub center_momentum: f64,
    /// How the teacher's scores become the grouping target: `mean` (the paper's centre),
    /// `sinkhorn` (DINOv2's Sinkhorn-Knopp centering) or `{ mixed = s }` (a blend of the two).
    pub teacher_centering: TeacherCentering,
    /// λ: weight of the grouping loss (the contrast gets 1 − λ).
    pub group_loss_weight: f64,
    /// Slot contrast temperature τ.
    pub tau: f64,
    /// The two overlapping views.
    pub views: OverlapPair,
}

impl Default for SlotConConfig {
    /// The paper's COCO recipe: ResNet-50, K = 256, D = 256.
    fn default() -> Self {
        Self {
            backbone: ResNetConfig {
                depth: 50,
                ..Default::default()
            },
            projector: DenseProjectorConfig::default(),
            prototypes: 256,
            predictor: DinoHeadConfig::default(),
            teacher_momentum: 0.99,
            student_temp: 0.1,
            teacher_temp: 0.07,
            center_momentum: 0.9,
            teacher_centering: TeacherCentering::Mean,
            group_loss_weight: 0.5,
            tau: 0.2,
            views: OverlapPair::default(),
        }
    }
}

impl SlotConConfig {
    /// Side of the dense map of a `size`-px view.
    pub fn map_side(&self, size: usize) -> usize {
        let stride = if self.backbone.small_stem { 8 } else { 32 };
        size / stride
    }

    /// Checks ranges; `batch_size` bounds the prototype count by the pixels of a batch.
    pub fn validate(&self, batch_size: usize) -> Result<(), MethodError> {
        let bad = |field: &str, reason: String| MethodError::Config {
            field: format!("slotcon.{field}"),
            reason,
        };
        self.backbone
            .validate()
            .map_err(|e| bad("backbone", e.to_string()))?;
        self.views
            .validate("slotcon.views")
            .map_err(|e| bad("views", e.to_string()))?;
        let side = self.map_side(self.views.size);
        if side < 2 {
            return Err(bad(
                "views.size",
                format!(
                    "{}-px crops give a {side} x {side} feature map with this backbone; at least 2 x 2 is needed (larger crops or small_stem)",
                    self.views.size
                ),
            ));
        }
        let pixels = batch_size * side * side;
        if self.prototypes < 2 || self.prototypes > pixels {
            return Err(bad(
                "prototypes",
                format!(
                    "{} prototypes but a batch has {pixels} feature-map pixels per view ({batch_size} x {side} x {side}); expected 2..={pixels}",
                    self.prototypes
                ),
            ));
        }
        if self.projector.hidden == 0 || self.projector.out_dim == 0 || self.predictor.hidden == 0 {
            return Err(bad("projector", "widths must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&self.teacher_momentum)
            || !(0.0..=1.0).contains(&self.center_momentum)
            || !(0.0..=1.0).contains(&self.group_loss_weight)
        {
            return Err(bad(
                "teacher_momentum",
                "momenta and group_loss_weight must be in [0, 1]".into(),
            ));
        }
        if let TeacherCentering::Mixed(share) = self.teacher_centering {
            if !(share > 0.0 && share < 1.0) {
                return Err(bad(
                    "teacher_centering",
                    format!(
                        "mixed share {share}: expected a Sinkhorn share strictly between 0 and 1"
                    ),
                ));
            }
        }
        if self.student_temp <= 0.0 || self.teacher_temp <= 0.0 || self.tau <= 0.0 {
            return Err(bad("tau", "temperatures must be positive".into()));
        }
        Ok(())
    }
}
