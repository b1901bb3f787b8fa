//! The released SlotCon checkpoints (CVMI-Lab/SlotCon `ckpt_epoch_E.pth`: `model` with
//! `module.`): student (`encoder_q`, `projector_q`, `grouping_q`), teacher (`encoder_k`,
//! `projector_k`, `grouping_k`: what the authors evaluate), `predictor_slot` and the teacher's
//! running `center`.

use super::SlotConConfig;
use crate::official::{
    batch_norm, conv_bias, linear, matrix, trunk, under, Entry, OfficialError, Released,
};

/// Tables of the model's tensors and of the method state (`center`).
pub struct SlotConTables {
    /// Model tensors.
    pub model: Vec<Entry>,
    /// Method state tensors.
    pub state: Vec<Entry>,
}

/// `DINOHead2d` (`mlp.{0,1,3,4,6}`: 1 × 1 conv, BN2d, GELU, ...) into our dense projector.
fn projector(official: &str, ours: &str, c: usize, hidden: usize, out: usize) -> Vec<Entry> {
    let mut t = conv_bias(
        &format!("{official}.mlp.0"),
        &format!("{ours}.convs.0"),
        [hidden, c, 1, 1],
    );
    t.extend(batch_norm(
        &format!("{official}.mlp.1"),
        &format!("{ours}.norms.0"),
        hidden,
    ));
    t.extend(conv_bias(
        &format!("{official}.mlp.3"),
        &format!("{ours}.convs.1"),
        [hidden, hidden, 1, 1],
    ));
    t.extend(batch_norm(
        &format!("{official}.mlp.4"),
        &format!("{ours}.norms.1"),
        hidden,
    ));
    t.extend(conv_bias(
        &format!("{official}.mlp.6"),
        &format!("{ours}.convs.2"),
        [out, hidden, 1, 1],
    ));
    t
}

/// The release's architecture as our config and its tables. A release without the student
/// (`encoder_q`) is refused: the teacher alone is a backbone-only file.
pub fn release(src: &Released) -> Result<(SlotConConfig, SlotConTables), OfficialError> {
    let (backbone, teacher_trunk) = trunk(src, "encoder_k.")?;
    let (student_cfg, student_trunk) = trunk(src, "encoder_q.")?;
    if student_cfg != backbone {
        return Err(OfficialError::Architecture(format!(
            "the student's trunk ({student_cfg:?}) differs from the teacher's ({backbone:?})"
        )));
    }
    let c = backbone.out_dim();
    let hidden = src.dim("projector_k.mlp.0.weight", 0)?;
    let out = src.dim("projector_k.mlp.6.weight", 0)?;
    let k = src.dim("grouping_k.slot_embed.weight", 0)?;
    let predictor_hidden = src.dim("predictor_slot.mlp.0.weight", 0)?;
    let mut model = Vec::new();
    for (side, ours, t) in [
        ("k", "teacher", teacher_trunk),
        ("q", "student", student_trunk),
    ] {
        model.extend(under(t, &format!("{ours}.backbone.")));
        model.extend(projector(
            &format!("projector_{side}"),
            &format!("{ours}.projector"),
            c,
            hidden,
            out,
        ));
        model.extend(matrix(
            &format!("grouping_{side}.slot_embed.weight"),
            &format!("{ours}.prototypes"),
            k,
            out,
        ));
    }
    let p = "predictor_slot.mlp";
    model.extend(linear(
        &format!("{p}.0"),
        "predictor.fc0",
        out,
        predictor_hidden,
    ));
    model.extend(batch_norm(
        &format!("{p}.1"),
        "predictor.bn0",
        predictor_hidden,
    ));
    model.extend(linear(
        &format!("{p}.3"),
        "predictor.fc1",
        predictor_hidden,
        predictor_hidden,
    ));
    model.extend(batch_norm(
        &format!("{p}.4"),
        "predictor.bn1",
        predictor_hidden,
    ));
    model.extend(linear(
        &format!("{p}.6"),
        "predictor.fc2",
        predictor_hidden,
        out,
    ));
    let state = matrix("center", "slotcon.center", 1, k);
    let mut config = SlotConConfig {
        backbone,
        prototypes: k,
        ..Default::default()
    };
    config.projector.hidden = hidden;
    config.projector.out_dim = out;
    config.predictor.hidden = predictor_hidden;
    Ok((config, SlotConTables { model, state }))
}
