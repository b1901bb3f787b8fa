//! The update rules, applied parameter by parameter through a module mapper.

use super::config::{OptimConfig, OptimKind};
use crate::named::HostTensor;
use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use std::collections::BTreeMap;

/// Per-parameter optimiser state (flattened buffers).
#[derive(Debug, Clone)]
struct State {
    /// Momentum buffer (SGD/LARS) or first moment (AdamW).
    buf1: Option<Tensor<1>>,
    /// Second moment (AdamW).
    buf2: Option<Tensor<1>>,
    /// Updates applied so far.
    step: u64,
}

/// An optimiser over a module's parameters, with state keyed by parameter path.
#[derive(Debug, Clone)]
pub struct Optimizer {
    config: OptimConfig,
    states: BTreeMap<String, State>,
}

struct Settings {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
}

impl Optimizer {
    /// A fresh optimiser (no state yet).
    pub fn new(config: OptimConfig) -> Self {
        Self {
            config,
            states: BTreeMap::new(),
        }
    }

    fn settings(&self, path: &str, lr: f64) -> Settings {
        let g = self
            .config
            .groups
            .iter()
            .find(|g| path.starts_with(&g.prefix));
        Settings {
            lr: lr * g.and_then(|g| g.lr_scale).unwrap_or(1.0),
            momentum: g.and_then(|g| g.momentum).unwrap_or(self.config.momentum),
            weight_decay: g
                .and_then(|g| g.weight_decay)
                .unwrap_or(self.config.weight_decay),
        }
    }

    /// Applies one update with learning rate `lr` to every parameter that has a gradient.
    pub fn step<M: Module>(&mut self, module: M, grads: GradientsParams, lr: f64) -> M {
        let mut m = StepMapper {
            opt: self,
            grads,
            lr,
            path: Vec::new(),
        };
        module.map(&mut m)
    }

    fn update(
        &mut self,
        path: &str,
        p: Tensor<1>,
        g: Tensor<1>,
        ndim: usize,
        lr: f64,
    ) -> Tensor<1> {
        let s = self.settings(path, lr);
        let c = &self.config;
        let state = self.states.entry(path.to_string()).or_insert(State {
            buf1: None,
            buf2: None,
            step: 0,
        });
        state.step += 1;
        match c.kind {
            OptimKind::Adamw => {
                let [b1, b2] = c.betas;
                let p = if s.weight_decay > 0.0 {
                    p.clone().sub(p.mul_scalar(s.lr * s.weight_decay))
                } else {
                    p
                };
                let m = match state.buf1.take() {
                    Some(m) => m.mul_scalar(b1).add(g.clone().mul_scalar(1.0 - b1)),
                    None => g.clone().mul_scalar(1.0 - b1),
                };
                let v = match state.buf2.take() {
                    Some(v) => v
                        .mul_scalar(b2)
                        .add(g.clone().powf_scalar(2.0).mul_scalar(1.0 - b2)),
                    None => g.powf_scalar(2.0).mul_scalar(1.0 - b2),
                };
                let t = state.step as i32;
                let bc1 = 1.0 - b1.powi(t);
                let bc2 = 1.0 - b2.powi(t);
                let denom = v.clone().div_scalar(bc2).sqrt().add_scalar(c.adam_eps);
                let upd = m.clone().div_scalar(bc1).div(denom).mul_scalar(s.lr);
                state.buf1 = Some(m);
                state.buf2 = Some(v);
                p.sub(upd)
            }
            OptimKind::Sgd | OptimKind::Lars => {
                let mut d = g;
                let lars = c.kind == OptimKind::Lars;
                if lars {
                    let excluded = c.lars.exclude_bias_and_norm && ndim <= 1;
                    if !excluded {
                        // apex LARC's trust ratio, computed on the device (no host read per
                        // parameter): where both norms are non-zero, d ← (d + wd·p)·local.
                        let n = d.dims()[0];
                        let pn = p.clone().powf_scalar(2.0).sum().sqrt();
                        let gn = d.clone().powf_scalar(2.0).sum().sqrt();
                        let ok = pn
                            .clone()
                            .greater_elem(0.0)
                            .bool_and(gn.clone().greater_elem(0.0));
                        let mut local = pn
                            .clone()
                            .mul_scalar(c.lars.trust_coefficient)
                            .div(gn.add(pn.mul_scalar(s.weight_decay)).add_scalar(c.lars.eps));
                        if c.lars.clip {
                            local = local.div_scalar(s.lr).clamp_max(1.0);
                        }
                        let scaled = d
                            .clone()
                            .add(p.clone().mul_scalar(s.weight_decay))
                            .mul(local);
                        d = scaled.mask_where(ok.bool_not().expand([n]), d);
                    }
                } else if s.weight_decay > 0.0 {
                    d = d.add(p.clone().mul_scalar(s.weight_decay));
                }
                if s.momentum > 0.0 {
                    let buf = match state.buf1.take() {
                        Some(b) => b
                            .mul_scalar(s.momentum)
                            .add(d.clone().mul_scalar(1.0 - c.dampening)),
                        None => d.clone(),
                    };
                    d = if c.nesterov {
                        d.add(buf.clone().mul_scalar(s.momentum))
                    } else {
                        buf.clone()
                    };
                    state.buf1 = Some(buf);
                }
                p.sub(d.mul_scalar(s.lr))
            }
        }
    }

    /// Forgets the state (momentum, moments, step count) of parameters under `prefix`, as if
    /// they were new (DeepCluster's re-initialised classifier).
    pub fn reset(&mut self, prefix: &str) {
        self.states.retain(|path, _| !path.starts_with(prefix));
    }

    /// State as named host tensors (`<path>.buf1`, `<path>.buf2`, `<path>.step`).
    pub fn state(&self) -> BTreeMap<String, HostTensor> {
        let mut out = BTreeMap::new();
        for (path, s) in &self.states {
            if let Some(b) = &s.buf1 {
                out.insert(format!("{path}.buf1"), HostTensor::from_tensor(b));
            }
            if let Some(b) = &s.buf2 {
                out.insert(format!("{path}.buf2"), HostTensor::from_tensor(b));
            }
            out.insert(
                format!("{path}.step"),
                HostTensor {
                    shape: vec![1],
                    data: vec![s.step as f32],
                },
            );
        }
        out
    }

    /// Restores state saved by [`Optimizer::state`] onto `device`.
    pub fn load_state(
        &mut self,
        saved: &BTreeMap<String, HostTensor>,
        device: &burn::tensor::Device,
    ) {
        self.states.clear();
        for (key, t) in saved {
            let Some(path) = key.strip_suffix(".step") else {
                continue;
            };
            let get = |suffix: &str| {
                saved
                    .get(&format!("{path}.{suffix}"))
                    .map(|h| h.to_tensor::<1>(device))
            };
            self.states.insert(
                path.to_string(),
                State {
                    buf1: get("buf1"),
                    buf2: get("buf2"),
                    step: t.data.first().copied().unwrap_or(0.0) as u64,
                },
            );
        }
    }
}

struct StepMapper<'a> {
    opt: &'a mut Optimizer,
    grads: GradientsParams,
    lr: f64,
    path: Vec<String>,
}

impl ModuleMapper for StepMapper<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let dims = tensor.dims();
        let n: usize = dims.iter().product();
        let require_grad = tensor.is_require_grad();
        let p = tensor.inner().reshape([n]);
        let g = grad.reshape([n]);
        let path = self.path.join(".");
        let updated = self.opt.update(&path, p, g, D, self.lr).reshape(dims);
        let mut t = Tensor::from_inner(updated);
        if require_grad {
            t = t.require_grad();
        }
        Param::from_mapped_value(id, t, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::config::OptimConfig;
    use burn::tensor::{Device, TensorData};

    fn run(config: OptimConfig, steps: usize) -> Vec<f32> {
        let mut opt = Optimizer::new(config);
        let dev = Device::flex();
        let mut p = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, -2.0, 0.5], [3]), &dev);
        for _ in 0..steps {
            // Gradient of 0.5·|p|² is p.
            let g = p.clone();
            p = opt.update("w", p, g, 2, 0.1);
        }
        p.into_data().try_to_vec().unwrap()
    }

    #[test]
    fn sgd_momentum_matches_pytorch_without_dampening() {
        // PyTorch SGD(lr=0.1, momentum=0.9, dampening=0) on 0.5·p², two steps from p0 = 1:
        // b1 = 1, p1 = 0.9; b2 = 0.9·1 + 0.9 = 1.8, p2 = 0.9 − 0.18 = 0.72.
        let c = OptimConfig {
            kind: OptimKind::Sgd,
            momentum: 0.9,
            weight_decay: 0.0,
            ..Default::default()
        };
        let p = run(c, 2);
        assert!((p[0] - 0.72).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn lars_scales_by_trust_ratio() {
        // With momentum 0 and wd 0, the first LARS step moves p by lr·η·|p|/|g|·g = lr·η·p.
        let c = OptimConfig {
            kind: OptimKind::Lars,
            momentum: 0.0,
            weight_decay: 0.0,
            ..Default::default()
        };
        let p = run(c, 1);
        assert!((p[0] - (1.0 - 0.1 * 0.001)).abs() < 1e-7, "{p:?}");
    }

    #[test]
    fn lars_skips_weight_decay_and_scaling_where_a_norm_is_zero() {
        // apex LARC: a zero gradient (or parameter) gets neither the trust ratio nor weight
        // decay, so SGD without momentum leaves the parameter where it is.
        let c = OptimConfig {
            kind: OptimKind::Lars,
            momentum: 0.0,
            weight_decay: 0.5,
            ..Default::default()
        };
        let mut opt = Optimizer::new(c);
        let dev = Device::flex();
        let p = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, -2.0], [2]), &dev);
        let zero = Tensor::<1>::zeros([2], &dev);
        let after: Vec<f32> = opt
            .update("w", p, zero, 2, 0.1)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(after, vec![1.0, -2.0]);
    }

    #[test]
    fn parameter_groups_override_lr_momentum_and_decay_by_path_prefix() {
        use crate::optim::config::GroupConfig;
        let c = OptimConfig {
            kind: OptimKind::Sgd,
            momentum: 0.9,
            weight_decay: 0.5,
            groups: vec![GroupConfig {
                prefix: "head".into(),
                lr_scale: Some(2.0),
                weight_decay: Some(0.0),
                momentum: Some(0.0),
            }],
            ..Default::default()
        };
        let mut opt = Optimizer::new(c);
        let dev = Device::flex();
        let one = || Tensor::<1>::from_data(TensorData::new(vec![1.0f32], [1]), &dev);
        // Grouped: p − 2·lr·g = 1 − 0.2; default: p − lr·(g + wd·p) = 1 − 0.15.
        let head: Vec<f32> = opt
            .update("head.fc.weight", one(), one(), 2, 0.1)
            .into_data()
            .try_to_vec()
            .unwrap();
        let body: Vec<f32> = opt
            .update("backbone.w", one(), one(), 2, 0.1)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!(
            (head[0] - 0.8).abs() < 1e-6 && (body[0] - 0.85).abs() < 1e-6,
            "{head:?} {body:?}"
        );
        // Momentum state exists only for the ungrouped parameter.
        let st = opt.state();
        assert!(st.contains_key("backbone.w.buf1") && !st.contains_key("head.fc.weight.buf1"));
    }

    #[test]
    fn adamw_first_step_moves_by_lr() {
        let c = OptimConfig {
            kind: OptimKind::Adamw,
            weight_decay: 0.0,
            ..Default::default()
        };
        let p = run(c, 1);
        assert!((p[1] - (-2.0 + 0.1)).abs() < 1e-5, "{p:?}");
    }
}
