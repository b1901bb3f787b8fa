//! SwAV (Caron et al., NeurIPS 2020): swapped prediction of Sinkhorn codes across crops.

pub mod config;
pub mod loss;
pub mod method;
pub mod model;
pub mod official;
pub mod queue;

pub use config::SwavConfig;
pub use loss::{swav_loss, SwavLoss, SwavLossParams};
pub use method::Swav;
pub use model::SwavModel;
pub use queue::SwavQueue;
