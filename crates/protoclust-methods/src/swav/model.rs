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
        let (k, d) = (config.prototypes, config.projector.out_dim);
        let prototypes = if config.prototype_bias {
            Prototypes::with_bias(k, d, init)
        } else {
            Prototypes::new(k, d, init)
        };
        Ok(Self {
            backbone,
            projector,
            prototypes,
        })
    }

    /// Runs every crop (crops of one size share a backbone pass), then the head on all of them.
    pub fn forward(&self, views: &[Tensor<4>]) -> SwavForward {
        let h = self.backbone.pooled_crops(views);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::{Method, StepContext};
    use crate::swav::Swav;
    use burn::tensor::{Device, Distribution};
    use protoclust_data::views::CropGroup;

    /// A width-4 ResNet-18 (32-d features), projector 32 → 16 → 8, `prototypes` prototypes.
    fn tiny(prototypes: usize, zero_init_residual: bool) -> SwavConfig {
        let mut cfg = SwavConfig {
            backbone: protoclust_nn::backbone::ResNetConfig {
                depth: 18,
                width: 4,
                small_stem: true,
                stem_padding: None,
                zero_init_residual,
            },
            prototypes,
            ..Default::default()
        };
        cfg.projector.hidden = vec![16];
        cfg.projector.out_dim = 8;
        cfg
    }

    #[test]
    fn multi_crop_of_two_sizes_gives_scores_for_every_crop_and_a_finite_loss() {
        let mut cfg = tiny(12, true);
        cfg.views.crops = vec![
            CropGroup {
                count: 2,
                size: 16,
                scale: [0.14, 1.0],
            },
            CropGroup {
                count: 3,
                size: 8,
                scale: [0.05, 0.14],
            },
        ];
        let dev = Device::flex().autodiff();
        let mut swav = Swav::new(cfg, 4);
        let model = swav.init_model(0, &dev).unwrap();
        let views: Vec<Tensor<4>> = [16, 16, 8, 8, 8]
            .iter()
            .map(|&s| Tensor::random([4, 3, s, s], Distribution::Normal(0.0, 1.0), &dev))
            .collect();
        let out = model.forward(&views);
        assert_eq!(out.scores.dims(), [20, 12]);
        let ctx = StepContext {
            iteration: 0,
            epoch: 0,
            iters_per_epoch: 1,
            device: dev.clone(),
            seed: 0,
        };
        let model = swav.before_forward(model, &ctx);
        let batch = protoclust_data::loader::Batch {
            views: vec![],
            geometry: vec![],
            indices: vec![0, 1, 2, 3],
            labels: vec![None; 4],
            skipped: vec![],
        };
        let step = swav.forward(&model, &views, &batch, &ctx).unwrap();
        let loss = step.loss.into_scalar::<f32>();
        assert!(loss.is_finite() && loss > 0.0);
        assert_eq!(step.assignments.len(), 4);
    }

    #[test]
    fn dense_scores_are_the_head_on_each_pixel_as_if_pooled() {
        let dev = Device::flex();
        let model = Swav::new(tiny(5, false), 4).init_model(3, &dev).unwrap();
        let map = Tensor::<4>::random([2, 32, 3, 4], Distribution::Normal(0.0, 1.0), &dev);
        let trunk = protoclust_nn::backbone::ResNetOutput {
            pooled: Tensor::zeros([2, 32], &dev),
            map: map.clone(),
        };
        let dense = Swav::dense_scores(&model, &trunk).unwrap();
        assert_eq!(dense.dims(), [2, 5, 3, 4]);
        for (b, y, x) in [(0, 0, 0), (1, 2, 3), (0, 1, 2)] {
            let pixel = map
                .clone()
                .slice([b..b + 1, 0..32, y..y + 1, x..x + 1])
                .reshape([1, 32]);
            let one = protoclust_nn::backbone::ResNetOutput {
                pooled: pixel,
                map: Tensor::zeros([1, 32, 1, 1], &dev),
            };
            let want = Swav::head_outputs(&model, &one).scores.unwrap();
            let got = dense
                .clone()
                .slice([b..b + 1, 0..5, y..y + 1, x..x + 1])
                .reshape([1, 5]);
            let err = (got - want).abs().max().into_scalar::<f32>();
            assert!(err < 1e-5, "pixel ({b}, {y}, {x}): {err}");
        }
    }
}
