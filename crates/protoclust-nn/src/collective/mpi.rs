//! [`Collective`] over MPI (feature `mpi`): every process of `mpirun`/`srun` is one rank of the
//! world communicator; tensors are staged through host f32 buffers, so any backend works.
//!
//! A collective that does not complete within the timeout (a rank died or hangs) ends this
//! process with one `error:` line, and the launcher then takes the whole job down.

use super::Collective;
use crate::ops::host;
use burn::tensor::{Tensor, TensorData};
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Threading;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The world communicator. MPI is initialised at `MPI_THREAD_SERIALIZED`: any thread may call
/// it as long as calls never overlap, which the mutex around it guarantees.
struct World(SimpleCommunicator);

// SAFETY: at MPI_THREAD_SERIALIZED a communicator may be used from any thread provided the calls
// are serialised; every use goes through `MpiCollective::world`'s mutex.
unsafe impl Send for World {}

/// What the watchdog thread reads: milliseconds since `epoch` at which the collective now in
/// progress started (0: none in progress).
struct Watch {
    epoch: Instant,
    since_ms: AtomicU64,
    what: Mutex<&'static str>,
}

/// The MPI world: rank, size, and the collectives the methods use.
pub struct MpiCollective {
    world: Mutex<World>,
    rank: usize,
    size: usize,
    watch: Arc<Watch>,
    // Finalises MPI when dropped; kept last so the communicator goes first.
    _universe: Universe,
}

/// Why MPI could not start.
#[derive(Debug, thiserror::Error)]
pub enum MpiError {
    /// `MPI_Init_thread` was already called in this process, or failed.
    #[error("MPI could not be initialised (already initialised, or no MPI runtime)")]
    Init,
    /// The library offers less than MPI_THREAD_SERIALIZED.
    #[error("the MPI library offers threading level {0:?}; protoclust needs Serialized")]
    Threading(Threading),
}

impl MpiCollective {
    /// Initialises MPI and starts the watchdog: a collective still running after `timeout` ends
    /// the process with an error naming it.
    pub fn init(timeout: Duration) -> Result<Self, MpiError> {
        let (universe, level) =
            mpi::initialize_with_threading(Threading::Serialized).ok_or(MpiError::Init)?;
        if level < Threading::Serialized {
            return Err(MpiError::Threading(level));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let watch = Arc::new(Watch {
            epoch: Instant::now(),
            since_ms: AtomicU64::new(0),
            what: Mutex::new(""),
        });
        let w = watch.clone();
        std::thread::Builder::new()
            .name("mpi-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(200));
                let since = w.since_ms.load(Ordering::Acquire);
                if since == 0 {
                    continue;
                }
                let now = w.epoch.elapsed().as_millis() as u64;
                if now.saturating_sub(since) > timeout.as_millis() as u64 {
                    let what = *w.what.lock().unwrap_or_else(|e| e.into_inner());
                    eprintln!(
                        "error: rank {rank} of {size}: MPI {what} did not complete within {} s (another rank died or hangs); ending the job",
                        timeout.as_secs()
                    );
                    std::process::exit(3);
                }
            })
            .map_err(|_| MpiError::Init)?;
        Ok(Self {
            world: Mutex::new(World(world)),
            rank,
            size,
            watch,
            _universe: universe,
        })
    }

    /// Runs `f` on the communicator under the watchdog, as collective `what`.
    fn with_world<R>(&self, what: &'static str, f: impl FnOnce(&SimpleCommunicator) -> R) -> R {
        let world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        *self.watch.what.lock().unwrap_or_else(|e| e.into_inner()) = what;
        let start = (self.watch.epoch.elapsed().as_millis() as u64).max(1);
        self.watch.since_ms.store(start, Ordering::Release);
        let r = f(&world.0);
        self.watch.since_ms.store(0, Ordering::Release);
        r
    }

    /// Concatenation of every rank's `values` in rank order; ranks may send different counts.
    pub fn gather_var(&self, values: &[f32]) -> Vec<f32> {
        let mut counts = vec![0i32; self.size];
        let mine = values.len() as i32;
        self.with_world("all-gather (counts)", |w| {
            w.all_gather_into(&mine, &mut counts[..])
        });
        let displs: Vec<i32> = counts
            .iter()
            .scan(0, |acc, &c| {
                let d = *acc;
                *acc += c;
                Some(d)
            })
            .collect();
        let mut out = vec![0f32; counts.iter().map(|&c| c as usize).sum()];
        self.with_world("all-gather", |w| {
            let mut part = PartitionMut::new(&mut out[..], &counts[..], &displs[..]);
            w.all_gather_varcount_into(values, &mut part)
        });
        out
    }

    /// `values` of rank `root` on every rank, in place.
    pub fn broadcast_in_place(&self, values: &mut [f32], root: usize) {
        self.with_world("broadcast", |w| {
            w.process_at_rank(root as i32).broadcast_into(values)
        });
    }
}

/// `values` as a tensor of `shape` on `like`'s device.
fn like<const D: usize>(values: Vec<f32>, shape: [usize; D], like: &Tensor<D>) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), &like.device())
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        let mut v = host::to_f32(t.clone());
        self.sum_host(&mut v);
        like(v, t.dims(), &t)
    }

    fn all_reduce_max<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        let v = host::to_f32(t.clone());
        let mut out = vec![0f32; v.len()];
        self.with_world("all-reduce (max)", |w| {
            w.all_reduce_into(&v[..], &mut out[..], SystemOperation::max())
        });
        like(out, t.dims(), &t)
    }

    fn all_gather<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        let mut dims = t.dims();
        let row: usize = dims[1..].iter().product();
        let out = self.gather_var(&host::to_f32(t.clone()));
        dims[0] = out.len().checked_div(row).unwrap_or(0);
        like(out, dims, &t)
    }

    fn all_gather_host(&self, values: &[f32]) -> Vec<f32> {
        self.gather_var(values)
    }

    fn sum_host(&self, values: &mut [f32]) {
        let send = values.to_vec();
        self.with_world("all-reduce (sum)", |w| {
            w.all_reduce_into(&send[..], values, SystemOperation::sum())
        });
    }

    fn sum_host_f64(&self, values: &mut [f64]) {
        let send = values.to_vec();
        self.with_world("all-reduce (f64 sum)", |w| {
            w.all_reduce_into(&send[..], values, SystemOperation::sum())
        });
    }

    fn broadcast_host(&self, values: &mut [f32], root: usize) {
        self.broadcast_in_place(values, root);
    }
}
