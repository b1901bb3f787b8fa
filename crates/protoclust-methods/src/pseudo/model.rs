//! The network of pseudo-label methods: backbone → optional neck → linear classifier.

use super::neck::{normal_linear, DropoutDraw, Neck, NeckConfig};
use crate::method::MethodError;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use protoclust_nn::backbone::{BackboneError, ResNet, ResNetConfig};
use protoclust_nn::init::Init;
use protoclust_nn::layers::LinearExt;
use protoclust_nn::running::SyncRunningStats;

/// Backbone, neck and a classifier over K clusters.
#[derive(Module, Debug)]
pub struct PseudoLabelModel {
    /// Feature extractor.
    pub backbone: ResNet,
    /// ODC's non-linear neck (absent: the classifier reads the pooled backbone features).
    pub neck: Option<Neck>,
    /// Linear classifier over the clusters (`fc_cls`).
    pub classifier: Linear,
}

/// Features (what the clustering sees) and classifier logits of a batch.
pub struct PseudoLabelForward {
    /// Neck output (or pooled backbone features), N × D.
    pub features: Tensor<2>,
    /// N × K logits.
    pub logits: Tensor<2>,
}

impl PseudoLabelModel {
    /// Builds the network; the classifier is N(0, 0.01²) with zero bias, as OpenSelfSup's ClsHead.
    pub fn new(
        backbone: &ResNetConfig,
        neck: Option<&NeckConfig>,
        clusters: usize,
        init: &mut Init,
    ) -> Result<Self, BackboneError> {
        let net = backbone.init(init)?;
        let neck = neck.map(|c| Neck::new(c, backbone.out_dim(), init));
        let dim = Self::feature_dim_of(backbone, neck.as_ref());
        Ok(Self {
            backbone: net,
            classifier: normal_linear(dim, clusters, 0.01, init),
            neck,
        })
    }

    /// Builds the network of the method configured under `section`, seeded by `seed`.
    pub fn for_method(
        section: &str,
        backbone: &ResNetConfig,
        neck: Option<&NeckConfig>,
        clusters: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self, MethodError> {
        Self::new(backbone, neck, clusters, &mut Init::new(seed, device)).map_err(|e| {
            MethodError::Config {
                field: format!("{section}.backbone"),
                reason: e.to_string(),
            }
        })
    }

    fn feature_dim_of(backbone: &ResNetConfig, neck: Option<&Neck>) -> usize {
        neck.map(|n| n.fc1.weight.dims()[1])
            .unwrap_or_else(|| backbone.out_dim())
    }

    /// The features the clustering works on (inference mode when `dropout` is None).
    pub fn features(&self, x: Tensor<4>, dropout: Option<DropoutDraw>) -> Tensor<2> {
        self.head_features(self.backbone.forward(x).pooled, dropout)
    }

    /// [`PseudoLabelModel::features`] from the backbone's pooled output.
    pub fn head_features(&self, pooled: Tensor<2>, dropout: Option<DropoutDraw>) -> Tensor<2> {
        match &self.neck {
            Some(n) => n.forward(pooled, dropout),
            None => pooled,
        }
    }

    /// Features and logits.
    pub fn forward(&self, x: Tensor<4>, dropout: Option<DropoutDraw>) -> PseudoLabelForward {
        let features = self.features(x, dropout);
        let logits = self.classifier.run(features.clone());
        PseudoLabelForward { features, logits }
    }
}

impl SyncRunningStats for PseudoLabelModel {
    fn sync_running_stats(&self) {
        self.backbone.sync_running_stats();
        self.neck.sync_running_stats();
    }
}
