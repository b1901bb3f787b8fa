//! Which processes a training run spans: this one alone, or every rank of an MPI launch
//! (`mpirun`, `srun --mpi=pmix`), found from the launcher's environment.

use anyhow::Result;
use protoclust_nn::collective::World;
use std::time::Duration;

/// The world size an MPI launcher announces, if this process was started by one.
fn launched_size() -> Option<usize> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    var("OMPI_COMM_WORLD_SIZE")
        .or_else(|| var("PMI_SIZE"))
        .or_else(|| std::env::var_os("PMIX_RANK").and(var("SLURM_NTASKS").or(Some(0))))
}

/// Processes of this launch on this host (OpenMPI tells; 1 otherwise).
pub fn local_ranks() -> usize {
    std::env::var("OMPI_COMM_WORLD_LOCAL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// This run's world: MPI's when launched by an MPI launcher (collectives time out after
/// `timeout`), one process otherwise.
pub fn join(timeout: Duration) -> Result<World> {
    let Some(size) = launched_size() else {
        return Ok(World::Single);
    };
    mpi_world(size, timeout)
}

#[cfg(feature = "mpi")]
fn mpi_world(_size: usize, timeout: Duration) -> Result<World> {
    let c = protoclust_nn::collective::mpi::MpiCollective::init(timeout)?;
    Ok(World::Mpi(std::sync::Arc::new(c)))
}

#[cfg(not(feature = "mpi"))]
fn mpi_world(size: usize, _timeout: Duration) -> Result<World> {
    if size == 1 {
        return Ok(World::Single);
    }
    anyhow::bail!(
        "started by an MPI launcher ({} processes) but this binary was built without MPI: \
         build with `cargo build --release --features mpi`",
        if size == 0 {
            "several".to_string()
        } else {
            size.to_string()
        }
    )
}
