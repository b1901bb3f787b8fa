//! The released JigClu checkpoint (dvlab-research/JigsawClustering `JigClu_200e.pth`:
//! `state_dict` with `module.encoder.`): trunk, `fc_clu` (Linear-ReLU-Linear) and `fc_loc`.

use super::JigCluConfig;
use crate::official::{linear, sequential_mlp, trunk, under, Entry, OfficialError, Released};

/// The release's architecture as our config and the table of every tensor our model takes.
pub fn release(src: &Released) -> Result<(JigCluConfig, Vec<Entry>), OfficialError> {
    let (backbone, table) = trunk(src, "")?;
    let mut table = under(table, "backbone.");
    let c = backbone.out_dim();
    let head = sequential_mlp(src, "fc_clu", "heads.clu", c)?;
    let (hidden, dim) = (head.config.hidden, head.config.out_dim);
    if hidden != [c] {
        return Err(OfficialError::Architecture(format!(
            "`fc_clu` has hidden widths {hidden:?}, expected [{c}] (Linear-ReLU-Linear)"
        )));
    }
    table.extend(head.entries);
    let positions = src.dim("fc_loc.weight", 0)?;
    let grid = (1..=8).find(|m| m * m == positions).ok_or_else(|| {
        OfficialError::Architecture(format!(
            "`fc_loc.weight` has {positions} rows, expected m² positions of an m × m montage"
        ))
    })?;
    table.extend(linear("fc_loc", "heads.loc", c, positions));
    let mut config = JigCluConfig {
        backbone,
        dim,
        ..Default::default()
    };
    config.views.grid = grid;
    Ok((config, table))
}
