//! The project's CPU kernels for the ops a ResNet step spends its time in: conv2d forward,
//! weight gradient and input gradient, BatchNorm training forward and backward.
//!
//! They run on the `flex` device (with or without autodiff) through burn's backend-extension
//! seam ([`backend::CpuKernels`]); every other backend, and shapes the kernels do not cover
//! (groups, dilation, non-f32), take burn's own op. `PROTOCLUST_KERNELS=burn` turns them off
//! (for side-by-side benchmarks).

#[cfg(feature = "flex")]
pub mod backend;
pub mod batch_norm;
pub mod bf16_conv;
pub mod bf16_gemm;
pub mod channels_last;
pub mod conv2d;
pub mod direct;
pub mod dot;
pub mod elementwise;
pub mod gemm;
pub mod geometry;
mod grid_rows;
pub mod isa;
pub mod lowering;
mod partition;
#[cfg(test)]
mod reference;
pub(crate) mod scratch;
pub mod timing;
pub mod transpose;
pub mod winograd;

#[cfg(feature = "flex")]
use backend::CpuKernels;
#[cfg(feature = "flex")]
use burn::backend::{Dispatch, DispatchDevice};
use burn::tensor::ops::ConvOptions;
use burn::tensor::Tensor;
use std::sync::OnceLock;

/// Which implementation the CPU ops use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelChoice {
    /// The project's kernels on `flex` (the default).
    Protoclust,
    /// burn's own ops everywhere.
    Burn,
}

impl KernelChoice {
    /// The choice of `PROTOCLUST_KERNELS` (`protoclust` when unset).
    pub fn from_env() -> Result<Self, String> {
        env_choice(
            "PROTOCLUST_KERNELS",
            &[("protoclust", Self::Protoclust), ("burn", Self::Burn)],
        )
    }

    /// The process-wide choice (read once; an invalid value falls back to the default and is
    /// reported by the CLI at start).
    pub fn current() -> Self {
        static CHOICE: OnceLock<KernelChoice> = OnceLock::new();
        *CHOICE.get_or_init(|| Self::from_env().unwrap_or(Self::Protoclust))
    }
}

/// The arithmetic of a convolution's products (its tensors are f32 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Products {
    /// f32 operands (the default).
    #[default]
    F32,
    /// Operands rounded to bf16, f32 sums ([`bf16_conv`], PyTorch's bf16 autocast); needs
    /// [`bf16_gemm::supported`].
    Bf16,
}

/// How the kernels choose a convolution's algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// Per layer shape and pass, the measured fastest: Winograd, direct, channels-last or
    /// patch lowering (the default; see [`conv2d::Route`]).
    Auto,
    /// Patch lowering + matrix product for every shape.
    Lowering,
}

impl ConvAlgorithm {
    /// The choice of `PROTOCLUST_CONV` (`auto` when unset).
    pub fn from_env() -> Result<Self, String> {
        env_choice(
            "PROTOCLUST_CONV",
            &[("auto", Self::Auto), ("lowering", Self::Lowering)],
        )
    }

    /// The process-wide choice (read once; an invalid value falls back to the default and is
    /// reported by the CLI at start).
    pub fn current() -> Self {
        static CHOICE: OnceLock<ConvAlgorithm> = OnceLock::new();
        *CHOICE.get_or_init(|| Self::from_env().unwrap_or(Self::Auto))
    }
}

/// The option named by environment variable `var`: the first of `options` when unset or
/// empty, an error naming the variable and the accepted values otherwise.
fn env_choice<T: Copy>(var: &str, options: &[(&str, T)]) -> Result<T, String> {
    let value = std::env::var(var).unwrap_or_default();
    if value.is_empty() {
        return Ok(options[0].1);
    }
    options
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
            format!("{var} = {value:?}: expected {}", names.join(" or "))
        })
}

/// Whether `device` is the flex (CPU) device, with or without autodiff.
pub fn is_flex(device: &burn::tensor::Device) -> bool {
    #[cfg(feature = "flex")]
    return matches!(
        device.clone().inner().as_dispatch(),
        DispatchDevice::Flex(_)
    );
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// Whether the project's kernels are switched on and `device` is the flex device (with or
/// without autodiff).
pub fn run_on(device: &burn::tensor::Device) -> bool {
    KernelChoice::current() == KernelChoice::Protoclust && is_flex(device)
}

/// Whether the project's kernels take `t`: an f32 tensor on a device they [`run_on`].
#[cfg(feature = "flex")]
fn on_flex<const D: usize>(t: &Tensor<D>) -> bool {
    t.dtype() == burn::tensor::DType::F32 && run_on(&t.device())
}

/// conv2d with burn's semantics: the project's kernel for f32 on flex with groups 1 and
/// dilation 1, burn's op otherwise.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if takes_conv(&x, &options) {
        return conv2d_kernel(x, weight, bias, options, Products::F32);
    }
    burn::tensor::module::conv2d(x, weight, bias, options)
}

/// Whether the project's conv2d kernel takes `x` under `options`: f32 on flex, groups 1,
/// dilation 1.
pub fn takes_conv(x: &Tensor<4>, options: &ConvOptions<2>) -> bool {
    #[cfg(feature = "flex")]
    return options.groups == 1 && options.dilation == [1, 1] && on_flex(x);
    #[cfg(not(feature = "flex"))]
    {
        let _ = (x, options);
        false
    }
}

/// The project's conv2d kernel, unconditionally (f32 on flex, groups 1, dilation 1), with its
/// products (and those of its gradients) in `products`.
#[cfg(feature = "flex")]
pub fn conv2d_kernel(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    products: Products,
) -> Tensor<4> {
    let [(pt, pb), (pl, pr)] = options.padding;
    let [sh, sw] = options.stride;
    let y = Tensor::<4>::from_dispatch(<Dispatch as CpuKernels>::pc_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        sh,
        sw,
        pt,
        pb,
        pl,
        pr,
        products,
    ));
    match bias {
        Some(b) => {
            let c = b.dims()[0];
            y + b.reshape([1, c, 1, 1])
        }
        None => y,
    }
}

/// Output and batch statistics of a training-mode BatchNorm.
#[derive(Debug, Clone)]
pub struct BatchNormTrain<const D: usize> {
    /// Normalised, scaled and shifted input.
    pub output: Tensor<D>,
    /// Per-channel batch mean.
    pub mean: Tensor<1>,
    /// Per-channel biased batch variance.
    pub variance: Tensor<1>,
}

/// BatchNorm with batch statistics, as `burn::tensor::module::batch_norm_train`: the
/// project's kernel for f32 on flex, burn's op otherwise.
pub fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> BatchNormTrain<D> {
    #[cfg(feature = "flex")]
    if on_flex(&x) {
        return batch_norm_train_kernel(x, gamma, beta, epsilon);
    }
    let r = burn::tensor::module::batch_norm_train(x, gamma, beta, epsilon);
    BatchNormTrain {
        output: r.output,
        mean: r.mean,
        variance: r.variance,
    }
}

/// The project's BatchNorm kernel, unconditionally (f32 on flex).
#[cfg(feature = "flex")]
pub fn batch_norm_train_kernel<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> BatchNormTrain<D> {
    let (y, m, v) = <Dispatch as CpuKernels>::pc_batch_norm_train(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    BatchNormTrain {
        output: Tensor::from_dispatch(y),
        mean: Tensor::from_dispatch(m),
        variance: Tensor::from_dispatch(v),
    }
}

/// `relu(x)`: the project's parallel kernel for f32 on flex, burn's op otherwise.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if on_flex(&x) {
        return Tensor::from_dispatch(<Dispatch as CpuKernels>::pc_relu(x.into_dispatch()));
    }
    burn::tensor::activation::relu(x)
}

/// `relu(a + b)` (a ResNet block's residual join): one fused parallel pass for f32 on flex,
/// burn's ops otherwise (and wherever the shapes differ, so broadcasting keeps burn's rules).
pub fn add_relu<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if a.dims() == b.dims() && on_flex(&a) && on_flex(&b) {
        return Tensor::from_dispatch(<Dispatch as CpuKernels>::pc_add_relu(
            a.into_dispatch(),
            b.into_dispatch(),
        ));
    }
    burn::tensor::activation::relu(a + b)
}
