//! Optimisers (SGD, LARS/LARC, AdamW) with parameter groups, and learning-rate schedules.
//!
//! burn's SGD defaults to dampening 0.1 and has no LARS; the update rules here follow PyTorch's
//! `torch.optim.SGD`/`AdamW` and apex's LARC (as SwAV uses it) exactly. State is kept per
//! parameter path, so it checkpoints by name.

pub mod config;
pub mod loss_scale;
pub mod optimizer;
pub mod schedule;

pub use config::{GroupConfig, LarsConfig, OptimConfig, OptimKind};
pub use optimizer::Optimizer;
pub use schedule::{Schedule, ScheduleConfig, ScheduleKind};
