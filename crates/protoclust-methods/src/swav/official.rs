//! The released SwAV checkpoints (facebookresearch/swav `*_pretrain.pth.tar`, `src/resnet50.py`;
//! mmselfsup's SwAV under `backbone.`/`neck.projection_neck`; lightly's `SwaVPrototypes` with
//! its bias; solo-learn's weight-normed prototypes; VISSL's `SwAVPrototypesHead`): trunk,
//! projection head (Linear-BN-ReLU-Linear) and prototypes as our [`SwavConfig`] and its table.

use super::SwavConfig;
use crate::official::{
    matrix, sequential_mlp, trunk, under, vector, weight_normed, Constant, Entry, OfficialError,
    Released,
};

/// How a release stores SwAV's prototype matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrototypeLayer<'a> {
    /// A bias-free `nn.Linear`'s weight (K × D) at this name.
    Plain(&'a str),
    /// An `nn.Linear` with a bias, under this module name (lightly).
    Biased(&'a str),
    /// `nn.utils.weight_norm` of a bias-free `nn.Linear`, under this module name (solo-learn).
    WeightNormed(&'a str),
}

/// Where a release keeps SwAV's parts, under the file's prefix.
pub struct SwavNames<'a> {
    /// The trunk's prefix (`""` for the official files once `module.` is removed).
    pub trunk: &'a str,
    /// The projection head's `nn.Sequential`.
    pub head: &'a str,
    /// The prototype layer.
    pub prototypes: PrototypeLayer<'a>,
}

/// The official repository's names.
pub const OFFICIAL: SwavNames<'static> = SwavNames {
    trunk: "",
    head: "projection_head",
    prototypes: PrototypeLayer::Plain("prototypes.weight"),
};

/// The release's architecture as our config (the paper's training defaults otherwise), the
/// table of every tensor our model takes from it, and the tensors it fixes (bias-free Linears).
pub fn release(
    src: &Released,
    names: &SwavNames,
) -> Result<(SwavConfig, Vec<Entry>, Vec<Constant>), OfficialError> {
    let (backbone, table) = trunk(src, names.trunk)?;
    let mut table = under(table, "backbone.");
    let head = sequential_mlp(src, names.head, "projector", backbone.out_dim())?;
    table.extend(head.entries);
    let out_dim = head.config.out_dim;
    let (k, bias) = match names.prototypes {
        PrototypeLayer::Plain(key) => {
            let k = src.dim(key, 0)?;
            table.extend(matrix(key, "prototypes.weight", k, out_dim));
            (k, false)
        }
        PrototypeLayer::Biased(module) => {
            let key = format!("{module}.weight");
            let k = src.dim(&key, 0)?;
            table.extend(matrix(&key, "prototypes.weight", k, out_dim));
            table.extend(vector(&format!("{module}.bias"), "prototypes.bias", k));
            (k, true)
        }
        PrototypeLayer::WeightNormed(module) => {
            let k = src.dim(&format!("{module}.weight_v"), 0)?;
            table.extend(weight_normed(module, "prototypes.weight", k, out_dim));
            (k, false)
        }
    };
    let config = SwavConfig {
        backbone,
        projector: head.config,
        prototypes: k,
        prototype_bias: bias,
        ..Default::default()
    };
    Ok((config, table, head.constants))
}
