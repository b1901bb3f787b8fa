//! Evaluation of learned representations: feature extraction, weighted kNN, linear probe,
//! and export of backbone weights under torchvision's parameter names.

pub mod cluster_metrics;
pub mod export;
pub mod features;
pub mod knn;
pub mod linear;

pub use cluster_metrics::{cluster_agreement, ClusterAgreement};
pub use features::{extract, extract_with, Features};
pub use knn::{knn_classify, KnnResult};
pub use linear::{linear_probe, LinearProbeConfig, LinearProbeResult};
