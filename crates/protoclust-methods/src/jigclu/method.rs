//! JigClu as a [`Method`]: montage, one backbone pass, decoupling, both branches.

use super::config::JigCluConfig;
use super::decouple::{decouple, upsample_side};
use super::model::JigCluModel;
use super::montage::{draw_permutation, montage};
use crate::method::{HeadOutputs, Method, MethodError, StepContext, StepOutput};
use burn::tensor::{Device, Tensor};
use protoclust_data::loader::Batch;
use protoclust_data::mix_seed;
use protoclust_data::views::ViewBuilder;
use protoclust_nn::backbone::{ResNet, ResNetOutput};
use protoclust_nn::init::Init;
use std::sync::Arc;

/// Stream tag of the montage permutation (keeps it apart from other per-iteration draws).
const PERMUTATION_STREAM: u64 = 0x4A16;

/// Jigsaw Clustering; stateless between steps.
pub struct JigClu {
    config: JigCluConfig,
}

impl JigClu {
    /// JigClu with `config`.
    pub fn new(config: JigCluConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &JigCluConfig {
        &self.config
    }

    /// The permutation of iteration `iteration` for `patches` patches.
    pub fn permutation(&self, patches: usize, seed: u64, iteration: u64) -> Vec<usize> {
        draw_permutation(patches, mix_seed(&[seed, iteration, PERMUTATION_STREAM]))
    }
}

impl Method for JigClu {
    type Model = JigCluModel;

    fn name(&self) -> &'static str {
        "jigclu"
    }

    fn views(&self) -> Arc<dyn ViewBuilder> {
        Arc::new(self.config.views.clone())
    }

    fn init_model(&self, seed: u64, device: &Device) -> Result<JigCluModel, MethodError> {
        JigCluModel::new(&self.config, &mut Init::new(seed, device)).map_err(|e| {
            MethodError::Config {
                field: "jigclu.backbone".into(),
                reason: e.to_string(),
            }
        })
    }

    fn backbone(model: &JigCluModel) -> &ResNet {
        &model.backbone
    }

    /// The clustering branch's normalised projection of the whole image.
    fn head_outputs(model: &JigCluModel, trunk: &ResNetOutput) -> HeadOutputs {
        HeadOutputs {
            embedding: Some(protoclust_nn::ops::l2_normalize(
                model.heads.clu.forward(trunk.pooled.clone()),
                1,
            )),
            scores: None,
            dense_scores: None,
        }
    }

    fn forward(
        &mut self,
        model: &JigCluModel,
        views: &[Tensor<4>],
        _batch: &Batch,
        ctx: &StepContext,
    ) -> Result<StepOutput, MethodError> {
        let m = self.config.grid();
        if views.len() != m * m {
            return Err(MethodError::Config {
                field: "jigclu.views".into(),
                reason: format!(
                    "{} patches per image, the {m} × {m} grid needs {}",
                    views.len(),
                    m * m
                ),
            });
        }
        let n = views[0].dims()[0];
        let permute = self.permutation(m * m * n, ctx.seed, ctx.iteration);
        let images = montage(views, &permute, m);
        let map = model.backbone.forward(images).map;
        let side = map.dims()[2];
        let cells = decouple(map, m, upsample_side(side, m, self.config.upsample));
        let out = model.heads.losses(cells, &permute, &self.config);
        let metrics = vec![
            (
                "loss_clu".into(),
                out.loss_clu.clone().into_scalar::<f32>() as f64,
            ),
            (
                "loss_loc".into(),
                out.loss_loc.clone().into_scalar::<f32>() as f64,
            ),
            ("loc_acc".into(), out.loc_acc),
        ];
        Ok(StepOutput {
            loss: out.loss,
            metrics,
            assignments: Vec::new(),
            watch: vec![("q_loc".into(), out.q_loc.detach())],
        })
    }
}
