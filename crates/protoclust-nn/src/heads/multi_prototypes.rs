//! Several prototype layers on one embedding (DeepCluster-v2's `MultiPrototypes`): one
//! bias-free linear head per clustering.

use super::prototypes::Prototypes;
use crate::init::Init;
use burn::module::Module;
use burn::tensor::Tensor;

/// One prototype matrix per head, all on the same D-dimensional embedding.
#[derive(Module, Debug)]
pub struct MultiPrototypes {
    /// The heads, in order (`prototypes{h}` in the official code).
    pub heads: Vec<Prototypes>,
}

impl MultiPrototypes {
    /// Heads of `ks[h]` prototypes each, with PyTorch's default Linear init.
    pub fn new(ks: &[usize], d: usize, init: &mut Init) -> Self {
        Self {
            heads: ks.iter().map(|&k| Prototypes::new(k, d, init)).collect(),
        }
    }

    /// Every head's scores z · W_hᵀ of N × D inputs (N × K_h each).
    pub fn forward(&self, z: Tensor<2>) -> Vec<Tensor<2>> {
        self.heads.iter().map(|h| h.forward(z.clone())).collect()
    }
}
