//! Numerical operations shared by methods.

pub mod host;
pub mod normalize;
pub mod rows;
pub mod sinkhorn;

pub use normalize::l2_normalize;
pub use rows::rows;
pub use sinkhorn::{sinkhorn, SinkhornMode};
