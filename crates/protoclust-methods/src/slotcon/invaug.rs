//! Inverse augmentation (RoIAlign of each view's maps over the views' intersection, then
//! undoing the flip) and the grouping loss built on it.

use super::distill::{distill_to, pixel_rows, teacher_target, update_center, TeacherCentering};
use burn::tensor::Tensor;
use protoclust_nn::collective::World;
use protoclust_nn::ops::{roi_align_flip, RoiBox};

/// The two views' common region: per sample, (x1, y1, x2, y2) in [0, 1] of each view's crop
/// (already mirrored for a flipped view) and whether the view was flipped.
#[derive(Debug, Clone, Default)]
pub struct ViewPair {
    /// `coords[v][b]`: intersection box of sample b in view v's normalised coordinates.
    pub coords: [Vec<[f32; 4]>; 2],
    /// `flags[v][b]`: view v of sample b was flipped.
    pub flags: [Vec<bool>; 2],
}

/// Temperatures and weights of the grouping loss.
#[derive(Debug, Clone, Copy)]
pub struct GroupLossParams {
    /// Student temperature (0.1).
    pub student_temp: f64,
    /// Teacher temperature (0.07).
    pub teacher_temp: f64,
    /// Centre EMA momentum (0.9).
    pub center_momentum: f64,
    /// λ: the grouping terms' weight (the contrast gets 1 − λ).
    pub group_weight: f64,
    /// How the teacher's scores become the target (the paper: mean centring).
    pub centering: TeacherCentering,
}

impl Default for GroupLossParams {
    fn default() -> Self {
        Self {
            student_temp: 0.1,
            teacher_temp: 0.07,
            center_momentum: 0.9,
            group_weight: 0.5,
            centering: TeacherCentering::Mean,
        }
    }
}

/// The official `SlotCon.invaug`: RoIAlign (aligned, map-size output) of each sample's map over
/// its box `coords` × (W, H, W, H), then a horizontal flip where `flags` is set.
pub fn invaug(x: Tensor<4>, coords: &[[f32; 4]], flags: &[bool]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let boxes: Vec<RoiBox> = coords
        .iter()
        .map(|c| RoiBox {
            x1: c[0] * w as f32,
            y1: c[1] * h as f32,
            x2: c[2] * w as f32,
            y2: c[3] * h as f32,
        })
        .collect();
    roi_align_flip(x, &boxes, flags, h, w)
}

/// The grouping loss of one step and the centre after it.
pub struct GroupLoss {
    /// λ·(term 0 + term 1).
    pub loss: Tensor<1>,
    /// [student view 1 vs teacher view 2, student view 2 vs teacher view 1].
    pub terms: [Tensor<1>; 2],
    /// EMA of the centre with the mean of the raw (un-aligned) teacher scores of both views.
    pub center_after: Tensor<2>,
}

/// The grouping-loss lines of `SlotCon.forward`, with the old `center` (its update over every
/// rank of `world`; each rank's rows are one image's aligned maps, so its mean is the global
/// batch's mean when the shards are equal).
pub fn group_loss(
    score_q: [Tensor<4>; 2],
    score_k: [Tensor<4>; 2],
    center: Tensor<2>,
    views: &ViewPair,
    p: &GroupLossParams,
    world: &World,
) -> GroupLoss {
    let aligned = |x: Tensor<4>, v: usize| pixel_rows(invaug(x, &views.coords[v], &views.flags[v]));
    let [q1, q2] = score_q;
    let [k1, k2] = score_k;
    let term = |q: Tensor<2>, k: Tensor<2>| {
        let target = teacher_target(k, center.clone(), p.teacher_temp, p.centering, world);
        distill_to(q, target, p.student_temp)
    };
    let t0 = term(aligned(q1, 0), aligned(k2.clone(), 1));
    let t1 = term(aligned(q2, 1), aligned(k1.clone(), 0));
    let raw = Tensor::cat(vec![pixel_rows(k1), pixel_rows(k2)], 0);
    let center_after = update_center(center, raw, p.center_momentum, world);
    GroupLoss {
        loss: (t0.clone() + t1.clone()).mul_scalar(p.group_weight),
        terms: [t0, t1],
        center_after,
    }
}
