//! SwAV as a [`Method`]: prototype normalisation, freezing, queue and the swapped loss.

use super::config::SwavConfig;
use super::loss::{swav_loss, SwavLossParams};
use super::model::SwavModel;
use super::queue::SwavQueue;
use crate::method::{EpochContext, HeadOutputs, Method, MethodError, StepContext, StepOutput};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use protoclust_data::loader::Batch;
use protoclust_data::views::ViewBuilder;
use protoclust_nn::backbone::{ResNet, ResNetOutput};
use protoclust_nn::collective::{Collective, World};
use protoclust_nn::init::Init;
use protoclust_nn::named::HostTensor;
use protoclust_nn::ops::rows;
use std::collections::BTreeMap;
use std::sync::Arc;

/// SwAV with its queue state.
pub struct Swav {
    config: SwavConfig,
    batch_size: usize,
    queue: Option<SwavQueue>,
    device: Option<Device>,
    world: World,
}

impl Swav {
    /// SwAV for batches of `batch_size` samples.
    pub fn new(config: SwavConfig, batch_size: usize) -> Self {
        Self {
            config,
            batch_size,
            queue: None,
            device: None,
            world: World::Single,
        }
    }

    /// The same method as one rank of `world`: Sinkhorn normalises over the global batch and
    /// each rank keeps its own queue of `queue_length / world size` rows, as the official code.
    pub fn in_world(mut self, world: World) -> Self {
        self.world = world;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &SwavConfig {
        &self.config
    }

    /// Queue rows this rank keeps: the queue length rounded down to a multiple of the global
    /// batch size, split evenly over the ranks.
    pub fn effective_queue_length(&self) -> usize {
        let b = self.batch_size.max(1);
        (self.config.queue_length - self.config.queue_length % b) / self.world.world_size()
    }

    /// The queue, once allocated.
    pub fn queue(&self) -> Option<&SwavQueue> {
        self.queue.as_ref()
    }

    /// Allocates the queue once its epoch has come and clears the per-epoch "use queue" flag.
    fn prepare_epoch(&mut self, epoch: u64) {
        let len = self.effective_queue_length();
        if len > 0 && epoch >= self.config.queue_start_epoch && self.queue.is_none() {
            if let Some(device) = &self.device {
                self.queue = Some(SwavQueue::new(
                    self.config.crops_for_assign.len(),
                    len,
                    self.config.projector.out_dim,
                    device,
                ));
            }
        }
        if let Some(q) = &mut self.queue {
            // The official flag is local to one epoch's `train()` call.
            q.use_queue = false;
        }
    }

    fn loss_params(&self) -> SwavLossParams {
        SwavLossParams {
            total_crops: self.config.views.total(),
            crops_for_assign: self.config.crops_for_assign.clone(),
            temperature: self.config.temperature,
            epsilon: self.config.epsilon,
            sinkhorn_iters: self.config.sinkhorn_iterations,
            mode: self.config.sinkhorn_mode,
        }
    }
}

impl Method for Swav {
    type Model = SwavModel;

    fn name(&self) -> &'static str {
        "swav"
    }

    fn views(&self) -> Arc<dyn ViewBuilder> {
        Arc::new(self.config.views.clone())
    }

    fn init_model(&self, seed: u64, device: &Device) -> Result<SwavModel, MethodError> {
        SwavModel::new(&self.config, &mut Init::new(seed, device)).map_err(|e| {
            MethodError::Config {
                field: "swav.backbone".into(),
                reason: e.to_string(),
            }
        })
    }

    fn backbone(model: &SwavModel) -> &ResNet {
        &model.backbone
    }

    /// The normalised projection and its prototype scores.
    fn prototypes(model: &SwavModel) -> Option<Tensor<2>> {
        Some(model.prototypes.weight.val())
    }

    fn head_outputs(model: &SwavModel, trunk: &ResNetOutput) -> HeadOutputs {
        let embeddings =
            protoclust_nn::ops::l2_normalize(model.projector.forward(trunk.pooled.clone()), 1);
        HeadOutputs {
            scores: Some(model.prototypes.forward(embeddings.clone())),
            embedding: Some(embeddings),
        }
    }

    /// The image-level head applied to every pixel of the last map (a pixel's feature taken
    /// as a pooled one: projector, normalisation, prototypes), as a 1 × 1 convolution would.
    fn dense_scores(model: &SwavModel, trunk: &ResNetOutput) -> Option<Tensor<4>> {
        let [b, c, h, w] = trunk.map.dims();
        let pixels = trunk
            .map
            .clone()
            .permute([0, 2, 3, 1])
            .reshape([b * h * w, c]);
        let embeddings = protoclust_nn::ops::l2_normalize(model.projector.forward(pixels), 1);
        let scores = model.prototypes.forward(embeddings);
        let k = scores.dims()[1];
        Some(scores.reshape([b, h, w, k]).permute([0, 3, 1, 2]))
    }

    fn num_clusters(&self) -> Option<usize> {
        Some(self.config.prototypes)
    }

    fn on_epoch_start(
        &mut self,
        model: SwavModel,
        ctx: &EpochContext<'_>,
    ) -> Result<SwavModel, MethodError> {
        self.prepare_epoch(ctx.epoch);
        Ok(model)
    }

    fn before_forward(&mut self, mut model: SwavModel, ctx: &StepContext) -> SwavModel {
        if self.device.is_none() {
            self.device = Some(ctx.device.clone());
            self.prepare_epoch(ctx.epoch);
        }
        model.prototypes = model.prototypes.normalized();
        model
    }

    fn forward(
        &mut self,
        model: &SwavModel,
        views: &[Tensor<4>],
        _batch: &Batch,
        _ctx: &StepContext,
    ) -> Result<StepOutput, MethodError> {
        let out = model.forward(views);
        let params = self.loss_params();
        let res = swav_loss(
            out.scores.clone(),
            &out.embeddings,
            &model.prototypes,
            self.queue.as_mut(),
            &params,
            &self.world,
        );
        let first = &res.codes[0];
        let [n, _] = first.dims();
        let bs = n.min(views[0].dims()[0]);
        let assignments =
            protoclust_nn::ops::host::to_indices(rows(first.clone(), n - bs..n).argmax(1));
        let mut watch = vec![("scores".to_string(), out.scores.detach())];
        for (i, c) in res.codes.iter().enumerate() {
            watch.push((
                format!("sinkhorn_codes[crop {}]", params.crops_for_assign[i]),
                c.clone(),
            ));
        }
        Ok(StepOutput {
            loss: res.loss,
            metrics: vec![("queue_used".into(), res.queue_used as u8 as f64)],
            assignments,
            watch,
        })
    }

    fn filter_grads(&self, grads: &mut GradientsParams, model: &SwavModel, ctx: &StepContext) {
        if self.config.fixed_prototypes || ctx.iteration < self.config.freeze_prototypes_iterations
        {
            grads.remove::<2>(model.prototypes.weight.id);
            if let Some(b) = &model.prototypes.bias {
                grads.remove::<1>(b.id);
            }
        }
    }

    /// The queue of every rank, concatenated in rank order (one process's queue shape), with
    /// the number of ranks that kept it.
    fn state(&self) -> BTreeMap<String, HostTensor> {
        let mut s = BTreeMap::new();
        if let Some(q) = &self.queue {
            for (i, t) in q.queues.iter().enumerate() {
                let all = self.world.all_gather(t.clone());
                s.insert(format!("queue.{i}"), HostTensor::from_tensor(&all));
            }
            s.insert(
                "queue.use".into(),
                HostTensor {
                    shape: vec![1],
                    data: vec![q.use_queue as u8 as f32],
                },
            );
            s.insert(
                "queue.ranks".into(),
                HostTensor {
                    shape: vec![1],
                    data: vec![self.world.world_size() as f32],
                },
            );
        }
        s
    }

    fn load_state(
        &mut self,
        state: &BTreeMap<String, HostTensor>,
        device: &Device,
    ) -> Result<(), MethodError> {
        self.device = Some(device.clone());
        let n = self.config.crops_for_assign.len();
        if !state.contains_key("queue.0") {
            self.queue = None;
            return Ok(());
        }
        let ranks = self.world.world_size();
        let saved_ranks = state.get("queue.ranks").map_or(1, |t| t.data[0] as usize);
        if saved_ranks != ranks && self.world.rank() == 0 {
            eprintln!(
                "warning: the SwAV queue was saved by {saved_ranks} process(es) and is now split over {ranks}: \
                 each keeps a different part of the same rows, so the run is not bit-identical to an uninterrupted one"
            );
        }
        let local = self.effective_queue_length();
        let mut queues = Vec::new();
        for i in 0..n {
            let t = state
                .get(&format!("queue.{i}"))
                .ok_or_else(|| MethodError::State(format!("queue.{i} is missing")))?;
            let expected = [local * ranks, self.config.projector.out_dim];
            if t.shape != expected {
                return Err(MethodError::State(format!(
                    "queue.{i} has shape {:?}, the configuration needs {expected:?}",
                    t.shape
                )));
            }
            let r = self.world.rank();
            queues.push(rows(t.to_tensor::<2>(device), r * local..(r + 1) * local));
        }
        let use_queue = state
            .get("queue.use")
            .map(|t| t.data[0] != 0.0)
            .unwrap_or(false);
        self.queue = Some(SwavQueue { queues, use_queue });
        Ok(())
    }
}
