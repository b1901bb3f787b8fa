//! The contract between the training engine and a method.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use protoclust_data::loader::Batch;
use protoclust_data::views::ViewBuilder;
use protoclust_nn::backbone::ResNet;
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
}

/// A self-supervised method: its model, views, loss and state hooks.
pub trait Method: Send {
    /// The trainable network (backbone and heads).
    type Model: Module + protoclust_nn::running::SyncRunningStats + 'static;

    /// Short name, as in configs and logs.
    fn name(&self) -> &'static str;
    /// The views each sample is turned into.
    fn views(&self) -> Arc<dyn ViewBuilder>;
    /// Builds a freshly initialised model.
    fn init_model(&self, seed: u64, device: &Device) -> Result<Self::Model, MethodError>;
    /// The backbone inside the model (for evaluation and export).
    fn backbone(model: &Self::Model) -> &ResNet;
    /// Number of clusters/prototypes, when the method has them.
    fn num_clusters(&self) -> Option<usize> {
        None
    }
    /// Called at the start of every epoch (also when resuming mid-epoch).
    fn on_epoch_start(&mut self, _epoch: u64) {}
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
