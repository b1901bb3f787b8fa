//! ODC as a [`Method`]: memory initialisation, weighted pseudo-label loss, online memory
//! updates and small-cluster handling, in OpenSelfSup's order.

use super::config::OdcConfig;
use super::memory::OdcMemory;
use crate::method::{EpochContext, HeadOutputs, Method, MethodError, StepContext, StepOutput};
use crate::pseudo::{
    class_weights, cluster_training_set, global_weighted_cross_entropy, DropoutDraw,
    PseudoLabelModel,
};
use burn::tensor::{Device, Tensor};
use protoclust_data::loader::Batch;
use protoclust_data::mix_seed;
use protoclust_data::views::ViewBuilder;
use protoclust_nn::backbone::{ResNet, ResNetOutput};
use protoclust_nn::collective::global_batch::row_span;
use protoclust_nn::collective::{Collective, World};
use protoclust_nn::layers::LinearExt;
use protoclust_nn::named::HostTensor;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Cluster-size statistics.
pub fn size_stats(sizes: &[usize]) -> Vec<(String, f64)> {
    vec![
        (
            "empty_clusters".into(),
            sizes.iter().filter(|&&s| s == 0).count() as f64,
        ),
        (
            "min_cluster_size".into(),
            sizes.iter().copied().min().unwrap_or(0) as f64,
        ),
        (
            "max_cluster_size".into(),
            sizes.iter().copied().max().unwrap_or(0) as f64,
        ),
    ]
}

/// ODC with its two memories and current loss weights.
pub struct Odc {
    config: OdcConfig,
    memory: Option<OdcMemory>,
    weights: Vec<f32>,
    world: World,
}

impl Odc {
    /// ODC with empty memories (filled at the first epoch start).
    pub fn new(config: OdcConfig) -> Self {
        Self {
            config,
            memory: None,
            weights: Vec::new(),
            world: World::Single,
        }
    }

    /// The same method as one rank of `world`: every rank keeps the whole data set's memories
    /// and updates them with the global batch's indices and features (all-gathered), as
    /// OpenSelfSup's `ODCMemory`; the loss is one process's mean over the global batch.
    pub fn in_world(mut self, world: World) -> Self {
        self.world = world;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &OdcConfig {
        &self.config
    }

    /// The memories, once initialised.
    pub fn memory(&self) -> Option<&OdcMemory> {
        self.memory.as_ref()
    }

    /// Current per-class loss weights.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// Fills the memories from raw features and an initial clustering.
    pub fn init_memory(&mut self, features: Tensor<2>, labels: Vec<usize>) {
        self.weights = class_weights(&labels, self.config.clusters, self.config.init_reweight_pow);
        self.memory = Some(OdcMemory::init(features, labels, self.config.clusters));
    }

    fn not_ready() -> MethodError {
        MethodError::State("ODC memories are not initialised (no epoch start ran)".into())
    }
}

impl Method for Odc {
    type Model = PseudoLabelModel;

    fn name(&self) -> &'static str {
        "odc"
    }

    fn views(&self) -> Arc<dyn ViewBuilder> {
        Arc::new(self.config.views.clone())
    }

    fn init_model(&self, seed: u64, device: &Device) -> Result<PseudoLabelModel, MethodError> {
        PseudoLabelModel::for_method(
            "odc",
            &self.config.backbone,
            Some(&self.config.neck),
            self.config.clusters,
            seed,
            device,
        )
    }

    fn backbone(model: &PseudoLabelModel) -> &ResNet {
        &model.backbone
    }

    /// The neck's features and the classifier's logits over the clusters.
    fn head_outputs(model: &PseudoLabelModel, trunk: &ResNetOutput) -> HeadOutputs {
        let features = model.head_features(trunk.pooled.clone(), None);
        HeadOutputs {
            scores: Some(model.classifier.run(features.clone())),
            embedding: Some(features),
        }
    }

    fn num_clusters(&self) -> Option<usize> {
        Some(self.config.clusters)
    }

    fn on_epoch_start(
        &mut self,
        model: PseudoLabelModel,
        ctx: &EpochContext<'_>,
    ) -> Result<PseudoLabelModel, MethodError> {
        if self.memory.is_none() {
            let (features, res) = cluster_training_set(
                &model,
                ctx,
                self.config.clusters,
                &self.config.clustering,
                mix_seed(&[ctx.seed, 0x0dc]),
                &self.world,
            )?;
            self.init_memory(features, res.labels);
        }
        Ok(model)
    }

    fn forward(
        &mut self,
        model: &PseudoLabelModel,
        views: &[Tensor<4>],
        batch: &Batch,
        ctx: &StepContext,
    ) -> Result<StepOutput, MethodError> {
        let memory = self.memory.as_mut().ok_or_else(Self::not_ready)?;
        let span = row_span(&self.world, batch.indices.len());
        let out = model.forward(
            views[0].clone(),
            Some(DropoutDraw {
                seed: mix_seed(&[ctx.seed, ctx.iteration, 0xd20]),
                first_row: span.offset,
            }),
        );
        let targets: Vec<usize> = batch.indices.iter().map(|&i| memory.labels[i]).collect();
        let acc = crate::pseudo::top1_accuracy(out.logits.clone(), &targets);
        let loss =
            global_weighted_cross_entropy(out.logits, &targets, Some(&self.weights), &self.world);
        // The global batch's samples, in rank order (this process's alone in one process).
        let features = self.world.all_gather(out.features.detach().inner());
        let indices: Vec<usize> = if self.world.world_size() == 1 {
            batch.indices.clone()
        } else {
            // Gathered as f32, exact below 2^24.
            if let Some(&big) = batch.indices.iter().find(|&&i| i >= 1 << 24) {
                return Err(MethodError::Data(format!(
                    "sample index {big}: multi-process ODC handles data sets of up to 16,777,216 images"
                )));
            }
            let mine: Vec<f32> = batch.indices.iter().map(|&i| i as f32).collect();
            self.world
                .all_gather_host(&mine)
                .into_iter()
                .map(|i| i as usize)
                .collect()
        };
        let change = memory.update_samples(&indices, features, self.config.memory_momentum);
        let mut metrics = vec![
            ("acc".to_string(), acc),
            ("change_ratio".to_string(), change),
        ];
        metrics.extend(size_stats(&memory.sizes()));
        let assignments = batch.indices.iter().map(|&i| memory.labels[i]).collect();
        Ok(StepOutput {
            loss,
            metrics,
            assignments,
            watch: Vec::new(),
        })
    }

    fn after_step(&mut self, model: PseudoLabelModel, ctx: &StepContext) -> PseudoLabelModel {
        if let Some(memory) = self.memory.as_mut() {
            let it = ctx.iteration + 1;
            if it.is_multiple_of(self.config.centroid_update_interval) {
                memory.update_centroids(None);
            }
            if it.is_multiple_of(self.config.small_cluster_interval) {
                memory.deal_with_small_clusters(
                    self.config.min_cluster,
                    mix_seed(&[ctx.seed, ctx.iteration, 0x5a11]),
                );
            }
            self.weights = class_weights(
                &memory.labels,
                self.config.clusters,
                self.config.reweight_pow,
            );
        }
        model
    }

    fn pseudo_labels(&self) -> Option<&[usize]> {
        self.memory.as_ref().map(|m| m.labels.as_slice())
    }

    fn state(&self) -> BTreeMap<String, HostTensor> {
        let mut s = BTreeMap::new();
        if let Some(m) = &self.memory {
            s.insert("odc.bank".into(), HostTensor::from_tensor(&m.bank));
            s.insert(
                "odc.centroids".into(),
                HostTensor::from_tensor(&m.centroids),
            );
            s.insert(
                "odc.labels".into(),
                HostTensor {
                    shape: vec![m.labels.len()],
                    data: m.labels.iter().map(|&l| l as f32).collect(),
                },
            );
            s.insert(
                "odc.loss_weight".into(),
                HostTensor {
                    shape: vec![self.weights.len()],
                    data: self.weights.clone(),
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
        let (Some(bank), Some(centroids), Some(labels)) = (
            state.get("odc.bank"),
            state.get("odc.centroids"),
            state.get("odc.labels"),
        ) else {
            self.memory = None;
            return Ok(());
        };
        let k = self.config.clusters;
        if centroids.shape.first() != Some(&k) || bank.shape.first() != Some(&labels.data.len()) {
            return Err(MethodError::State(format!(
                "saved ODC memories ({:?} bank, {:?} centroids) do not fit {k} clusters",
                bank.shape, centroids.shape
            )));
        }
        let labels: Vec<usize> = labels.data.iter().map(|&v| v as usize).collect();
        if labels.iter().any(|&l| l >= k) {
            return Err(MethodError::State(
                "saved ODC labels exceed the cluster count".into(),
            ));
        }
        let inner = device.clone().without_autodiff();
        self.weights = match state.get("odc.loss_weight") {
            Some(w) if w.data.len() == k => w.data.clone(),
            _ => class_weights(&labels, k, self.config.reweight_pow),
        };
        self.memory = Some(OdcMemory::from_parts(
            bank.to_tensor(&inner),
            labels,
            centroids.to_tensor(&inner),
        ));
        Ok(())
    }
}
