//! The evaluated trunk: the folded network where it runs, the eval-mode modules elsewhere.

use super::resnet::InferenceResNet;
use crate::backbone::{ResNet, ResNetOutput};
use crate::precision::{with_precision, Precision};
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use std::sync::OnceLock;

/// Activation memory of one inference pass that [`EvalTrunk::batch_for`] aims under: a
/// ResNet-50 at 224 px takes 44 images (9 MB each), a width-16 ResNet-18 at 32 px
/// keeps the callers' 256.
pub const BATCH_BYTES: usize = 384 << 20;

/// A [`ResNet`] in eval mode whose forward pass takes the folded, channels-last network on the
/// flex device (f32 inputs) and the burn modules on every other device or dtype.
#[derive(Debug, Clone)]
pub struct EvalTrunk {
    modules: ResNet,
    /// Folded on the first inference pass (opening a model to export it folds nothing).
    folded: OnceLock<Option<InferenceResNet>>,
    /// The float type of the convolutions' products.
    precision: Precision,
}

/// Why a trunk cannot run in the precision asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrecisionError {
    /// bf16 on a CPU without the instructions (never the slow generic path).
    #[error(
        "--precision bf16 needs a CPU with AVX512-BF16 (`avx512_bf16` in /proc/cpuinfo, as on \
         Intel Cooper Lake, Sapphire Rapids and later, AMD Zen 4 and later); this CPU has none: \
         use f32"
    )]
    NoBf16Cpu,
    /// f16 on the CPU.
    #[error("--precision f16 runs on GPUs only; on the CPU use f32 or bf16")]
    F16OnCpu,
    /// A half type the device has no arithmetic for (bf16 on wgpu: WGSL has none).
    #[error("--precision {0}: this device cannot compute in {0}; use f32")]
    Device(Precision),
}

/// Whether inference on `device` can run its convolutions in `precision`: on the CPU bf16
/// needs AVX512-BF16 and f16 is refused; elsewhere the device must compute in the half type.
pub fn check_precision(
    device: &burn::tensor::Device,
    precision: Precision,
) -> Result<(), PrecisionError> {
    let cpu = super::applies(device);
    match precision {
        Precision::Bf16 if cpu && !crate::kernels::bf16_gemm::supported() => {
            Err(PrecisionError::NoBf16Cpu)
        }
        Precision::F16 if cpu => Err(PrecisionError::F16OnCpu),
        p if !cpu && p.half().is_some_and(|h| !device.supports_dtype(h)) => {
            Err(PrecisionError::Device(p))
        }
        _ => Ok(()),
    }
}

impl EvalTrunk {
    /// The eval-mode copy of `net`; its folded twin, where it runs, is made when first used.
    pub fn new(net: &ResNet) -> Self {
        Self {
            modules: net.valid(),
            folded: OnceLock::new(),
            precision: Precision::F32,
        }
    }

    /// The trunk with its convolutions in `precision`, as PyTorch's autocast runs them (f32
    /// BatchNorm shift, residual and ReLU; bf16 products with f32 sums on the CPU). On the
    /// CPU bf16 needs AVX512-BF16, and f16 is refused.
    pub fn with_precision(mut self, precision: Precision) -> Result<Self, PrecisionError> {
        check_precision(&self.modules.conv1.weight.device(), precision)?;
        self.precision = precision;
        self.folded = OnceLock::new();
        Ok(self)
    }

    /// The folded network, where it runs.
    fn folded(&self) -> Option<&InferenceResNet> {
        self.folded
            .get_or_init(|| {
                let net = super::applies(&self.modules.conv1.weight.device())
                    .then(|| InferenceResNet::new(&self.modules).ok())
                    .flatten()?;
                Some(match self.precision {
                    Precision::Bf16 => net.to_bf16(),
                    _ => net,
                })
            })
            .as_ref()
    }

    /// The eval-mode modules' forward pass in this trunk's precision.
    fn modules_forward(&self, x: Tensor<4>) -> ResNetOutput {
        with_precision(self.precision, || {
            let out = self.modules.forward(x);
            ResNetOutput {
                pooled: crate::precision::to_f32(out.pooled),
                map: crate::precision::to_f32(out.map),
            }
        })
    }

    /// The eval-mode modules.
    pub fn modules(&self) -> &ResNet {
        &self.modules
    }

    /// Whether the folded network runs (for benchmarks and messages).
    pub fn is_folded(&self) -> bool {
        self.folded().is_some()
    }

    /// At most `wanted` images of `size` × `size` px per pass, fewer where the folded network's
    /// activations would pass [`BATCH_BYTES`] (the modules keep `wanted`).
    pub fn batch_for(&self, size: usize, wanted: usize) -> usize {
        let per_image = self.folded().map_or(0, |f| f.bytes_per_image(size, size));
        match per_image {
            0 => wanted.max(1),
            b => wanted.min(BATCH_BYTES / b).max(1),
        }
    }

    /// Pooled features and last map of N × 3 × H × W images, as [`ResNet::forward`] in eval
    /// mode.
    pub fn forward(&self, x: Tensor<4>) -> ResNetOutput {
        match self.folded() {
            Some(f) if x.dtype() == burn::tensor::DType::F32 => {
                let (device, values, [n, h, w]) = host_images(x);
                let map = f.map(&values, n, h, w);
                let pooled = super::pool::global_average(&map);
                let c = map.c;
                ResNetOutput {
                    pooled: Tensor::from_data(TensorData::new(pooled, [n, c]), &device),
                    map: Tensor::from_data(
                        TensorData::new(map.to_nchw(), [n, c, map.h, map.w]),
                        &device,
                    ),
                }
            }
            _ => self.modules_forward(x),
        }
    }

    /// Pooled features (N × C) only.
    pub fn pooled(&self, x: Tensor<4>) -> Tensor<2> {
        match self.folded() {
            Some(f) if x.dtype() == burn::tensor::DType::F32 => {
                let (device, values, [n, h, w]) = host_images(x);
                let pooled = f.pooled(&values, n, h, w);
                let c = pooled.len() / n.max(1);
                Tensor::from_data(TensorData::new(pooled, [n, c]), &device)
            }
            _ => self.modules_forward(x).pooled,
        }
    }
}

/// An f32 image batch's device, values and (N, H, W).
fn host_images(x: Tensor<4>) -> (burn::tensor::Device, Vec<f32>, [usize; 3]) {
    let device = x.device();
    let [n, _, h, w] = x.dims();
    let values = x
        .into_data()
        .try_into_vec::<f32>()
        .expect("an f32 tensor's values are f32");
    (device, values, [n, h, w])
}
