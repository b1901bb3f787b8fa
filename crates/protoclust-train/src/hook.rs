//! The step hook: a caller's function run after every training step, which may stop the run.

use std::ops::ControlFlow;
use std::sync::Arc;

/// One finished training step, as the step hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct StepEvent<'a> {
    /// Global iterations done, this step included.
    pub iteration: u64,
    /// Iterations of the whole run.
    pub total: u64,
    /// The epoch this step belongs to.
    pub epoch: u64,
    /// The step's loss (the ranks' mean).
    pub loss: f64,
    /// The learning rate the step used.
    pub lr: f64,
    /// Images per second since the last metrics line.
    pub img_per_s: f64,
    /// The method's own metrics of this step.
    pub metrics: &'a [(String, f64)],
}

/// Called on the training thread after every step; `Break` stops the run once `last` is
/// written, so that `--resume` continues it as if it had not stopped.
pub type StepHook = Arc<dyn Fn(&StepEvent) -> ControlFlow<()> + Send + Sync>;
