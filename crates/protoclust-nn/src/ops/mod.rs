//! Numerical operations shared by methods.

pub mod normalize;
pub mod sinkhorn;

pub use normalize::l2_normalize;
pub use sinkhorn::{sinkhorn, SinkhornMode};
