//! Pieces shared by the pseudo-label methods (ODC, DeepCluster): the classifier network,
//! ODC's neck, class re-weighting and the weighted cross-entropy.

pub mod clustering;
pub mod loss;
pub mod model;
pub mod neck;

pub use clustering::{cluster_features, cluster_training_set, ClusteringConfig};
pub use loss::{
    class_weights, global_weighted_cross_entropy, top1_accuracy, weighted_cross_entropy,
};
pub use model::{PseudoLabelForward, PseudoLabelModel};
pub use neck::{DropoutDraw, Neck, NeckConfig};
