//! Dynamic loss scaling for float16 training, PyTorch's `torch.amp.GradScaler` rule.
//!
//! The loss is multiplied by the scale before the backward pass, so small float16 gradients
//! stay above float16's smallest normal value; the gradients are divided by it again before
//! the optimiser sees them. A step whose gradients hold an infinity or a NaN is skipped and
//! the scale halved; after `growth_interval` good steps in a row it doubles.

use crate::named::HostTensor;
use crate::precision::Precision;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use std::collections::BTreeMap;

/// The scale's starting value (PyTorch's `init_scale`, 2^16).
pub const INIT_SCALE: f32 = 65_536.0;
/// Good steps in a row before the scale doubles (PyTorch's `growth_interval`).
pub const GROWTH_INTERVAL: u32 = 2_000;

/// The scale and its count of good steps; checkpointed with the optimiser state.
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    scale: f32,
    good_steps: u32,
}

/// What [`LossScaler::unscale`] found in the gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every gradient is finite: take the optimiser step.
    Step,
    /// Some gradient overflowed: skip the step (the scale has been halved).
    Skip,
}

impl Default for LossScaler {
    fn default() -> Self {
        Self {
            scale: INIT_SCALE,
            good_steps: 0,
        }
    }
}

/// Divides every gradient by the scale and sums them all (one device reduction per tensor,
/// one host read in all).
struct Unscale<'a> {
    grads: &'a mut GradientsParams,
    inverse: f32,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for Unscale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let g = g.mul_scalar(self.inverse);
            let s = g.clone().sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + s,
                None => s,
            });
            self.grads.register::<D>(param.id, g);
        }
    }
}

impl LossScaler {
    /// A fresh scaler when `precision` needs one (float16), else `None`.
    pub fn for_precision(precision: Precision) -> Option<Self> {
        precision.needs_loss_scaling().then(Self::default)
    }

    /// The current scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// `loss` times the scale, to run the backward pass on.
    pub fn scale_loss(&self, loss: Tensor<1>) -> Tensor<1> {
        loss.mul_scalar(self.scale)
    }

    /// Divides `grads` (of `model`) by the scale, then judges the step and updates the scale.
    /// Gradients averaged over ranks first make every rank reach the same verdict.
    pub fn unscale<M: Module>(&mut self, grads: &mut GradientsParams, model: &M) -> Verdict {
        let mut pass = Unscale {
            grads,
            inverse: 1.0 / self.scale,
            total: None,
        };
        model.visit(&mut pass);
        let finite = pass
            .total
            .is_none_or(|t| crate::ops::host::scalar(t).is_finite());
        self.record(finite)
    }

    /// Updates the scale after a step whose gradients were (not) all finite.
    pub fn record(&mut self, finite: bool) -> Verdict {
        if !finite {
            self.scale *= 0.5;
            self.good_steps = 0;
            return Verdict::Skip;
        }
        self.good_steps += 1;
        if self.good_steps == GROWTH_INTERVAL {
            self.scale *= 2.0;
            self.good_steps = 0;
        }
        Verdict::Step
    }

    /// The state as named host tensors (`loss_scaler.scale`, `loss_scaler.good_steps`).
    pub fn state(&self) -> BTreeMap<String, HostTensor> {
        let one = |v: f32| HostTensor {
            shape: vec![1],
            data: vec![v],
        };
        BTreeMap::from([
            ("loss_scaler.scale".to_string(), one(self.scale)),
            (
                "loss_scaler.good_steps".to_string(),
                one(self.good_steps as f32),
            ),
        ])
    }

    /// The scaler saved by [`LossScaler::state`] in `saved`, or a fresh one when absent.
    pub fn from_state(saved: &BTreeMap<String, HostTensor>) -> Self {
        let get = |k: &str| saved.get(k).and_then(|t| t.data.first().copied());
        match (get("loss_scaler.scale"), get("loss_scaler.good_steps")) {
            (Some(scale), Some(good)) if scale > 0.0 => Self {
                scale,
                good_steps: good as u32,
            },
            _ => Self::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Two {
        a: Param<Tensor<1>>,
        b: Param<Tensor<2>>,
    }

    fn model_and_grads(b_value: f32) -> (Two, GradientsParams) {
        let dev = Device::default().autodiff();
        let m = Two {
            a: Param::from_tensor(Tensor::<1>::from_floats([1.0, 2.0], &dev).require_grad()),
            b: Param::from_tensor(Tensor::<2>::from_floats([[3.0]], &dev).require_grad()),
        };
        let loss = (m.a.val().sum() * 4.0 + m.b.val().sum().mul_scalar(b_value)).reshape([1]);
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        (m, grads)
    }

    #[test]
    fn unscale_divides_gradients_and_keeps_the_scale_on_a_good_step() {
        let (m, mut grads) = model_and_grads(8.0);
        let mut s = LossScaler::default();
        assert_eq!(s.unscale(&mut grads, &m), Verdict::Step);
        let a = crate::ops::host::to_f32(grads.get::<1>(m.a.id).unwrap());
        let b = crate::ops::host::to_f32(grads.get::<2>(m.b.id).unwrap());
        assert_eq!(a, vec![4.0 / INIT_SCALE; 2]);
        assert_eq!(b, vec![8.0 / INIT_SCALE]);
        assert_eq!(s.scale(), INIT_SCALE);
    }

    #[test]
    fn an_overflow_skips_the_step_and_halves_the_scale() {
        let (m, mut grads) = model_and_grads(f32::INFINITY);
        let mut s = LossScaler::default();
        assert_eq!(s.unscale(&mut grads, &m), Verdict::Skip);
        assert_eq!(s.scale(), INIT_SCALE / 2.0);
    }

    #[test]
    fn the_scale_doubles_after_the_growth_interval_and_round_trips() {
        let mut s = LossScaler::default();
        s.record(false);
        for _ in 0..GROWTH_INTERVAL - 1 {
            assert_eq!(s.record(true), Verdict::Step);
        }
        assert_eq!(s.scale(), INIT_SCALE / 2.0);
        let saved = LossScaler::from_state(&s.state());
        assert_eq!(saved, s);
        s.record(true);
        assert_eq!(s.scale(), INIT_SCALE);
        assert_eq!(
            LossScaler::from_state(&BTreeMap::new()),
            LossScaler::default()
        );
    }
}
