//! The contract between the training engine and a method.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use protoclust_data::loader::Batch;
use protoclust_data::views::ViewBuilder;
use protoclust_nn::backbone::{ResNet, ResNetOutput};
use protoclust_nn::named::HostTensor;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where in the run a step happens.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// Global iteration (0-based), counted over all epochs.
    pub iteration: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Iterations per epoch.
    pub iters_per_epoch: usize,
    /// Device the step runs on (autodiff-enabled).
    pub device: Device,
    /// The run's seed (for per-step draws such as dropout masks).
    pub seed: u64,
}

/// A pass over the whole training set in inference mode (ODC's memory init, DeepCluster's
/// per-epoch clustering).
pub trait FeaturePass {
    /// Number of samples, i.e. rows of what [`FeaturePass::run`] returns.
    fn len(&self) -> usize;
    /// True when the data set is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Runs `f` on every sample's evaluation view and stacks the rows in data-set order
    /// (N × D on the non-autodiff device); rows of undecodable samples are zero.
    fn run(&self, f: &dyn Fn(Tensor<4>) -> Tensor<2>) -> Result<Tensor<2>, MethodError>;
}

/// What a [`BatchPass`] runs on each batch and its views.
pub type BatchVisitor<'v> = dyn FnMut(&Batch, &[Tensor<4>]) -> Result<(), MethodError> + 'v;

/// One pass over the training batches of the epoch about to start as this process's steps
/// load them (its share of every global batch, every view, in the loader's order), the
/// augmentations drawn apart from the steps' own (DeepCluster-v2's memory init).
pub trait BatchPass {
    /// Runs `f` on every batch and its views (uploaded to the training device), in order;
    /// stops at the first error.
    fn run(&self, f: &mut BatchVisitor<'_>) -> Result<(), MethodError>;
}

/// Where in the run an epoch starts, with access to the whole training set.
pub struct EpochContext<'a> {
    /// The epoch about to start (0-based).
    pub epoch: u64,
    /// The run's seed.
    pub seed: u64,
    /// Training device (autodiff-enabled).
    pub device: Device,
    /// Whole-data-set feature pass.
    pub data: &'a dyn FeaturePass,
    /// The epoch's training batches.
    pub batches: &'a dyn BatchPass,
}

/// What one forward pass produced.
pub struct StepOutput {
    /// Scalar loss to differentiate.
    pub loss: Tensor<1>,
    /// Scalars to log (name, value).
    pub metrics: Vec<(String, f64)>,
    /// Prototype each sample was assigned to (for cluster statistics), when the method has one.
    pub assignments: Vec<usize>,
    /// Tensors that must stay finite (e.g. Sinkhorn codes); summarised if one does not.
    pub watch: Vec<(String, Tensor<2>)>,
}

/// What a method's head makes of an inference batch, where it has such a head.
#[derive(Debug, Default)]
pub struct HeadOutputs {
    /// Embedding the method trains on (SwAV's normalised projection, ODC's neck output), N × E.
    pub embedding: Option<Tensor<2>>,
    /// Scores of the method's clusters or prototypes, N × K; the argmax is the assignment.
    pub scores: Option<Tensor<2>>,
}

/// Why a method step failed.
#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    /// Non-finite values appeared; the stats say where.
    #[error("non-finite values at iteration {iteration} in {what}:\n{details}")]
    NonFinite {
        /// Iteration of the failure.
        iteration: u64,
        /// The tensor that went bad.
        what: String,
        /// Statistics of the offending tensors, one per line.
        details: String,
    },
    /// A configuration value is out of range.
    #[error("{field}: {reason}")]
    Config {
        /// The offending field.
        field: String,
        /// What was expected.
        reason: String,
    },
    /// Saved method state does not fit this method's configuration.
    #[error("method state: {0}")]
    State(String),
    /// The whole-data-set pass or its clustering failed.
    #[error("{0}")]
    Data(String),
}

/// A self-supervised method: its model, views, loss and state hooks.
pub trait Method: Send {
    /// The trainable network (backbone and heads).
    type Model: Module + protoclust_nn::running::SyncRunningStats + Send + Sync + 'static;

    /// Short name, as in configs and logs.
    fn name(&self) -> &'static str;
    /// The views each sample is turned into.
    fn views(&self) -> Arc<dyn ViewBuilder>;
    /// Builds a freshly initialised model.
    fn init_model(&self, seed: u64, device: &Device) -> Result<Self::Model, MethodError>;
    /// The backbone inside the model (for evaluation and export).
    fn backbone(model: &Self::Model) -> &ResNet;
    /// The head's embedding and cluster scores of an inference batch, given the output of the
    /// method's evaluated backbone ([`Method::backbone`]) on it (model in inference mode,
    /// non-autodiff device); empty when the method has no such head.
    fn head_outputs(_model: &Self::Model, _trunk: &ResNetOutput) -> HeadOutputs {
        HeadOutputs::default()
    }
    /// Per-pixel prototype scores of the evaluated backbone's last map, N × K × h × w (the
    /// argmax over K is each pixel's prototype; same conditions as [`Method::head_outputs`]);
    /// `None` when the method has no prototypes.
    fn dense_scores(_model: &Self::Model, _trunk: &ResNetOutput) -> Option<Tensor<4>> {
        None
    }
    /// The method's prototype (or centroid) matrix, K × D, when it learns one (SwAV's, SlotCon's
    /// teacher's).
    fn prototypes(_model: &Self::Model) -> Option<Tensor<2>> {
        None
    }
    /// The per-prototype centre (K) the method subtracts from its dense scores before its
    /// teacher's assignment (SlotCon's running centre), when it keeps one.
    fn dense_center(&self) -> Option<Tensor<1>> {
        None
    }
    /// Number of clusters/prototypes, when the method has them.
    fn num_clusters(&self) -> Option<usize> {
        None
    }
    /// Called at the start of every epoch (not when resuming mid-epoch); may run a pass over
    /// the whole training set and change the model (e.g. re-initialise a classifier).
    fn on_epoch_start(
        &mut self,
        model: Self::Model,
        _ctx: &EpochContext<'_>,
    ) -> Result<Self::Model, MethodError> {
        Ok(model)
    }
    /// Parameter path prefixes whose optimiser state is cleared after [`Method::on_epoch_start`]
    /// (parameters it re-initialised).
    fn reinitialized_params(&self) -> Vec<String> {
        Vec::new()
    }
    /// The sample order of `epoch` when the method chooses it (DeepCluster's uniform sampling
    /// over clusters); None keeps the loader's own order.
    fn epoch_order(&self, _epoch: u64, _seed: u64) -> Option<Vec<usize>> {
        None
    }
    /// Current pseudo-label of every training sample, when the method keeps them.
    fn pseudo_labels(&self) -> Option<&[usize]> {
        None
    }
    /// Adjusts the model before the forward pass (e.g. re-normalising prototypes).
    fn before_forward(&mut self, model: Self::Model, _ctx: &StepContext) -> Self::Model {
        model
    }
    /// Forward pass and loss on one batch; `views[v]` is view position v as N × 3 × S × S.
    fn forward(
        &mut self,
        model: &Self::Model,
        views: &[Tensor<4>],
        batch: &Batch,
        ctx: &StepContext,
    ) -> Result<StepOutput, MethodError>;
    /// Edits gradients before the optimiser step (e.g. dropping frozen prototypes' gradients).
    fn filter_grads(&self, _grads: &mut GradientsParams, _model: &Self::Model, _ctx: &StepContext) {
    }
    /// Updates after the optimiser step (EMA teachers, memories).
    fn after_step(&mut self, model: Self::Model, _ctx: &StepContext) -> Self::Model {
        model
    }
    /// Method state that must survive a checkpoint (queues, memories), by name.
    fn state(&self) -> BTreeMap<String, HostTensor> {
        BTreeMap::new()
    }
    /// Restores what [`Method::state`] saved.
    fn load_state(
        &mut self,
        _state: &BTreeMap<String, HostTensor>,
        _device: &Device,
    ) -> Result<(), MethodError> {
        Ok(())
    }
}
