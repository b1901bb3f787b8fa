//! The scale-out seam: every reduction that crosses samples of the global batch goes through it.

use burn::tensor::Tensor;

pub mod global_batch;
pub mod grads;
#[cfg(feature = "mpi")]
pub mod mpi;

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
    /// Concatenation of `t` from all processes along dimension 0, in rank order (ranks may
    /// contribute different row counts; no gradient flows through).
    fn all_gather<const D: usize>(&self, t: Tensor<D>) -> Tensor<D>;
    /// Concatenation of every process's host `values` in rank order (counts may differ).
    fn all_gather_host(&self, values: &[f32]) -> Vec<f32>;
    /// Element-wise sum of a host buffer over all processes, in place.
    fn sum_host(&self, values: &mut [f32]);
    /// Element-wise sum of a host f64 buffer over all processes, in place (statistics).
    fn sum_host_f64(&self, values: &mut [f64]);
    /// Rank `root`'s `values` on every process, in place.
    fn broadcast_host(&self, values: &mut [f32], root: usize);
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
    fn all_gather_host(&self, values: &[f32]) -> Vec<f32> {
        values.to_vec()
    }
    fn sum_host(&self, _: &mut [f32]) {}
    fn sum_host_f64(&self, _: &mut [f64]) {}
    fn broadcast_host(&self, _: &mut [f32], _: usize) {}
}

/// The processes a run spans: this one alone, or an MPI world (feature `mpi`).
#[derive(Clone, Default)]
pub enum World {
    /// One process.
    #[default]
    Single,
    /// Every rank of `mpirun`/`srun`.
    #[cfg(feature = "mpi")]
    Mpi(std::sync::Arc<mpi::MpiCollective>),
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "World(rank {} of {})", self.rank(), self.world_size())
    }
}

impl Collective for World {
    fn rank(&self) -> usize {
        match self {
            World::Single => 0,
            #[cfg(feature = "mpi")]
            World::Mpi(m) => m.rank(),
        }
    }
    fn world_size(&self) -> usize {
        match self {
            World::Single => 1,
            #[cfg(feature = "mpi")]
            World::Mpi(m) => m.world_size(),
        }
    }
    fn all_reduce_sum<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        match self {
            World::Single => t,
            #[cfg(feature = "mpi")]
            World::Mpi(m) => m.all_reduce_sum(t),
        }
    }
    fn all_reduce_max<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        match self {
            World::Single => t,
            #[cfg(feature = "mpi")]
            World::Mpi(m) => m.all_reduce_max(t),
        }
    }
    fn all_gather<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        match self {
            World::Single => t,
            #[cfg(feature = "mpi")]
            World::Mpi(m) => m.all_gather(t),
        }
    }
    fn all_gather_host(&self, values: &[f32]) -> Vec<f32> {
        match self {
            World::Single => values.to_vec(),
            #[cfg(feature = "mpi")]
            World::Mpi(m) => m.all_gather_host(values),
        }
    }
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    fn sum_host(&self, values: &mut [f32]) {
        match self {
            World::Single => {}
            #[cfg(feature = "mpi")]
            World::Mpi(m) => m.sum_host(values),
        }
    }
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    fn sum_host_f64(&self, values: &mut [f64]) {
        match self {
            World::Single => {}
            #[cfg(feature = "mpi")]
            World::Mpi(m) => m.sum_host_f64(values),
        }
    }
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    fn broadcast_host(&self, values: &mut [f32], root: usize) {
        match self {
            World::Single => {}
            #[cfg(feature = "mpi")]
            World::Mpi(m) => m.broadcast_in_place(values, root),
        }
    }
}

/// The world training BatchNorms take their statistics over (SyncBatchNorm), if any.
static SYNC_BATCHNORM: std::sync::RwLock<Option<World>> = std::sync::RwLock::new(None);

/// Makes every training BatchNorm on the project's CPU kernels take its statistics over all
/// ranks of `world` (SyncBatchNorm), or over each process's own batch (`None`, the default).
pub fn set_sync_batchnorm(world: Option<World>) {
    *SYNC_BATCHNORM.write().unwrap_or_else(|e| e.into_inner()) = world;
}

thread_local! {
    /// Set inside [`with_local_batchnorm`].
    static LOCAL_BATCHNORM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The world of [`set_sync_batchnorm`], when SyncBatchNorm is on (and not suspended by
/// [`with_local_batchnorm`] on this thread).
pub fn sync_batchnorm() -> Option<World> {
    if LOCAL_BATCHNORM.with(|l| l.get()) {
        return None;
    }
    SYNC_BATCHNORM
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Runs `f` with every BatchNorm it builds taking statistics over this process's own rows
/// (their backward too): for layers that already see the global batch on every rank, such
/// as heads on all-gathered features.
pub fn with_local_batchnorm<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            LOCAL_BATCHNORM.with(|l| l.set(self.0));
        }
    }
    let _restore = Restore(LOCAL_BATCHNORM.with(|l| l.replace(true)));
    f()
}
