//! Jigsaw Clustering (Chen, Liu, Jia, CVPR 2021): one forward pass per image over montages of
//! patches from different images, a clustering branch and a location branch.

pub mod config;
pub mod decouple;
pub mod loss;
pub mod method;
pub mod model;
pub mod montage;
pub mod official;

pub use config::JigCluConfig;
pub use decouple::{decouple, decoupled_rows, upsample_side};
pub use loss::{jigsaw_labels, sup_clu_loss};
pub use method::JigClu;
pub use model::{JigCluHeads, JigCluLosses, JigCluModel};
pub use montage::{draw_permutation, montage};
