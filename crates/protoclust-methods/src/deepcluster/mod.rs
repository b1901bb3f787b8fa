//! DeepCluster (Caron et al., ECCV 2018): offline k-means pseudo-labels every epoch.

pub mod config;
pub mod method;
pub mod sampler;

pub use config::DeepClusterConfig;
pub use method::DeepCluster;
pub use sampler::uniform_over_clusters;
