//! Backbones, heads and numerical operations shared by every protoclust method.
//!
//! Tensors come from burn 0.22, which dispatches on the [`burn::tensor::Device`]: model code
//! here has no backend type parameter, and the same code runs on `flex`, `tch` or `cuda`.

pub mod backbone;
pub mod cluster;
pub mod collective;
pub mod ema;
pub mod heads;
pub mod infer;
pub mod init;
pub mod io;
pub mod kernels;
pub mod layers;
pub mod named;
pub mod ops;
pub mod optim;
pub mod precision;
pub mod running;
pub mod stats;

pub use burn;
