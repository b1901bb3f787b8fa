//! Evaluation of learned representations: feature extraction, weighted kNN (and its sweep),
//! linear probe, semi-supervised fine-tuning, clustering metrics,
//! unsupervised segmentation (Hungarian-matched pixel clusters), and export of backbone weights
//! under torchvision's parameter names.

pub mod accuracy;
pub mod classifier_view;
pub mod cluster_metrics;
pub mod error;
pub mod export;
pub mod features;
pub mod knn;
pub mod linear;
pub mod onnx;
pub mod prototype_regions;
pub mod record;
pub mod segment;
pub mod segment_png;
pub mod semisup;

pub use accuracy::Accuracy;
pub use cluster_metrics::{cluster_agreement, ClusterAgreement};
pub use error::EvalError;
pub use features::{extract, extract_each, extract_trunk, extract_with, FeatureBatch, Features};
pub use knn::{knn_classify, sweep_settings, KnnResult};
pub use linear::{linear_probe, linear_probe_features, LinearProbeConfig, LinearProbeResult};
pub use segment::{segment_eval, segment_eval_prototypes, Matching, SegmentConfig, SegmentResult};
pub use semisup::{semi_supervised, SemiSupConfig, SemiSupResult};
