//! Forward passes of burn's `Conv2d` and `BatchNorm` modules through [`crate::kernels`].
//!
//! The modules (and so parameter names, checkpoints and exports) stay burn's; the model code
//! calls [`Conv2dExt::run`] / [`BatchNormExt::run`] instead of `forward`, which take the
//! project's kernels on the CPU device and burn's ops elsewhere.

use crate::kernels;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::Tensor;

/// A convolution module that runs through the project's kernels where they apply.
pub trait Conv2dExt {
    /// Same result as `Conv2d::forward`.
    fn run(&self, x: Tensor<4>) -> Tensor<4>;
}

impl Conv2dExt for Conv2d {
    fn run(&self, x: Tensor<4>) -> Tensor<4> {
        let padding = match self.padding {
            PaddingConfig2d::Valid => [(0, 0), (0, 0)],
            PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
            // "Same" depends on the input size: burn computes it.
            PaddingConfig2d::Same => return self.forward(x),
        };
        let options =
            ConvOptions::new_with_padding(self.stride, padding, self.dilation, self.groups);
        kernels::conv2d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(|b| b.val()),
            options,
        )
    }
}

/// A BatchNorm module that runs through the project's kernels where they apply.
pub trait BatchNormExt {
    /// As `BatchNorm::forward`, except that the running variance is updated with the unbiased
    /// batch variance (n / (n − 1)), as PyTorch does.
    fn run<const D: usize>(&self, x: Tensor<D>) -> Tensor<D>;
}

impl BatchNormExt for BatchNorm {
    fn run<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if !trains(self, &x) {
            return self.forward(x);
        }
        let r =
            kernels::batch_norm_train(x.clone(), self.gamma.val(), self.beta.val(), self.epsilon);
        update_running(self, &x, r)
    }
}

/// Whether the layer normalises with batch statistics (as `BatchNorm::forward` decides).
fn trains<const D: usize>(bn: &BatchNorm, x: &Tensor<D>) -> bool {
    x.device().is_autodiff() && bn.training.is_enabled()
}

/// Folds the batch statistics into the running ones (PyTorch's rule) and returns the output.
fn update_running<const D: usize>(
    bn: &BatchNorm,
    x: &Tensor<D>,
    r: kernels::BatchNormTrain<D>,
) -> Tensor<D> {
    {
        let dims = x.dims();
        let n = (dims.iter().product::<usize>() / dims[1].max(1)) as f64;
        let device = x.device();
        let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let m = bn.momentum;
        let mean = bn.running_mean.value_sync().to_device(&device);
        let var = bn.running_var.value_sync().to_device(&device);
        let mean = mean.mul_scalar(1.0 - m).add(r.mean.detach().mul_scalar(m));
        let var = var
            .mul_scalar(1.0 - m)
            .add(r.variance.detach().mul_scalar(m * unbias));
        bn.running_mean.update(mean.detach());
        bn.running_var.update(var.detach());
    }
    r.output
}
