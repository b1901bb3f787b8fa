//! The MPI collective under `mpirun -np 2` and `-np 3` (feature `mpi`): each rank checks the
//! results of all-reduce, all-gather with different counts per rank (tensor and host; also the
//! tracked gather of the global batch's rows and its gradient, and the mean share), and
//! broadcast against what every rank can compute alone. Skips with a message when `mpirun` is
//! missing.
#![cfg(feature = "mpi")]

use burn::tensor::{Device, Tensor, TensorData};
use protoclust_nn::collective::global_batch::{gather_rows_tracked, mean_share, row_span};
use protoclust_nn::collective::mpi::MpiCollective;
use protoclust_nn::collective::Collective;
use std::process::Command;
use std::time::Duration;

const CHILD: &str = "PROTOCLUST_MPI_TEST_CHILD";

/// Rank r's values: r + i / 10 for i in 0..len.
fn values(rank: usize, len: usize) -> Vec<f32> {
    (0..len).map(|i| rank as f32 + i as f32 / 10.0).collect()
}

fn vec_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// What one rank runs.
fn child() {
    let c = MpiCollective::init(Duration::from_secs(60)).expect("MPI init");
    let (rank, n) = (c.rank(), c.world_size());
    let device = Device::flex();
    let t = Tensor::<2>::from_data(TensorData::new(values(rank, 6), [2, 3]), &device);
    let sum = vec_of(c.all_reduce_sum(t.clone()));
    let want: Vec<f32> = (0..6)
        .map(|i| (0..n).map(|r| values(r, 6)[i]).sum())
        .collect();
    assert_eq!(sum, want, "rank {rank}: all-reduce sum");
    let max = vec_of(c.all_reduce_max(t));
    assert_eq!(max, values(n - 1, 6), "rank {rank}: all-reduce max");
    // Rank r sends r + 1 rows of 2.
    let rows = rank + 1;
    let mine = Tensor::<2>::from_data(TensorData::new(values(rank, 2 * rows), [rows, 2]), &device);
    let g = c.all_gather(mine);
    let total: usize = (1..=n).sum();
    assert_eq!(g.dims(), [total, 2], "rank {rank}: all-gather shape");
    let want: Vec<f32> = (0..n).flat_map(|r| values(r, 2 * (r + 1))).collect();
    assert_eq!(vec_of(g), want, "rank {rank}: all-gather in rank order");
    let host = c.all_gather_host(&values(rank, 2 * rows));
    assert_eq!(host, want, "rank {rank}: host all-gather in rank order");
    // The global batch's rows: span and gradient scaling.
    let span = row_span(&c, rows);
    assert_eq!(
        (span.offset, span.total),
        ((1..=rank).sum(), total),
        "rank {rank}: row span"
    );
    let share = mean_share(&c, rows as f64);
    let want_share = (rows * n) as f64 / total as f64;
    assert!(
        (share - want_share).abs() < 1e-12,
        "rank {rank}: mean share {share}, expected {want_share}"
    );
    assert_eq!(mean_share(&c, 0.0), 0.0, "rank {rank}: no weight anywhere");
    let ad = device.clone().autodiff();
    let x = Tensor::<2>::from_data(TensorData::new(values(rank, 2 * rows), [rows, 2]), &ad)
        .require_grad();
    let all = gather_rows_tracked(&c, x.clone());
    assert_eq!(
        vec_of(all.clone()),
        want,
        "rank {rank}: tracked gather values"
    );
    let w: Vec<f32> = (0..2 * total).map(|i| i as f32).collect();
    let loss = (all * Tensor::<2>::from_data(TensorData::new(w.clone(), [total, 2]), &ad)).sum();
    let grads = loss.backward();
    let gx = vec_of(x.grad(&grads).unwrap());
    let own: Vec<f32> = w[2 * span.offset..2 * (span.offset + rows)]
        .iter()
        .map(|v| v * n as f32)
        .collect();
    assert_eq!(gx, own, "rank {rank}: gradient of own rows, × world size");
    let mut b = values(rank, 4);
    c.broadcast_in_place(&mut b, n - 1);
    assert_eq!(
        b,
        values(n - 1, 4),
        "rank {rank}: broadcast from the last rank"
    );
    println!("rank {rank} of {n}: ok");
}

#[test]
fn collectives_agree_on_every_rank() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    if Command::new("mpirun").arg("--version").output().is_err() {
        eprintln!("skipped: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for np in ["2", "3"] {
        let out = Command::new("mpirun")
            .args(["--oversubscribe", "-np", np])
            .arg(&exe)
            .args(["--exact", "collectives_agree_on_every_rank", "--nocapture"])
            .env(CHILD, "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "mpirun -np {np} failed:\n{text}");
        for r in 0..np.parse().unwrap() {
            assert!(
                text.contains(&format!("rank {r} of {np}: ok")),
                "rank {r} of {np}:\n{text}"
            );
        }
    }
}
