//! Evaluation of learned representations: feature extraction, weighted kNN, linear probe,
//! unsupervised segmentation (Hungarian-matched pixel clusters), and export of backbone weights
//! under torchvision's parameter names.

pub mod cluster_metrics;
pub mod export;
pub mod features;
pub mod knn;
pub mod linear;
pub mod segment;
pub mod segment_png;

pub use cluster_metrics::{cluster_agreement, ClusterAgreement};
pub use features::{extract, extract_with, Features};
pub use knn::{knn_classify, KnnResult};
pub use linear::{linear_probe, LinearProbeConfig, LinearProbeResult};
pub use segment::{segment_eval, SegmentConfig, SegmentResult};
