//! Mixed precision: the float type convolutions and matrix products compute in during a
//! training step, chosen for a scope as PyTorch's `autocast` region.
//!
//! Inside [`with_precision`] with [`Precision::Bf16`] or [`Precision::F16`],
//! [`crate::layers`]' convolutions take their input and weights in half precision and return
//! half-precision maps, BatchNorm normalises in f32 and hands back the input's type, and
//! linear layers and prototypes compute in half and return f32. The backbone's outputs are
//! f32. Everything else (Sinkhorn, softmax, losses, BatchNorm statistics, EMA teachers,
//! memories) sees f32 tensors, and the parameters, their gradients and the optimiser state
//! stay f32: each cast is differentiable and casts its gradient back.
//!
//! On the flex device with the project's kernels and AVX512-BF16, a bf16 convolution keeps
//! its f32 tensors instead: the kernels round the operands of its products (the gradients'
//! too) to bf16 and sum in f32 ([`crate::kernels::bf16_conv`]), so the maps between layers
//! stay f32.

use burn::tensor::{DType, FloatDType, Tensor};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::fmt;

/// The float type of a training step's heavy ops (`train.precision`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in float32 (the default).
    #[default]
    F32,
    /// bfloat16 convolutions and matrix products (float32's range: no loss scaling).
    Bf16,
    /// float16 convolutions and matrix products, with dynamic loss scaling.
    F16,
}

impl Precision {
    /// The half type of the heavy ops (`None` for float32).
    pub fn half(self) -> Option<FloatDType> {
        match self {
            Self::F32 => None,
            Self::Bf16 => Some(FloatDType::BF16),
            Self::F16 => Some(FloatDType::F16),
        }
    }

    /// Whether gradients need loss scaling to stay above float16's smallest normal value.
    pub fn needs_loss_scaling(self) -> bool {
        self == Self::F16
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "f16" => Ok(Self::F16),
            other => Err(format!(
                "precision {other:?}: expected \"f32\", \"bf16\" or \"f16\""
            )),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        })
    }
}

thread_local! {
    static CURRENT: Cell<Precision> = const { Cell::new(Precision::F32) };
}

/// Restores the enclosing scope's precision when dropped (also on unwinding).
struct Restore(Precision);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Runs `f` with the heavy ops of this thread in `precision`.
pub fn with_precision<R>(precision: Precision, f: impl FnOnce() -> R) -> R {
    let _restore = Restore(CURRENT.with(|c| c.replace(precision)));
    f()
}

/// The precision of the current scope on this thread.
pub fn current() -> Precision {
    CURRENT.with(Cell::get)
}

/// `t` in the current scope's half type (unchanged under float32 or when already half).
pub fn to_compute<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    match current().half() {
        Some(half) if t.dtype() == DType::F32 => t.cast(half),
        _ => t,
    }
}

/// `t` as float32 (unchanged when it already is).
pub fn to_f32<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    if t.dtype() == DType::F32 {
        t
    } else {
        t.cast(FloatDType::F32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn scope_sets_and_restores_the_precision() {
        assert_eq!(current(), Precision::F32);
        with_precision(Precision::Bf16, || {
            assert_eq!(current(), Precision::Bf16);
            with_precision(Precision::F16, || assert_eq!(current(), Precision::F16));
            assert_eq!(current(), Precision::Bf16);
        });
        assert_eq!(current(), Precision::F32);
        let unwound = std::panic::catch_unwind(|| {
            with_precision(Precision::F16, || panic!("inside the scope"));
        });
        assert!(unwound.is_err());
        assert_eq!(current(), Precision::F32, "restored after a panic");
    }

    #[test]
    fn casts_follow_the_scope() {
        let t = Tensor::<1>::from_floats([1.0, 1.0 + 1.0 / 512.0], &Device::default());
        assert_eq!(to_compute(t.clone()).dtype(), DType::F32);
        let half = with_precision(Precision::Bf16, || to_compute(t.clone()));
        assert_eq!(half.dtype(), DType::BF16);
        // bfloat16 keeps 8 significant bits: 1 + 2^-9 rounds to 1.
        let back = crate::ops::host::to_f32(to_f32(half));
        assert_eq!(back, vec![1.0, 1.0]);
        let f16 = with_precision(Precision::F16, || to_compute(t));
        assert_eq!(f16.dtype(), DType::F16);
        assert_eq!(crate::ops::host::to_f32(f16), vec![1.0, 1.0 + 1.0 / 512.0]);
    }
}
