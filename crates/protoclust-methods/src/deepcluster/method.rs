//! DeepCluster as a [`Method`]: cluster the whole data set at every epoch start, re-initialise
//! the classifier, train one epoch of (optionally re-weighted) cross-entropy on the labels.

use super::config::DeepClusterConfig;
use super::sampler::uniform_over_clusters;
use crate::method::{EpochContext, HeadOutputs, Method, MethodError, StepContext, StepOutput};
use crate::odc::method::size_stats;
use crate::pseudo::neck::normal_linear;
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
use protoclust_nn::collective::World;
use protoclust_nn::init::Init;
use protoclust_nn::layers::LinearExt;
use protoclust_nn::named::HostTensor;
use std::collections::BTreeMap;
use std::sync::Arc;

/// DeepCluster with the current epoch's pseudo-labels.
pub struct DeepCluster {
    config: DeepClusterConfig,
    labels: Option<Vec<usize>>,
    weights: Option<Vec<f32>>,
    world: World,
}

impl DeepCluster {
    /// DeepCluster before its first clustering.
    pub fn new(config: DeepClusterConfig) -> Self {
        Self {
            config,
            labels: None,
            weights: None,
            world: World::Single,
        }
    }

    /// The same method as one rank of `world`: rank 0's clustering on every rank (so the
    /// labels and the uniform sampler's order agree), the loss one process's mean over the
    /// global batch.
    pub fn in_world(mut self, world: World) -> Self {
        self.world = world;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &DeepClusterConfig {
        &self.config
    }

    fn set_labels(&mut self, labels: Vec<usize>) {
        self.weights = (self.config.reweight_pow > 0.0)
            .then(|| class_weights(&labels, self.config.clusters, self.config.reweight_pow));
        self.labels = Some(labels);
    }
}

impl Method for DeepCluster {
    type Model = PseudoLabelModel;

    fn name(&self) -> &'static str {
        "deepcluster"
    }

    fn views(&self) -> Arc<dyn ViewBuilder> {
        Arc::new(self.config.views.clone())
    }

    fn init_model(&self, seed: u64, device: &Device) -> Result<PseudoLabelModel, MethodError> {
        PseudoLabelModel::for_method(
            "deepcluster",
            &self.config.backbone,
            self.config.neck.as_ref(),
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
        mut model: PseudoLabelModel,
        ctx: &EpochContext<'_>,
    ) -> Result<PseudoLabelModel, MethodError> {
        let (_, res) = cluster_training_set(
            &model,
            ctx,
            self.config.clusters,
            &self.config.clustering,
            mix_seed(&[ctx.seed, ctx.epoch, 0xdc]),
            &self.world,
        )?;
        self.set_labels(res.labels);
        // The cluster ids mean something new each epoch: a fresh classifier.
        let dim = model.classifier.weight.dims()[0];
        let mut init = Init::new(mix_seed(&[ctx.seed, ctx.epoch, 0xc1a5]), &ctx.device);
        model.classifier = normal_linear(dim, self.config.clusters, 0.01, &mut init);
        Ok(model)
    }

    fn reinitialized_params(&self) -> Vec<String> {
        vec!["classifier.".into()]
    }

    fn epoch_order(&self, epoch: u64, seed: u64) -> Option<Vec<usize>> {
        let labels = self.labels.as_ref()?;
        self.config.uniform_sampling.then(|| {
            uniform_over_clusters(labels, self.config.clusters, mix_seed(&[seed, epoch, 0x5a]))
        })
    }

    fn forward(
        &mut self,
        model: &PseudoLabelModel,
        views: &[Tensor<4>],
        batch: &Batch,
        ctx: &StepContext,
    ) -> Result<StepOutput, MethodError> {
        let labels = self.labels.as_ref().ok_or_else(|| {
            MethodError::State("DeepCluster has no pseudo-labels (no epoch start ran)".into())
        })?;
        let out = model.forward(
            views[0].clone(),
            Some(DropoutDraw {
                seed: mix_seed(&[ctx.seed, ctx.iteration, 0xd20]),
                first_row: row_span(&self.world, batch.len()).offset,
            }),
        );
        let targets: Vec<usize> = batch.indices.iter().map(|&i| labels[i]).collect();
        let acc = crate::pseudo::top1_accuracy(out.logits.clone(), &targets);
        let loss = global_weighted_cross_entropy(
            out.logits,
            &targets,
            self.weights.as_deref(),
            &self.world,
        );
        let mut sizes = vec![0usize; self.config.clusters];
        labels.iter().for_each(|&l| sizes[l] += 1);
        let mut metrics = vec![("acc".to_string(), acc)];
        metrics.extend(size_stats(&sizes));
        Ok(StepOutput {
            loss,
            metrics,
            assignments: targets,
            watch: Vec::new(),
        })
    }

    fn pseudo_labels(&self) -> Option<&[usize]> {
        self.labels.as_deref()
    }

    fn state(&self) -> BTreeMap<String, HostTensor> {
        let mut s = BTreeMap::new();
        if let Some(l) = &self.labels {
            s.insert(
                "deepcluster.labels".into(),
                HostTensor {
                    shape: vec![l.len()],
                    data: l.iter().map(|&v| v as f32).collect(),
                },
            );
        }
        s
    }

    fn load_state(
        &mut self,
        state: &BTreeMap<String, HostTensor>,
        _device: &Device,
    ) -> Result<(), MethodError> {
        match state.get("deepcluster.labels") {
            Some(l) => {
                let labels: Vec<usize> = l.data.iter().map(|&v| v as usize).collect();
                if labels.iter().any(|&v| v >= self.config.clusters) {
                    return Err(MethodError::State(
                        "saved DeepCluster labels exceed the cluster count".into(),
                    ));
                }
                self.set_labels(labels);
            }
            None => self.labels = None,
        }
        Ok(())
    }
}
