//! DeepCluster's hyper-parameters (Caron et al., ECCV 2018; OpenSelfSup `deepcluster_r50`).

use crate::method::MethodError;
use crate::odc::config::{one_crop, validate_common};
use crate::pseudo::{ClusteringConfig, NeckConfig};
use protoclust_data::views::MultiCrop;
use protoclust_nn::backbone::ResNetConfig;
use serde::{Deserialize, Serialize};

/// Everything DeepCluster needs besides the optimiser and the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeepClusterConfig {
    /// Backbone architecture.
    pub backbone: ResNetConfig,
    /// Optional neck between the pooled features and the classifier (absent in the paper).
    pub neck: Option<NeckConfig>,
    /// Number of clusters K.
    pub clusters: usize,
    /// Per-epoch clustering (the paper: PCA-whitening to 256, L2 normalisation, k-means).
    pub clustering: ClusteringConfig,
    /// Draw each epoch uniformly over clusters (the paper's sampler).
    pub uniform_sampling: bool,
    /// Re-weight the loss by cluster size with this power (0: no re-weighting).
    pub reweight_pow: f64,
    /// The training view (one crop per image).
    pub views: MultiCrop,
}

impl Default for DeepClusterConfig {
    /// The paper's ImageNet recipe (10,000 clusters, PCA 256) on a ResNet-50.
    fn default() -> Self {
        Self {
            backbone: ResNetConfig {
                depth: 50,
                ..Default::default()
            },
            neck: None,
            clusters: 10_000,
            clustering: ClusteringConfig {
                pca_dim: 256,
                ..Default::default()
            },
            uniform_sampling: true,
            reweight_pow: 0.0,
            views: one_crop(),
        }
    }
}

impl DeepClusterConfig {
    /// Checks ranges; `num_samples` (when known) bounds the cluster count.
    pub fn validate(
        &self,
        image_side: Option<usize>,
        num_samples: Option<usize>,
    ) -> Result<(), MethodError> {
        validate_common(
            "deepcluster",
            &self.backbone,
            self.clusters,
            &self.views,
            image_side,
            num_samples,
        )?;
        let dim = self
            .neck
            .as_ref()
            .map(|n| n.out_dim)
            .unwrap_or_else(|| self.backbone.out_dim());
        if self.clustering.pca_dim > dim {
            return Err(MethodError::Config {
                field: "deepcluster.clustering.pca_dim".into(),
                reason: format!(
                    "{} is more than the {dim}-dimensional features",
                    self.clustering.pca_dim
                ),
            });
        }
        if !(0.0..=2.0).contains(&self.reweight_pow) {
            return Err(MethodError::Config {
                field: "deepcluster.reweight_pow".into(),
                reason: format!("{} is outside [0, 2]", self.reweight_pow),
            });
        }
        Ok(())
    }
}
