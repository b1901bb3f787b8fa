//! Clustering the whole data set's features (OpenSelfSup's `Kmeans.cluster`): optional PCA
//! whitening, L2 normalisation, k-means.

use super::PseudoLabelModel;
use crate::method::{EpochContext, MethodError};
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use protoclust_nn::cluster::{kmeans, pca_whiten, KMeansConfig, KMeansResult};
use protoclust_nn::collective::{Collective, World};
use protoclust_nn::ops::host::to_f32;
use serde::{Deserialize, Serialize};

/// How features are clustered into pseudo-labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusteringConfig {
    /// PCA-whiten to this many dimensions first (0: no PCA; DeepCluster uses 256, ODC none).
    pub pca_dim: usize,
    /// k-means settings (`k` is set from the method's cluster count).
    pub kmeans: KMeansConfig,
}

impl Default for ClusteringConfig {
    fn default() -> Self {
        Self {
            pca_dim: 0,
            kmeans: KMeansConfig {
                max_iterations: 20,
                ..Default::default()
            },
        }
    }
}

/// Whitens (optionally), normalises rows by (‖x‖ + 1e-10) and runs k-means with `k` clusters.
pub fn cluster_features(
    features: &Tensor<2>,
    k: usize,
    config: &ClusteringConfig,
    seed: u64,
) -> Result<KMeansResult, MethodError> {
    let x = if config.pca_dim > 0 {
        pca_whiten(features, config.pca_dim, 1e-5).map_err(|e| MethodError::Config {
            field: "clustering.pca_dim".into(),
            reason: e.to_string(),
        })?
    } else {
        features.clone()
    };
    let x = crate::odc::memory::odc_normalize(x);
    let cfg = KMeansConfig {
        k,
        seed,
        ..config.kmeans.clone()
    };
    kmeans(&x, &cfg).map_err(|e| MethodError::Data(e.to_string()))
}

/// Features of the whole training set from `model` in inference mode (N × D, data-set order)
/// and their clustering into `k` clusters. Every rank of `world` computes them (the model and
/// data are the same on all), then takes rank 0's features and labels, so the memories built
/// from them are identical on every rank whatever each host's float summation order.
pub fn cluster_training_set(
    model: &PseudoLabelModel,
    ctx: &EpochContext<'_>,
    k: usize,
    config: &ClusteringConfig,
    seed: u64,
    world: &World,
) -> Result<(Tensor<2>, KMeansResult), MethodError> {
    let net = model.valid();
    let features = ctx.data.run(&|x| net.features(x, None))?;
    let mut res = cluster_features(&features, k, config, seed)?;
    if world.world_size() == 1 {
        return Ok((features, res));
    }
    let dims = features.dims();
    let mut values = to_f32(features.clone());
    world.broadcast_host(&mut values, 0);
    let mut labels: Vec<f32> = res.labels.iter().map(|&l| l as f32).collect();
    world.broadcast_host(&mut labels, 0);
    res.labels = labels.into_iter().map(|l| l as usize).collect();
    let features = Tensor::from_data(TensorData::new(values, dims), &features.device());
    Ok((features, res))
}
