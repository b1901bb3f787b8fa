//! SwAV's network: backbone → projector → L2 normalisation → prototypes.

use super::config::SwavConfig;
use burn::module::Module;
use burn::tensor::Tensor;
use protoclust_nn::backbone::{BackboneError, ResNet};
use protoclust_nn::heads::{Mlp, Prototypes};
use protoclust_nn::init::Init;
use protoclust_nn::ops::l2_normalize;
use protoclust_nn::running::SyncRunningStats;

/// Backbone, projection head and prototype layer.
#[derive(Module, Debug)]
pub struct SwavModel {
    /// Feature extractor.
    pub backbone: ResNet,
    /// Projection head.
    pub projector: Mlp,
    /// Prototype layer (K × D).
    pub prototypes: Prototypes,
}

/// Embeddings and prototype scores of all crops, crop-major.
pub struct SwavForward {
    /// L2-normalised embeddings, (crops·bs) × D.
    pub embeddings: Tensor<2>,
    /// Scores against the prototypes, (crops·bs) × K.
    pub scores: Tensor<2>,
}

impl SwavModel {
    /// Builds the network from `init`.
    pub fn new(config: &SwavConfig, init: &mut Init) -> Result<Self, BackboneError> {
        let backbone = config.backbone.init(init)?;
        let projector = config.projector.init(config.backbone.out_dim(), init);
        let prototypes = Prototypes::new(config.prototypes, config.projector.out_dim, init);
        Ok(Self {
            backbone,
            projector,
            prototypes,
        })
    }

    /// Runs every crop: consecutive crops of one size share a backbone pass (as the official
    /// code does, so BatchNorm sees them together), then the head on all of them.
    pub fn forward(&self, views: &[Tensor<4>]) -> SwavForward {
        let mut pooled = Vec::new();
        let mut start = 0;
        while start < views.len() {
            let size = views[start].dims()[2];
            let end = (start..views.len())
                .find(|&i| views[i].dims()[2] != size)
                .unwrap_or(views.len());
            let x = Tensor::cat(views[start..end].to_vec(), 0);
            pooled.push(self.backbone.forward(x).pooled);
            start = end;
        }
        let h = Tensor::cat(pooled, 0);
        let embeddings = l2_normalize(self.projector.forward(h), 1);
        let scores = self.prototypes.forward(embeddings.clone());
        SwavForward { embeddings, scores }
    }
}

impl SyncRunningStats for SwavModel {
    fn sync_running_stats(&self) {
        self.backbone.sync_running_stats();
        self.projector.sync_running_stats();
    }
}
