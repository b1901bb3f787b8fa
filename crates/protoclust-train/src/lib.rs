//! The training engine: the loop that drives any [`protoclust_methods::Method`] through
//! data → views → model → loss → optimiser, with checkpoints, metrics and online monitors.

pub mod checkpoint;
pub mod cluster_stats;
pub mod engine;
pub mod hook;
pub mod metrics;
pub mod monitor;
pub mod step;
pub mod tensorboard;

pub use checkpoint::{Checkpoint, CheckpointMeta, Provenance};
pub use engine::{train, InitFrom, RunSummary, TrainError, TrainOptions};
pub use hook::{StepEvent, StepHook};
pub use protoclust_nn::optim;
