//! Forward passes of burn's `Conv2d`, `BatchNorm` and `Linear` modules through
//! [`crate::kernels`] and the [`crate::precision`] scope.
//!
//! The modules (and so parameter names, checkpoints and exports) stay burn's; the model code
//! calls [`Conv2dExt::run`] / [`BatchNormExt::run`] / [`LinearExt::run`] instead of `forward`,
//! which take the project's kernels on the CPU device and burn's ops elsewhere.

use crate::kernels;
use crate::precision::{to_compute, to_f32};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, FloatDType, Tensor};

/// A convolution module that runs through the project's kernels where they apply.
pub trait Conv2dExt {
    /// Same result as `Conv2d::forward`; under half precision, computed and returned in it,
    /// except bf16 on the project's kernels, which round the operands of every product (the
    /// gradients' too) to bf16, sum in f32 and return f32.
    fn run(&self, x: Tensor<4>) -> Tensor<4>;
}

impl Conv2dExt for Conv2d {
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let padding = match self.padding {
            PaddingConfig2d::Valid => [(0, 0), (0, 0)],
            PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
            // "Same" depends on the input size: burn computes it (in float32; no backbone
            // here uses it).
            PaddingConfig2d::Same => return self.forward(to_f32(x)),
        };
        let options =
            ConvOptions::new_with_padding(self.stride, padding, self.dilation, self.groups);
        #[cfg(feature = "flex")]
        if crate::precision::current() == crate::precision::Precision::Bf16
            && kernels::bf16_gemm::supported()
            && kernels::takes_conv(&x, &options)
        {
            let bias = self.bias.as_ref().map(|b| b.val());
            let products = kernels::Products::Bf16;
            return kernels::conv2d_kernel(x, self.weight.val(), bias, options, products);
        }
        kernels::conv2d(
            to_compute(x),
            to_compute(self.weight.val()),
            self.bias.as_ref().map(|b| to_compute(b.val())),
            options,
        )
    }
}

/// A linear module that computes in the [`crate::precision`] scope's type.
pub trait LinearExt {
    /// Same result as `Linear::forward`, always float32; under half precision the product is
    /// computed in it.
    fn run<const D: usize>(&self, x: Tensor<D>) -> Tensor<D>;
}

impl LinearExt for Linear {
    fn run<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        // Under float32 the casts are no-ops and this is `Linear::forward`'s own call.
        to_f32(burn::tensor::module::linear(
            to_compute(x),
            to_compute(self.weight.val()),
            self.bias.as_ref().map(|b| to_compute(b.val())),
        ))
    }
}

/// A BatchNorm module that runs through the project's kernels where they apply.
pub trait BatchNormExt {
    /// As `BatchNorm::forward`, except that the running variance is updated with the unbiased
    /// batch variance (n / (n − 1)), as PyTorch does. A half-precision input is normalised in
    /// float32 (statistics included) and the output returned in the input's type.
    fn run<const D: usize>(&self, x: Tensor<D>) -> Tensor<D>;
}

impl BatchNormExt for BatchNorm {
    fn run<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let y = batch_norm_f32(self, to_f32(x));
        match dtype {
            DType::BF16 => y.cast(FloatDType::BF16),
            DType::F16 => y.cast(FloatDType::F16),
            _ => y,
        }
    }
}

/// [`BatchNormExt::run`] on a float32 input.
fn batch_norm_f32<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    // Batch statistics exactly when burn's `forward` would use them.
    if !(x.device().is_autodiff() && bn.training.is_enabled()) {
        return bn.forward(x);
    }
    let dims = x.dims();
    let local = dims.iter().product::<usize>() / dims[1].max(1);
    // Over every rank's rows under SyncBatchNorm (counts may differ between ranks).
    let count = crate::collective::sync_batchnorm().map_or(local, |w| {
        crate::collective::global_batch::row_span(&w, local).total
    });
    let r = kernels::batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    update_running(bn, r.mean, r.variance, count);
    r.output
}

/// Folds one batch's mean and biased variance over `count` values per channel into the
/// running statistics, PyTorch's rule: `r ← (1 − m)·r + m·batch`, the variance made unbiased.
fn update_running(bn: &BatchNorm, mean: Tensor<1>, variance: Tensor<1>, count: usize) {
    let device = mean.device();
    let unbias = if count > 1 {
        count as f64 / (count - 1) as f64
    } else {
        1.0
    };
    let m = bn.momentum;
    let run_mean = bn.running_mean.value_sync().to_device(&device);
    let run_var = bn.running_var.value_sync().to_device(&device);
    let run_mean = run_mean
        .mul_scalar(1.0 - m)
        .add(mean.detach().mul_scalar(m));
    let run_var = run_var
        .mul_scalar(1.0 - m)
        .add(variance.detach().mul_scalar(m * unbias));
    bn.running_mean.update(run_mean.detach());
    bn.running_var.update(run_var.detach());
}
