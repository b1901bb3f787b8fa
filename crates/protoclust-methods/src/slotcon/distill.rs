//! DINO-style self-distillation between score maps, and its centre.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::Tensor;
use protoclust_nn::collective::global_batch::row_span;
use protoclust_nn::collective::{Collective, World};

/// N × K × H × W maps as (N·H·W) × K pixel rows in (n, h, w) order.
pub fn pixel_rows(x: Tensor<4>) -> Tensor<2> {
    let [n, k, h, w] = x.dims();
    x.permute([0, 2, 3, 1]).reshape([n * h * w, k])
}

/// Mean over rows of Σ_k −softmax((k − center)/t_teacher) · log_softmax(q/t_student); the
/// teacher side carries no gradient.
pub fn self_distill(
    q: Tensor<2>,
    k: Tensor<2>,
    center: Tensor<2>,
    student_temp: f64,
    teacher_temp: f64,
) -> Tensor<1> {
    let target = softmax((k - center).div_scalar(teacher_temp), 1).detach();
    let logp = log_softmax(q.div_scalar(student_temp), 1);
    (target * logp).sum_dim(1).mean().neg()
}

/// center·m + mean over the rows of `teacher_rows` on every rank of `world`·(1 − m) (the
/// official all-reduced batch centre).
pub fn update_center(
    center: Tensor<2>,
    teacher_rows: Tensor<2>,
    momentum: f64,
    world: &World,
) -> Tensor<2> {
    let rows = teacher_rows.detach();
    let mean = if world.world_size() == 1 {
        rows.mean_dim(0)
    } else {
        let total = row_span(world, rows.dims()[0]).total;
        world
            .all_reduce_sum(rows.sum_dim(0))
            .div_scalar(total as f64)
    };
    center.mul_scalar(momentum) + mean.mul_scalar(1.0 - momentum)
}
