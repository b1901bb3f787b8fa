//! DeepCluster-v2 (Caron et al. 2020, released with SwAV: `main_deepclusterv2.py`): spherical
//! k-means per head on a memory bank of the last epoch's embeddings, the centroids as the
//! prototypes, cross-entropy of every crop against its image's cluster.
//!
//! The numerics are checked against the official code's fixtures
//! (`crates/protoclust/tests/fixtures/deepclusterv2`, made by `scripts/fixtures/deepclusterv2.py`).

pub mod bank;
pub mod config;
pub mod init;
pub mod kmeans;
pub mod loss;
pub mod method;
pub mod model;
pub mod official;

pub use bank::MemoryBank;
pub use config::DeepClusterV2Config;
pub use init::MemoryInit;
pub use kmeans::{cluster_bank, dataset_targets, BankClustering, IGNORE};
pub use loss::deepclusterv2_loss;
pub use method::DeepClusterV2;
pub use model::{DeepClusterV2Forward, DeepClusterV2Model};
