//! Inference-only ResNet on the CPU: BatchNorm folded into the convolutions, every layer on
//! channels-last host buffers, bias, residual add and ReLU applied in each convolution's output
//! pass, activations freed layer by layer (the path `extract`, `assign` and `eval` take on
//! `flex`).
//!
//! The network's numbers are the eval-mode ResNet's ([`crate::backbone::ResNet::forward`] on a
//! `valid()` copy) up to float32 rounding: folding changes the order of two multiplications.

mod activation;
mod folded;
mod lower;
mod pool;
mod resnet;
mod trunk;

pub use activation::Activation;
pub use folded::FoldedConv;
pub use resnet::InferenceResNet;
pub use trunk::{check_precision, EvalTrunk, PrecisionError, BATCH_BYTES};

/// Whether the folded network runs for `device`: the project's kernels are on and `device`
/// is the flex CPU device (elsewhere the burn modules run as they are).
pub fn applies(device: &burn::tensor::Device) -> bool {
    crate::kernels::run_on(device)
}
