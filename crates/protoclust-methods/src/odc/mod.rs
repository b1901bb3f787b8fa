//! Online Deep Clustering (Zhan et al., CVPR 2020), after OpenSelfSup's implementation.

pub mod config;
pub mod memory;
pub mod method;
pub mod official;

pub use config::OdcConfig;
pub use memory::{OdcMemory, SmallClusterReport, Split};
pub use method::Odc;
