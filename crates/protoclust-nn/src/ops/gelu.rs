//! GELU (the erf form, as `torch.nn.GELU()`) with its exact gradient on every backend.
//!
//! burn 0.22's cubecl backends (CUDA, wgpu) compute the erf GELU forward but differentiate it
//! with the derivative of the tanh approximation (burn-backend's default `gelu_backward`,
//! which burn-cubecl does not override): gradients about 8e-4 relative off, what failed
//! SlotCon's predictor gradients on wgpu. Flex's own backward is exact; elsewhere the
//! function is composed from `erf`, whose gradient is exact on every backend.

use crate::kernels::is_flex;
use burn::tensor::Tensor;

/// `x · Φ(x)`, the erf GELU, differentiated exactly on every device.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if is_flex(&x.device()) {
        burn::tensor::activation::gelu(x)
    } else {
        composed(x)
    }
}

/// `x · ½(1 + erf(x/√2))` from elementwise ops (autodiff differentiates each exactly).
fn composed<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let phi = (x.clone() * std::f64::consts::FRAC_1_SQRT_2)
        .erf()
        .add_scalar(1.0)
        .mul_scalar(0.5);
    x * phi
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// The exact GELU and its derivative in f64.
    fn reference(x: f64) -> (f64, f64) {
        let phi = 0.5 * (1.0 + erf_series(x / std::f64::consts::SQRT_2));
        let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        (x * phi, phi + x * pdf)
    }

    /// erf by its Maclaurin series (|x| ≤ 3 here: 60 terms reach f64 precision).
    fn erf_series(x: f64) -> f64 {
        let (mut term, mut sum) = (x, x);
        for n in 1..120 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[allow(deprecated)]
    fn values_and_grad(f: fn(Tensor<2>) -> Tensor<2>, xs: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let dev = Device::flex().autodiff();
        let x = Tensor::<2>::from_data(TensorData::new(xs.to_vec(), [3, xs.len() / 3]), &dev)
            .require_grad();
        let y = f(x.clone());
        let grads = y.clone().sum().backward();
        let g = x.grad(&grads).unwrap();
        (
            y.into_data().to_vec::<f32>().unwrap(),
            g.into_data().to_vec::<f32>().unwrap(),
        )
    }

    #[test]
    fn both_forms_match_the_exact_gelu_and_its_derivative() {
        let xs: Vec<f32> = (0..51).map(|i| -3.0 + 0.12 * i as f32).collect();
        for (name, f) in [
            ("flex", gelu::<2> as fn(Tensor<2>) -> Tensor<2>),
            ("composed", composed::<2>),
        ] {
            let (y, g) = values_and_grad(f, &xs);
            for (i, &x) in xs.iter().enumerate() {
                let (ry, rg) = reference(x as f64);
                // f32 rounding only (the tanh form's derivative is up to 1e-3 off).
                assert!(
                    (y[i] as f64 - ry).abs() < 1e-6,
                    "{name} gelu({x}) = {}, not {ry}",
                    y[i]
                );
                assert!(
                    (g[i] as f64 - rg).abs() < 2e-6,
                    "{name} gelu'({x}) = {}, not {rg}",
                    g[i]
                );
            }
        }
    }
}
