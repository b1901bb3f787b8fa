//! The released ODC checkpoint of mmselfsup (`odc_resnet50_8xb64-steplr-440e_in1k_*.pth`:
//! `state_dict` with `backbone.`, `neck.fc0`/`bn0` (affine=False)/`fc1`, `head.fc_cls`).

use super::OdcConfig;
use crate::official::{
    batch_norm_stats, identity_affine, linear, trunk, under, Constant, Entry, OfficialError,
    Released,
};

/// The release's architecture as our config, the table of every tensor our model takes, and
/// the neck BatchNorm's identity affine parameters (`affine=False` in the release).
pub fn release(src: &Released) -> Result<(OdcConfig, Vec<Entry>, Vec<Constant>), OfficialError> {
    let (backbone, table) = trunk(src, "backbone.")?;
    let mut table = under(table, "backbone.");
    let c = backbone.out_dim();
    let hidden = src.dim("neck.fc0.weight", 0)?;
    let out = src.dim("neck.fc1.weight", 0)?;
    let clusters = src.dim("head.fc_cls.weight", 0)?;
    table.extend(linear("neck.fc0", "neck.fc0", c, hidden));
    table.extend(batch_norm_stats("neck.bn0", "neck.bn0", hidden));
    table.extend(linear("neck.fc1", "neck.fc1", hidden, out));
    table.extend(linear("head.fc_cls", "classifier", out, clusters));
    let mut config = OdcConfig {
        backbone,
        clusters,
        ..Default::default()
    };
    config.neck.hidden = hidden;
    config.neck.out_dim = out;
    Ok((config, table, identity_affine("neck.bn0", hidden)))
}
