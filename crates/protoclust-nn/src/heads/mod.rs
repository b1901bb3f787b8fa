//! Heads placed on top of a backbone: MLP projector, prototype layer and several of them.

pub mod mlp;
pub mod multi_prototypes;
pub mod prototypes;

pub use mlp::{Mlp, MlpConfig};
pub use multi_prototypes::MultiPrototypes;
pub use prototypes::Prototypes;
