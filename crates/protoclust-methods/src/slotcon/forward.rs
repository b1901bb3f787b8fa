//! One SlotCon loss evaluation from the four projections (`SlotCon.forward` after the
//! encoders): grouping of both views by student and teacher, grouping loss, centre, contrast.

use super::contrast::slot_contrast;
use super::grouping::{semantic_grouping, Grouping};
use super::invaug::{group_loss, GroupLossParams, ViewPair};
use super::predictor::DinoHead;
use burn::tensor::Tensor;
use protoclust_nn::collective::World;

/// Hyper-parameters of the SlotCon loss.
#[derive(Debug, Clone, Copy)]
pub struct SlotConLossParams {
    /// Grouping-loss temperatures, centre momentum and λ.
    pub group: GroupLossParams,
    /// Temperature of the grouping attention (the official code uses the teacher's, 0.07).
    pub grouping_temp: f64,
    /// Contrast temperature τ (0.2).
    pub tau: f64,
}

impl Default for SlotConLossParams {
    fn default() -> Self {
        Self {
            group: GroupLossParams::default(),
            grouping_temp: 0.07,
            tau: 0.2,
        }
    }
}

/// What one SlotCon loss evaluation produced.
pub struct SlotConOutput {
    /// λ·Σ grouping terms + (1 − λ)·Σ contrast terms.
    pub loss: Tensor<1>,
    /// Grouping terms [q1 vs k2, q2 vs k1].
    pub group_terms: [Tensor<1>; 2],
    /// Contrast terms [q1 vs k2, q2 vs k1] (× 2τ included).
    pub ctr_terms: [Tensor<1>; 2],
    /// The centre after this step's EMA.
    pub center_after: Tensor<2>,
    /// Student groupings of views 1 and 2.
    pub student: [Grouping; 2],
    /// Teacher groupings of views 1 and 2.
    pub teacher: [Grouping; 2],
}

/// The teacher momentum at iteration `k` of `total`: 1 − (1 − base)·(cos(πk/total) + 1)/2.
pub fn teacher_momentum(base: f64, k: u64, total: u64) -> f64 {
    let t = k as f64 / total.max(1) as f64;
    1.0 - (1.0 - base) * ((std::f64::consts::PI * t).cos() + 1.0) / 2.0
}

/// The SlotCon loss from student projections `x` and teacher projections `y` (B × D × H × W
/// each; the teacher side carries no gradient), the student and (already updated) teacher
/// prototypes, the centre and the views' common regions; the centre and the contrast span every
/// rank of `world`.
#[allow(clippy::too_many_arguments)]
pub fn slotcon_loss(
    x: [Tensor<4>; 2],
    y: [Tensor<4>; 2],
    student_prototypes: Tensor<2>,
    teacher_prototypes: Tensor<2>,
    center: Tensor<2>,
    views: &ViewPair,
    predictor: &DinoHead,
    p: &SlotConLossParams,
    world: &World,
) -> SlotConOutput {
    let [x1, x2] = x;
    let [y1, y2] = y;
    let q1 = semantic_grouping(x1, student_prototypes.clone(), p.grouping_temp);
    let q2 = semantic_grouping(x2, student_prototypes, p.grouping_temp);
    let tp = teacher_prototypes.detach();
    let k1 = semantic_grouping(y1.detach(), tp.clone(), p.grouping_temp);
    let k2 = semantic_grouping(y2.detach(), tp, p.grouping_temp);
    let g = group_loss(
        [q1.dots.clone(), q2.dots.clone()],
        [k1.dots.clone().detach(), k2.dots.clone().detach()],
        center,
        views,
        &p.group,
        world,
    );
    let pred = |t: Tensor<2>| predictor.forward(t);
    let c0 = slot_contrast(
        q1.slots.clone(),
        k2.slots.clone().detach(),
        q1.dots.clone(),
        k2.dots.clone(),
        p.tau,
        &pred,
        world,
    )
    .loss;
    let c1 = slot_contrast(
        q2.slots.clone(),
        k1.slots.clone().detach(),
        q2.dots.clone(),
        k1.dots.clone(),
        p.tau,
        &pred,
        world,
    )
    .loss;
    let w = p.group.group_weight;
    let loss = g.loss + (c0.clone() + c1.clone()).mul_scalar(1.0 - w);
    SlotConOutput {
        loss,
        group_terms: g.terms,
        ctr_terms: [c0, c1],
        center_after: g.center_after,
        student: [q1, q2],
        teacher: [k1, k2],
    }
}
