//! The released DeepCluster-v2 checkpoints (facebookresearch/swav
//! `deepclusterv2_*_pretrain.pth.tar`): SwAV's trunk and projection head, and
//! `MultiPrototypes` (`prototypes.prototypes{i}.weight`, the k-means centroids of each head).

use super::DeepClusterV2Config;
use crate::official::{matrix, sequential_mlp, trunk, under, Entry, OfficialError, Released};
use protoclust_nn::heads::MlpConfig;

/// The release's architecture as our config and the table of every tensor our model takes.
pub fn release(src: &Released) -> Result<(DeepClusterV2Config, Vec<Entry>), OfficialError> {
    let (backbone, table) = trunk(src, "")?;
    let mut table = under(table, "backbone.");
    let (hidden, out_dim, batch_norm, head) =
        sequential_mlp(src, "projection_head", "projector", backbone.out_dim())?;
    table.extend(head);
    let mut prototypes = Vec::new();
    while src.has(&format!("prototypes.prototypes{}.weight", prototypes.len())) {
        let i = prototypes.len();
        let key = format!("prototypes.prototypes{i}.weight");
        let k = src.dim(&key, 0)?;
        table.extend(matrix(
            &key,
            &format!("prototypes.heads.{i}.weight"),
            k,
            out_dim,
        ));
        prototypes.push(k);
    }
    if prototypes.is_empty() {
        return Err(OfficialError::Missing(
            "prototypes.prototypes0.weight".into(),
        ));
    }
    let config = DeepClusterV2Config {
        backbone,
        projector: MlpConfig {
            hidden,
            out_dim,
            batch_norm,
        },
        prototypes,
        ..Default::default()
    };
    Ok((config, table))
}
