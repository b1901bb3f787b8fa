//! The update rules, applied parameter by parameter through a module mapper.

use super::config::{OptimConfig, OptimKind};
use crate::named::HostTensor;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
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
        let norms = if self.config.kind == OptimKind::Lars {
            lars_norms(&module, &grads, self.config.lars.exclude_bias_and_norm)
        } else {
            BTreeMap::new()
        };
        let mut m = StepMapper {
            opt: self,
            grads,
            lr,
            path: Vec::new(),
            norms,
        };
        module.map(&mut m)
    }

    /// One parameter's update; `norms` are (‖p‖, ‖g‖) for the LARS trust ratio.
    fn update(
        &mut self,
        path: &str,
        p: Tensor<1>,
        g: Tensor<1>,
        ndim: usize,
        lr: f64,
        norms: Option<(f64, f64)>,
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
                        // Both norms come from one host read for all parameters
                        // (Optimizer::step); apex LARC's rule, in f64 as before.
                        let (pn, gn) = norms.unwrap_or_else(|| {
                            let norm = |t: &Tensor<1>| {
                                (crate::ops::host::scalar(t.clone().powf_scalar(2.0).sum()) as f64)
                                    .sqrt()
                            };
                            (norm(&p), norm(&d))
                        });
                        if pn > 0.0 && gn > 0.0 {
                            let mut local = c.lars.trust_coefficient * pn
                                / (gn + pn * s.weight_decay + c.lars.eps);
                            if c.lars.clip {
                                local = (local / s.lr).min(1.0);
                            }
                            d = d
                                .add(p.clone().mul_scalar(s.weight_decay))
                                .mul_scalar(local);
                        }
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
    /// (‖p‖, ‖g‖) of every parameter LARS scales, by path.
    norms: BTreeMap<String, (f64, f64)>,
}

/// Collects ‖p‖² and ‖g‖² of every parameter LARS scales, as device scalars, by path.
struct NormPass<'a> {
    grads: &'a GradientsParams,
    exclude_bias_and_norm: bool,
    path: Vec<String>,
    paths: Vec<String>,
    squares: Vec<Tensor<1>>,
}

impl ModuleVisitor for NormPass<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.exclude_bias_and_norm && D <= 1 {
            return;
        }
        let Some(g) = self.grads.get::<D>(param.id) else {
            return;
        };
        // Flattened as the update sees them.
        let n = g.dims().iter().product::<usize>();
        let p = param.val().inner().reshape([n]);
        self.paths.push(self.path.join("."));
        self.squares.push(p.powf_scalar(2.0).sum());
        self.squares.push(g.reshape([n]).powf_scalar(2.0).sum());
    }
}

/// (‖p‖, ‖g‖) of every parameter of `module` LARS scales, read back in one host transfer.
fn lars_norms<M: Module>(
    module: &M,
    grads: &GradientsParams,
    exclude_bias_and_norm: bool,
) -> BTreeMap<String, (f64, f64)> {
    let mut pass = NormPass {
        grads,
        exclude_bias_and_norm,
        path: Vec::new(),
        paths: Vec::new(),
        squares: Vec::new(),
    };
    module.visit(&mut pass);
    let values = crate::ops::host::scalars(pass.squares);
    pass.paths
        .into_iter()
        .zip(values.chunks(2))
        .map(|(path, v)| (path, ((v[0] as f64).sqrt(), (v[1] as f64).sqrt())))
        .collect()
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
        let norms = self.norms.get(&path).copied();
        let updated = self
            .opt
            .update(&path, p, g, D, self.lr, norms)
            .reshape(dims);
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

    /// (‖p‖, ‖g‖), as `Optimizer::step` reads them.
    fn norms_of(p: &Tensor<1>, g: &Tensor<1>) -> Option<(f64, f64)> {
        let n = |t: &Tensor<1>| {
            (crate::ops::host::scalar(t.clone().powf_scalar(2.0).sum()) as f64).sqrt()
        };
        Some((n(p), n(g)))
    }

    fn run(config: OptimConfig, steps: usize) -> Vec<f32> {
        let mut opt = Optimizer::new(config);
        let dev = Device::flex();
        let mut p = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, -2.0, 0.5], [3]), &dev);
        for _ in 0..steps {
            // Gradient of 0.5·|p|² is p.
            let g = p.clone();
            let norms = norms_of(&p, &g);
            p = opt.update("w", p, g, 2, 0.1, norms);
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
    fn lars_matches_the_host_formula_on_tensors_of_many_sizes() {
        // apex LARC in f64 against the update's tensors, odd sizes included.
        let (lr, wd, eta) = (0.05, 1e-4, 0.02);
        let c = OptimConfig {
            kind: OptimKind::Lars,
            momentum: 0.0,
            weight_decay: wd,
            lars: crate::optim::LarsConfig {
                trust_coefficient: eta,
                clip: true,
                exclude_bias_and_norm: true,
                ..Default::default()
            },
            ..Default::default()
        };
        for n in [3usize, 17, 108, 144, 1001, 4608, 5000, 36864, 65537] {
            let pv: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect();
            let gv: Vec<f32> = (0..n)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 4800.0)
                .collect();
            let dev = Device::flex();
            let t = |v: &Vec<f32>| Tensor::<1>::from_data(TensorData::new(v.clone(), [n]), &dev);
            let mut opt = Optimizer::new(c.clone());
            let got: Vec<f32> = opt
                .update("w", t(&pv), t(&gv), 2, lr, norms_of(&t(&pv), &t(&gv)))
                .into_data()
                .try_to_vec()
                .unwrap();
            let pn = pv.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            let gn = gv.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            let local = (eta * pn / (gn + pn * wd + c.lars.eps) / lr).min(1.0);
            for i in 0..n {
                let want = pv[i] as f64 - lr * local * (gv[i] as f64 + wd * pv[i] as f64);
                assert!(
                    (got[i] as f64 - want).abs() <= 1e-6 * want.abs().max(1e-3),
                    "n {n}, element {i}: {} against {want}",
                    got[i]
                );
            }
        }
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
            .update("w", p.clone(), zero.clone(), 2, 0.1, norms_of(&p, &zero))
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
            .update("head.fc.weight", one(), one(), 2, 0.1, None)
            .into_data()
            .try_to_vec()
            .unwrap();
        let body: Vec<f32> = opt
            .update("backbone.w", one(), one(), 2, 0.1, None)
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
