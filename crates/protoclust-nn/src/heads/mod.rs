//! Heads placed on top of a backbone: MLP projector and prototype layer.

pub mod mlp;
pub mod prototypes;

pub use mlp::{Mlp, MlpConfig};
pub use prototypes::Prototypes;
