//! Numerical operations shared by methods.

pub mod gelu;
pub mod host;
pub mod normalize;
pub mod resize;
pub mod roi_align;
pub mod rows;
pub mod sinkhorn;
pub mod topk;

pub use gelu::gelu;
pub use normalize::l2_normalize;
pub use resize::{adaptive_avg_pool, resize_bilinear};
pub use roi_align::{roi_align_flip, RoiBox};
pub use rows::rows;
pub use sinkhorn::{sinkhorn, SinkhornMode};
pub use topk::top_k_rows;
