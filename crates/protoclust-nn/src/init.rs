//! Seeded parameter initialisers matching PyTorch's defaults.
//!
//! Values are drawn on the host from a ChaCha stream, so a seed gives the same network on every
//! backend and regardless of what other threads draw.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded source of initial parameter values.
pub struct Init {
    rng: ChaCha8Rng,
    device: Device,
}

impl Init {
    /// Starts a stream for `seed` whose tensors are created on `device`.
    pub fn new(seed: u64, device: &Device) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device: device.clone(),
        }
    }

    /// The device parameters are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn param<const D: usize>(&self, values: Vec<f32>, shape: [usize; D]) -> Param<Tensor<D>> {
        Param::from_tensor(Tensor::from_data(
            TensorData::new(values, shape),
            &self.device,
        ))
    }

    /// Normal(0, std²) values.
    pub fn normal<const D: usize>(&mut self, shape: [usize; D], std: f64) -> Param<Tensor<D>> {
        let n: usize = shape.iter().product();
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            // Box-Muller: two independent standard normals per pair of uniforms.
            let u1: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = self.rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            v.push((r * t.cos() * std) as f32);
            if v.len() < n {
                v.push((r * t.sin() * std) as f32);
            }
        }
        self.param(v, shape)
    }

    /// Uniform(-bound, bound) values.
    pub fn uniform<const D: usize>(&mut self, shape: [usize; D], bound: f64) -> Param<Tensor<D>> {
        let n: usize = shape.iter().product();
        let v = (0..n)
            .map(|_| self.rng.random_range(-bound..bound) as f32)
            .collect();
        self.param(v, shape)
    }

    /// Kaiming-normal (fan-out, ReLU gain) conv weight, as torchvision's ResNet.
    pub fn kaiming_conv(&mut self, shape: [usize; 4]) -> Param<Tensor<4>> {
        let fan_out = shape[0] * shape[2] * shape[3];
        self.normal(shape, (2.0 / fan_out as f64).sqrt())
    }

    /// PyTorch's default `nn.Linear` init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    pub fn linear_default<const D: usize>(
        &mut self,
        shape: [usize; D],
        fan_in: usize,
    ) -> Param<Tensor<D>> {
        self.uniform(shape, 1.0 / (fan_in as f64).sqrt())
    }
}

/// Initialises every lazy parameter of `module` now. burn's lazy parameters share their
/// pending initialisation between clones, so a clone changed on its own before first use
/// (`clone().no_grad()`) would change the original's parameters too.
pub fn materialize<M: Module>(module: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}
