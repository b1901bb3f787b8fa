//! DINO-style self-distillation between score maps, and its centre.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::Tensor;
use protoclust_nn::collective::global_batch::row_span;
use protoclust_nn::collective::{Collective, World};
use protoclust_nn::ops::{sinkhorn, SinkhornMode};
use serde::{Deserialize, Serialize};

/// How the teacher's pixel-to-prototype scores become the grouping loss's target.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeacherCentering {
    /// The paper's: softmax((scores − running centre) / T_teacher), as DINO.
    #[default]
    Mean,
    /// DINOv2's Sinkhorn-Knopp centering: equipartition codes of exp(scores / T_teacher) over
    /// the batch's pixel rows (3 iterations, every rank's rows); the centre is still kept.
    Sinkhorn,
    /// A partial equipartition: (1 − s) · the mean-centred target + s · the Sinkhorn-Knopp one,
    /// with s the Sinkhorn share in (0, 1) (`{ mixed = s }` in a config). Every prototype keeps
    /// about s / K of the target mass or more, while large regions keep most of theirs.
    Mixed(f64),
}

/// Iterations of the Sinkhorn-Knopp teacher centering (DINOv2's).
pub const SINKHORN_CENTERING_ITERATIONS: usize = 3;

/// The grouping loss's target for teacher score rows `k` ((N·H·W) × K), no gradient.
pub fn teacher_target(
    k: Tensor<2>,
    center: Tensor<2>,
    teacher_temp: f64,
    centering: TeacherCentering,
    world: &World,
) -> Tensor<2> {
    let mean = |k: Tensor<2>| softmax((k - center).div_scalar(teacher_temp), 1).detach();
    let equipartition = |k: Tensor<2>| {
        sinkhorn(
            k,
            teacher_temp,
            SINKHORN_CENTERING_ITERATIONS,
            SinkhornMode::Stable,
            world,
        )
    };
    match centering {
        TeacherCentering::Mean => mean(k),
        TeacherCentering::Sinkhorn => equipartition(k),
        TeacherCentering::Mixed(share) => {
            mean(k.clone()).mul_scalar(1.0 - share) + equipartition(k).mul_scalar(share)
        }
    }
}

/// Mean over rows of Σ_k −target · log_softmax(q/t_student) (the cross-entropy to a fixed
/// target).
pub fn distill_to(q: Tensor<2>, target: Tensor<2>, student_temp: f64) -> Tensor<1> {
    let logp = log_softmax(q.div_scalar(student_temp), 1);
    (target.detach() * logp).sum_dim(1).mean().neg()
}

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
    let target = teacher_target(
        k,
        center,
        teacher_temp,
        TeacherCentering::Mean,
        &World::Single,
    );
    distill_to(q, target, student_temp)
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// 8 pixel rows × 3 prototypes: prototypes 0 and 1 split the pixels with high, varied
    /// cosines; prototype 2 is "dead" (a constant low cosine on every pixel).
    fn dead_prototype_scores(device: &Device) -> Tensor<2> {
        let mut v = Vec::new();
        for i in 0..8 {
            let a = if i < 4 { 0.9 } else { 0.1 };
            v.extend_from_slice(&[a, 1.0 - a, -0.5]);
        }
        Tensor::from_data(TensorData::new(v, [8, 3]), device)
    }

    fn host(t: Tensor<2>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec().unwrap()
    }

    /// The grouping target of the dead-prototype case (centre: the rows' mean, T 0.04).
    fn dead_prototype_target(centering: TeacherCentering) -> Vec<f32> {
        let k = dead_prototype_scores(&Device::flex());
        let center = k.clone().mean_dim(0);
        host(teacher_target(k, center, 0.04, centering, &World::Single))
    }

    #[test]
    fn sinkhorn_centering_gives_every_prototype_its_share() {
        let mean = dead_prototype_target(TeacherCentering::Mean);
        let sk = dead_prototype_target(TeacherCentering::Sinkhorn);
        for t in [&mean, &sk] {
            for row in t.chunks(3) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
            }
        }
        let mass = |t: &[f32], j: usize| t.chunks(3).map(|r| r[j]).sum::<f32>();
        // Mean centring leaves the dead prototype without target mass: it stays dead.
        assert!(mass(&mean, 2) < 1e-3, "{mean:?}");
        // Sinkhorn-Knopp hands it close to its equal share (8 / 3 rows) after 3 iterations.
        for j in 0..3 {
            assert!((mass(&sk, j) - 8.0 / 3.0).abs() < 0.2, "{j}: {sk:?}");
        }
    }

    #[test]
    fn mixed_centering_blends_the_two_targets_and_keeps_the_dead_prototype_alive() {
        let mean = dead_prototype_target(TeacherCentering::Mean);
        let sk = dead_prototype_target(TeacherCentering::Sinkhorn);
        let share = 0.3;
        let mixed = dead_prototype_target(TeacherCentering::Mixed(share));
        for ((m, a), b) in mixed.iter().zip(&mean).zip(&sk) {
            let want = (1.0 - share as f32) * a + share as f32 * b;
            assert!((m - want).abs() < 1e-6, "{m} vs {want}");
        }
        for row in mixed.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
        }
        // The dead prototype keeps about the share's part of its equal share (0.3 · 8 / 3).
        let dead: f32 = mixed.chunks(3).map(|r| r[2]).sum();
        assert!((dead - 0.8).abs() < 0.1, "{mixed:?}");
    }

    #[test]
    fn self_distill_is_the_cross_entropy_to_the_centred_teacher_softmax() {
        let device = Device::flex();
        let q = dead_prototype_scores(&device).mul_scalar(0.7);
        let k = dead_prototype_scores(&device);
        let center = k.clone().mean_dim(0);
        let (ts, tt) = (0.1, 0.07);
        let got = host(self_distill(q.clone(), k.clone(), center.clone(), ts, tt).unsqueeze())[0];
        // The formula in f64: −mean over rows of Σ_j softmax((k − c)/tt)_j · log_softmax(q/ts)_j.
        let (q, k, c) = (host(q), host(k), host(center));
        let softmax = |x: Vec<f64>| {
            let m = x.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = x.iter().map(|v| (v - m).exp()).sum();
            x.iter().map(|v| (v - m).exp() / z).collect::<Vec<f64>>()
        };
        let mut want = 0.0;
        for (qr, kr) in q.chunks(3).zip(k.chunks(3)) {
            let t = softmax((0..3).map(|j| f64::from(kr[j] - c[j]) / tt).collect());
            let p = softmax(qr.iter().map(|&v| f64::from(v) / ts).collect());
            want -= (0..3).map(|j| t[j] * p[j].ln()).sum::<f64>();
        }
        want /= 8.0;
        assert!(
            (f64::from(got) - want).abs() <= 1e-5 * want.abs(),
            "{got} vs {want}"
        );
    }
}
