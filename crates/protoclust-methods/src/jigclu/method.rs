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
use protoclust_nn::collective::global_batch::{gather_rows_tracked, row_span};
use protoclust_nn::collective::{with_local_batchnorm, Collective, World};
use protoclust_nn::init::Init;
use protoclust_nn::ops::rows;
use std::sync::Arc;

/// Stream tag of the montage permutation (keeps it apart from other per-iteration draws).
const PERMUTATION_STREAM: u64 = 0x4A16;

/// Jigsaw Clustering; stateless between steps.
pub struct JigClu {
    config: JigCluConfig,
    world: World,
}

impl JigClu {
    /// JigClu with `config`.
    pub fn new(config: JigCluConfig) -> Self {
        Self {
            config,
            world: World::Single,
        }
    }

    /// The same method as one rank of `world`, as the official `_batch_gather_ddp`: the
    /// montages are cut from the global batch's patches, each rank encodes its share, and both
    /// branches run on every rank's features (gathered).
    pub fn in_world(mut self, world: World) -> Self {
        self.world = world;
        self
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
        // The global batch's patches (this process's alone in a single-process run).
        let span = row_span(&self.world, views[0].dims()[0]);
        let patches: Vec<Tensor<4>> = views
            .iter()
            .map(|v| self.world.all_gather(v.clone()))
            .collect();
        let permute = self.permutation(m * m * span.total, ctx.seed, ctx.iteration);
        let images = rows(
            montage(&patches, &permute, m),
            span.offset..span.offset + span.local,
        );
        let map = gather_rows_tracked(&self.world, model.backbone.forward(images).map);
        let side = map.dims()[2];
        let cells = decouple(map, m, upsample_side(side, m, self.config.upsample));
        // The heads see the whole global batch on every rank: their BatchNorms need no sync.
        let out = with_local_batchnorm(|| model.heads.losses(cells, &permute, &self.config));
        // Both loss terms in one read.
        let terms =
            protoclust_nn::ops::host::scalars(vec![out.loss_clu.clone(), out.loss_loc.clone()]);
        let metrics = vec![
            ("loss_clu".into(), terms[0] as f64),
            ("loss_loc".into(), terms[1] as f64),
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
