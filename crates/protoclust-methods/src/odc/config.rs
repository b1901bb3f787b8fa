//! ODC's hyper-parameters, with the paper's defaults (OpenSelfSup `odc_r50_v1`).

use crate::method::MethodError;
use crate::pseudo::{ClusteringConfig, NeckConfig};
use protoclust_data::views::{CropGroup, MultiCrop};
use protoclust_nn::backbone::ResNetConfig;
use serde::{Deserialize, Serialize};

/// Everything ODC needs besides the optimiser and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OdcConfig {
    /// Backbone architecture.
    pub backbone: ResNetConfig,
    /// The non-linear neck (its output is the memory feature).
    pub neck: NeckConfig,
    /// Number of clusters K.
    pub clusters: usize,
    /// Weight of the new feature in the memory update.
    pub memory_momentum: f64,
    /// Clusters with fewer members than this are dissolved and refilled.
    pub min_cluster: usize,
    /// Recompute all centroids every this many iterations.
    pub centroid_update_interval: u64,
    /// Handle small clusters every this many iterations.
    pub small_cluster_interval: u64,
    /// Re-weighting power at the initial clustering (DeepClusterHook's `reweight_pow`).
    pub init_reweight_pow: f64,
    /// Re-weighting power during training (0.5: the official hook never passes its own).
    pub reweight_pow: f64,
    /// Initial clustering of the untrained network's features.
    pub clustering: ClusteringConfig,
    /// The training view (one crop per image).
    pub views: MultiCrop,
}

impl Default for OdcConfig {
    /// The paper's ImageNet recipe (ResNet-50, 10,000 clusters, 224-px crops).
    fn default() -> Self {
        Self {
            backbone: ResNetConfig {
                depth: 50,
                ..Default::default()
            },
            neck: NeckConfig::default(),
            clusters: 10_000,
            memory_momentum: 0.5,
            min_cluster: 20,
            centroid_update_interval: 10,
            small_cluster_interval: 1,
            init_reweight_pow: 0.5,
            reweight_pow: 0.5,
            clustering: ClusteringConfig::default(),
            views: one_crop(),
        }
    }
}

/// One RandomResizedCrop view per image.
pub fn one_crop() -> MultiCrop {
    MultiCrop {
        crops: vec![CropGroup {
            count: 1,
            size: 224,
            scale: [0.08, 1.0],
        }],
        ..Default::default()
    }
}

fn bad(section: &str, field: &str, reason: String) -> MethodError {
    MethodError::Config {
        field: format!("{section}.{field}"),
        reason,
    }
}

/// Checks shared by ODC and DeepCluster.
pub fn validate_common(
    section: &str,
    backbone: &ResNetConfig,
    clusters: usize,
    views: &MultiCrop,
    image_side: Option<usize>,
    num_samples: Option<usize>,
) -> Result<(), MethodError> {
    backbone
        .validate()
        .map_err(|e| bad(section, "backbone", e.to_string()))?;
    if clusters < 2 {
        return Err(bad(
            section,
            "clusters",
            format!("{clusters} must be at least 2"),
        ));
    }
    if let Some(n) = num_samples {
        if clusters > n {
            return Err(bad(
                section,
                "clusters",
                format!("{clusters} clusters but only {n} training images (k-means needs k <= N)"),
            ));
        }
    }
    if views.total() != 1 {
        return Err(bad(
            section,
            "views",
            format!(
                "exactly one crop per image is expected, {} configured",
                views.total()
            ),
        ));
    }
    views
        .validate(&format!("{section}.views"), image_side)
        .map_err(|e| bad(section, "views", e.to_string()))
}

impl OdcConfig {
    /// Checks ranges; `num_samples` (when known) bounds the cluster count.
    pub fn validate(
        &self,
        image_side: Option<usize>,
        num_samples: Option<usize>,
    ) -> Result<(), MethodError> {
        validate_common(
            "odc",
            &self.backbone,
            self.clusters,
            &self.views,
            image_side,
            num_samples,
        )?;
        if !(0.0..=1.0).contains(&self.memory_momentum) {
            return Err(bad(
                "odc",
                "memory_momentum",
                format!("{} is outside [0, 1]", self.memory_momentum),
            ));
        }
        if self.centroid_update_interval == 0 || self.small_cluster_interval == 0 {
            return Err(bad(
                "odc",
                "centroid_update_interval",
                "intervals must be at least 1".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.neck.dropout) {
            return Err(bad(
                "odc",
                "neck.dropout",
                format!("{} is outside [0, 1)", self.neck.dropout),
            ));
        }
        if self.neck.hidden == 0 || self.neck.out_dim == 0 {
            return Err(bad(
                "odc",
                "neck",
                "hidden and out_dim must be at least 1".into(),
            ));
        }
        if let Some(n) = num_samples {
            if self.min_cluster * self.clusters > n {
                return Err(bad(
                    "odc",
                    "min_cluster",
                    format!(
                        "{} x {} clusters exceeds the {n} training images: every cluster would be dissolved",
                        self.min_cluster, self.clusters
                    ),
                ));
            }
        }
        Ok(())
    }
}
