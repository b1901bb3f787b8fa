//! DeepCluster-v2's network: backbone → projector → L2 normalisation → several prototype heads.

use super::config::DeepClusterV2Config;
use burn::module::Module;
use burn::tensor::Tensor;
use protoclust_nn::backbone::{BackboneError, ResNet};
use protoclust_nn::heads::{Mlp, MultiPrototypes};
use protoclust_nn::init::Init;
use protoclust_nn::ops::l2_normalize;
use protoclust_nn::running::SyncRunningStats;

/// Backbone, projection head and one prototype layer per head.
#[derive(Module, Debug)]
pub struct DeepClusterV2Model {
    /// Feature extractor.
    pub backbone: ResNet,
    /// Projection head.
    pub projector: Mlp,
    /// Prototype layers (`prototypes.prototypes{h}` in the official code).
    pub prototypes: MultiPrototypes,
}

/// Embeddings and every head's scores of all crops, crop-major.
pub struct DeepClusterV2Forward {
    /// L2-normalised embeddings, (crops·bs) × D.
    pub embeddings: Tensor<2>,
    /// Per head, scores against its prototypes, (crops·bs) × K_h.
    pub scores: Vec<Tensor<2>>,
}

impl DeepClusterV2Model {
    /// Builds the network from `init`.
    pub fn new(config: &DeepClusterV2Config, init: &mut Init) -> Result<Self, BackboneError> {
        let backbone = config.backbone.init(init)?;
        let projector = config.projector.init(config.backbone.out_dim(), init);
        let prototypes = MultiPrototypes::new(&config.prototypes, config.projector.out_dim, init);
        Ok(Self {
            backbone,
            projector,
            prototypes,
        })
    }

    /// The normalised embedding of pooled backbone features.
    pub fn embed_pooled(&self, pooled: Tensor<2>) -> Tensor<2> {
        l2_normalize(self.projector.forward(pooled), 1)
    }

    /// Runs every crop (crops of one size share a backbone pass), then the head on all of them.
    pub fn forward(&self, views: &[Tensor<4>]) -> DeepClusterV2Forward {
        let embeddings = self.embed_pooled(self.backbone.pooled_crops(views));
        let scores = self.prototypes.forward(embeddings.clone());
        DeepClusterV2Forward { embeddings, scores }
    }
}

impl SyncRunningStats for DeepClusterV2Model {
    fn sync_running_stats(&self) {
        self.backbone.sync_running_stats();
        self.projector.sync_running_stats();
    }
}
