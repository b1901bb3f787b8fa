//! The released DeepCluster-v2 checkpoints (facebookresearch/swav
//! `deepclusterv2_*_pretrain.pth.tar`: SwAV's trunk and projection head, and `MultiPrototypes`,
//! `prototypes.prototypes{i}.weight`, the k-means centroids of each head; solo-learn's
//! `prototypes.{i}.weight`; VISSL's multi-head `SwAVPrototypesHead`, `prototypes{i}.weight`).

use super::DeepClusterV2Config;
use crate::official::{
    matrix, sequential_mlp, trunk, under, Constant, Entry, OfficialError, Released,
};

/// Where a release keeps DeepCluster-v2's parts, under the file's prefix.
pub struct DeepClusterV2Names<'a> {
    /// The trunk's prefix.
    pub trunk: &'a str,
    /// The projection head's `nn.Sequential`.
    pub head: &'a str,
    /// Head `i`'s prototype matrix is `{prototypes}{i}.weight`.
    pub prototypes: &'a str,
}

/// The official repository's names.
pub const OFFICIAL: DeepClusterV2Names<'static> = DeepClusterV2Names {
    trunk: "",
    head: "projection_head",
    prototypes: "prototypes.prototypes",
};

/// The release's architecture as our config, the table of every tensor our model takes, and
/// the tensors it fixes (bias-free Linears).
pub fn release(
    src: &Released,
    names: &DeepClusterV2Names,
) -> Result<(DeepClusterV2Config, Vec<Entry>, Vec<Constant>), OfficialError> {
    let (backbone, table) = trunk(src, names.trunk)?;
    let mut table = under(table, "backbone.");
    let head = sequential_mlp(src, names.head, "projector", backbone.out_dim())?;
    table.extend(head.entries);
    let out_dim = head.config.out_dim;
    let mut prototypes = Vec::new();
    let key = |i: usize| format!("{}{i}.weight", names.prototypes);
    while src.has(&key(prototypes.len())) {
        let i = prototypes.len();
        let k = src.dim(&key(i), 0)?;
        table.extend(matrix(
            &key(i),
            &format!("prototypes.heads.{i}.weight"),
            k,
            out_dim,
        ));
        prototypes.push(k);
    }
    if prototypes.is_empty() {
        return Err(OfficialError::Missing(key(0)));
    }
    let config = DeepClusterV2Config {
        backbone,
        projector: head.config,
        prototypes,
        ..Default::default()
    };
    Ok((config, table, head.constants))
}
