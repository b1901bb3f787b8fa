//! The released SwAV checkpoints (facebookresearch/swav `*_pretrain.pth.tar`, `src/resnet50.py`;
//! mmselfsup's SwAV under `backbone.`/`neck.projection_neck`): trunk, `projection_head`
//! (Linear-BN-ReLU-Linear) and `prototypes.weight` as our [`SwavConfig`] and its table.

use super::SwavConfig;
use crate::official::{matrix, sequential_mlp, trunk, under, Entry, OfficialError, Released};
use protoclust_nn::heads::MlpConfig;

/// Where a release keeps SwAV's parts, under the file's prefix.
pub struct SwavNames<'a> {
    /// The trunk's prefix (`""` for the official files once `module.` is removed).
    pub trunk: &'a str,
    /// The projection head's `nn.Sequential`.
    pub head: &'a str,
    /// The prototype matrix (K × D).
    pub prototypes: &'a str,
}

/// The official repository's names.
pub const OFFICIAL: SwavNames<'static> = SwavNames {
    trunk: "",
    head: "projection_head",
    prototypes: "prototypes.weight",
};

/// The release's architecture as our config (the paper's training defaults otherwise) and the
/// table of every tensor our model takes from it.
pub fn release(
    src: &Released,
    names: &SwavNames,
) -> Result<(SwavConfig, Vec<Entry>), OfficialError> {
    let (backbone, table) = trunk(src, names.trunk)?;
    let mut table = under(table, "backbone.");
    let (hidden, out_dim, batch_norm, head) =
        sequential_mlp(src, names.head, "projector", backbone.out_dim())?;
    table.extend(head);
    let k = src.dim(names.prototypes, 0)?;
    table.extend(matrix(names.prototypes, "prototypes.weight", k, out_dim));
    let config = SwavConfig {
        backbone,
        projector: MlpConfig {
            hidden,
            out_dim,
            batch_norm,
        },
        prototypes: k,
        ..Default::default()
    };
    Ok((config, table))
}
