//! The scale-out seam: every reduction that crosses samples of the global batch goes through it.

use burn::tensor::Tensor;

/// Cross-process reductions used by the methods (all-reduce, all-gather, rank, world size).
pub trait Collective: Send + Sync {
    /// Index of this process among `world_size()` processes.
    fn rank(&self) -> usize;
    /// Number of processes sharing the global batch.
    fn world_size(&self) -> usize;
    /// Element-wise sum of `t` over all processes.
    fn all_reduce_sum<const D: usize>(&self, t: Tensor<D>) -> Tensor<D>;
    /// Element-wise maximum of `t` over all processes.
    fn all_reduce_max<const D: usize>(&self, t: Tensor<D>) -> Tensor<D>;
    /// Concatenation of `t` from all processes along dimension 0, in rank order.
    fn all_gather<const D: usize>(&self, t: Tensor<D>) -> Tensor<D>;
}

/// The single-process collective (world size 1): every operation is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn all_reduce_sum<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        t
    }
    fn all_reduce_max<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        t
    }
    fn all_gather<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        t
    }
}
