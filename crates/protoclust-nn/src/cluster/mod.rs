//! Clustering of feature rows: k-means and PCA whitening.

pub mod kmeans;
pub mod pca;

pub use kmeans::{
    assign, kmeans, kmeans_from, KMeansConfig, KMeansError, KMeansInit, KMeansMetric, KMeansResult,
};
pub use pca::{pca_whiten, PcaError};
