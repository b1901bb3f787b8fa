//! Data-parallel training under `mpirun` (feature `mpi`) against one process on the same
//! global batch: the first steps of SwAV (with and without the queue), ODC, DeepCluster, JigClu
//! and SlotCon (also with Sinkhorn-Knopp teacher centering) give the same losses, parameters
//! and method state (memories, centre, queue) on 2 and 3 ranks over shared memory (SwAV also 2
//! over TCP on loopback), with SyncBatchNorm; without it (per-rank statistics) they differ.
//! Skips with a message when `mpirun` is missing.
#![cfg(feature = "mpi")]

mod common;

use common::{scratch, tiny_config, tiny_method_config};
use protoclust::config::RunConfig;
use protoclust_methods::slotcon::TeacherCentering;
use protoclust_nn::named::HostTensor;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Steps compared.
const STEPS: u64 = 3;

fn config(dir: &Path, queue: bool, sync_bn: bool) -> RunConfig {
    let mut c = tiny_config(dir, 2);
    // A global batch of 12 splits into 2 and 3 equal parts.
    c.loader.batch_size = 12;
    c.swav.queue_length = if queue { 24 } else { 0 };
    c.train.stop_after_iterations = Some(STEPS);
    c.train.checkpoint_every_iterations = 0;
    c.train.sync_batchnorm = sync_bn;
    c
}

/// A tiny run of `method` (not SwAV) with a global batch of 12.
fn method_config(dir: &Path, method: &str, sync_bn: bool) -> RunConfig {
    let mut c = tiny_method_config(dir, method);
    c.loader.batch_size = 12;
    // 36 images: three global batches, so every step sees new samples.
    c.data.len = 36;
    c.train.stop_after_iterations = Some(STEPS);
    c.train.checkpoint_every_iterations = 0;
    c.train.sync_batchnorm = sync_bn;
    c
}

/// OpenMPI transport options: shared memory (its default on one host) or TCP over loopback.
const TCP_OVER_LO: [&str; 6] = [
    "--mca",
    "btl",
    "self,tcp",
    "--mca",
    "btl_tcp_if_include",
    "lo",
];

/// Runs `protoclust train` on `cfg` in `np` processes (1: without mpirun); returns the step
/// losses and the parameters of the last checkpoint, with its method state under `method:`.
fn train(cfg: &RunConfig, np: usize) -> (Vec<f64>, BTreeMap<String, HostTensor>) {
    train_over(cfg, np, &[])
}

/// [`train`] with extra `mpirun` options.
fn train_over(
    cfg: &RunConfig,
    np: usize,
    mpirun: &[&str],
) -> (Vec<f64>, BTreeMap<String, HostTensor>) {
    let dir = &cfg.train.run_dir;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("run.toml");
    std::fs::write(&path, toml::to_string(cfg).unwrap()).unwrap();
    let bin = env!("CARGO_BIN_EXE_protoclust");
    let mut cmd = if np == 1 {
        Command::new(bin)
    } else {
        let mut m = Command::new("mpirun");
        m.args(["--oversubscribe", "-np", &np.to_string()])
            .args(mpirun)
            .arg(bin);
        m
    };
    let out = cmd
        .args(["train", path.to_str().unwrap(), "--quiet"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "np {np}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let losses = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect();
    let ck = protoclust_train::checkpoint::Checkpoint::load(
        &protoclust_train::engine::last_checkpoint_path(dir),
    )
    .unwrap();
    let mut tensors = ck.model;
    for (k, v) in ck.method {
        tensors.insert(format!("method:{k}"), v);
    }
    (losses, tensors)
}

/// The rows of a 2-D tensor in sorted order (SwAV's queue: the ranks' queues, gathered, hold
/// the one-process queue's rows in another order; Sinkhorn takes them as a set).
fn sorted_rows(t: &HostTensor) -> HostTensor {
    let width = *t.shape.last().unwrap_or(&1);
    let mut rows: Vec<&[f32]> = t.data.chunks(width.max(1)).collect();
    rows.sort_by(|x, y| x.partial_cmp(y).unwrap());
    HostTensor {
        shape: t.shape.clone(),
        data: rows.concat(),
    }
}

/// The largest per-tensor error over its bound (the fixtures README's float32 rule).
fn worst(a: &BTreeMap<String, HostTensor>, b: &BTreeMap<String, HostTensor>) -> (f64, String) {
    let mut worst = (0.0, String::new());
    for (name, ta) in a {
        if name == "method:queue.ranks" {
            continue; // the world size itself
        }
        let (ta, tb) = if name.starts_with("method:queue.") && ta.shape.len() == 2 {
            (&sorted_rows(ta), &sorted_rows(&b[name]))
        } else {
            (ta, &b[name])
        };
        let scale = tb.data.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
        let err = ta
            .data
            .iter()
            .zip(&tb.data)
            .fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()));
        let ratio = err / (2e-5 * scale + 1e-7);
        if ratio > worst.0 {
            worst = (ratio, name.clone());
        }
    }
    worst
}

/// Runs `make(dir, sync_bn)` in one process, then under `-np 2`, `-np 3` and `-np 2` over TCP
/// with SyncBatchNorm (same losses, every tensor within its float32 bound), and under `-np 2`
/// without it (some tensor far off: the negative control).
fn equals_one_process(what: &str, make: &dyn Fn(&Path, bool) -> RunConfig) {
    let dir = scratch(&format!("mpi-{}", what.replace([' ', ','], "-")));
    let (losses, params) = train(&make(&dir.join("np1"), true), 1);
    assert_eq!(losses.len() as u64, STEPS, "{what}");
    for (np, mpirun) in [(2, &[][..]), (3, &[][..]), (2, &TCP_OVER_LO[..])] {
        let name = format!("np{np}{}", if mpirun.is_empty() { "" } else { "-tcp" });
        let (l, p) = train_over(&make(&dir.join(&name), true), np, mpirun);
        for (a, b) in l.iter().zip(&losses) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs(),
                "{what}, {name}: losses {l:?} vs {losses:?}"
            );
        }
        assert_eq!(p.len(), params.len(), "{what}, {name}: tensors");
        let (ratio, worst_name) = worst(&p, &params);
        eprintln!("{what}, {name}: losses {l:?} vs {losses:?}; worst tensor {worst_name} at {ratio:.3} of its bound");
        assert!(
            ratio <= 1.0,
            "{what}, {name}: {worst_name} off by {ratio:.2}× the bound"
        );
    }
    let (_, p) = train(&make(&dir.join("np2-local-bn"), false), 2);
    let (ratio, name) = worst(&p, &params);
    eprintln!("{what}, np 2 without SyncBatchNorm: worst tensor {name} at {ratio:.1}× its bound");
    assert!(
        ratio > 1.0,
        "{what}: without SyncBatchNorm {name} still matches ({ratio:.2})"
    );
}

fn have_mpirun() -> bool {
    let found = Command::new("mpirun").arg("--version").output().is_ok();
    if !found {
        eprintln!("skipped: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)");
    }
    found
}

#[test]
fn data_parallel_swav_equals_one_process() {
    if !have_mpirun() {
        return;
    }
    for queue in [false, true] {
        equals_one_process(&format!("swav queue {queue}"), &|dir, sync_bn| {
            config(dir, queue, sync_bn)
        });
    }
}

#[test]
fn data_parallel_odc_deepcluster_jigclu_slotcon_equal_one_process() {
    if !have_mpirun() {
        return;
    }
    for method in ["odc", "deepcluster", "deepclusterv2", "jigclu", "slotcon"] {
        equals_one_process(method, &|dir, sync_bn| method_config(dir, method, sync_bn));
    }
    // SlotCon's Sinkhorn-Knopp teacher centering sums over every rank's pixel rows.
    equals_one_process("slotcon sinkhorn centering", &|dir, sync_bn| {
        let mut c = method_config(dir, "slotcon", sync_bn);
        c.slotcon.teacher_centering = TeacherCentering::Sinkhorn;
        c
    });
}

/// Writes `cfg` beside its run directory and returns the `protoclust train` command under
/// `mpirun -np np`.
fn mpirun_train(cfg: &RunConfig, np: usize, extra: &[&str]) -> Command {
    let dir = &cfg.train.run_dir;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("run.toml");
    std::fs::write(&path, toml::to_string(cfg).unwrap()).unwrap();
    let mut m = Command::new("mpirun");
    m.args(["--oversubscribe", "-np", &np.to_string()])
        .arg(env!("CARGO_BIN_EXE_protoclust"))
        .args(["train", path.to_str().unwrap(), "--quiet"])
        .args(extra)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    m
}

#[test]
fn a_two_rank_run_killed_and_resumed_is_bit_identical() {
    if !have_mpirun() {
        return;
    }
    for method in [
        "swav",
        "odc",
        "deepcluster",
        "deepclusterv2",
        "jigclu",
        "slotcon",
    ] {
        let dir = scratch(&format!("mpi-resume-{method}"));
        let whole = if method == "swav" {
            config(&dir.join("whole"), true, true)
        } else {
            method_config(&dir.join("whole"), method, true)
        };
        resumed_equals_whole(whole, method);
    }
}

/// Stops a 2-rank copy of `whole` at iteration 2, resumes it to 4, and compares every tensor
/// with `whole` run to 4 at once.
fn resumed_equals_whole(mut whole: RunConfig, method: &str) {
    let dir = whole.train.run_dir.parent().unwrap().to_path_buf();
    whole.train.stop_after_iterations = Some(4);
    let (_, want) = train(&whole, 2);
    let mut part = whole.clone();
    part.train.run_dir = dir.join("part");
    part.train.stop_after_iterations = Some(2);
    train(&part, 2);
    part.train.stop_after_iterations = Some(4);
    let out = mpirun_train(&part, 2, &["--resume"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ck = protoclust_train::checkpoint::Checkpoint::load(
        &protoclust_train::engine::last_checkpoint_path(&part.train.run_dir),
    )
    .unwrap();
    assert_eq!(ck.meta.iteration, 4);
    for (name, t) in &want {
        let got = match name.strip_prefix("method:") {
            Some(state) => &ck.method[state],
            None => &ck.model[name],
        };
        assert_eq!(
            got.data, t.data,
            "{method}: {name} differs after the resume"
        );
    }
}

/// The rank number of a process whose command line names `config`, if it is an MPI rank.
fn rank_of(pid: u32, config: &Path) -> Option<usize> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let wanted = config.to_str()?.as_bytes();
    if !cmdline.windows(wanted.len()).any(|w| w == wanted) {
        return None;
    }
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("OMPI_COMM_WORLD_RANK="))
        .and_then(|r| r.parse().ok())
}

/// Starts a long 2-rank run, sends `signal` to rank 1 once training runs, and returns the
/// job's stderr and the seconds from the signal to the job's end (asserting it failed).
fn signal_rank_one(name: &str, signal: &str, timeout_s: u64) -> (String, f64) {
    let dir = scratch(name);
    let mut cfg = config(&dir, false, true);
    cfg.train.epochs = 10_000;
    cfg.train.stop_after_iterations = None;
    cfg.train.collective_timeout_s = timeout_s;
    let mut child = mpirun_train(&cfg, 2, &[])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let config = dir.join("run.toml");
    let victim = loop {
        assert!(started.elapsed().as_secs() < 120, "training never started");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let steps = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap_or_default();
        if !steps.contains("\"step\"") {
            continue;
        }
        let pids = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok());
        if let Some(pid) = pids.into_iter().find(|&p| rank_of(p, &config) == Some(1)) {
            break pid;
        }
    };
    Command::new("kill")
        .args([signal, &victim.to_string()])
        .status()
        .unwrap();
    let sent = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                !status.success(),
                "the job reported success after rank 1 got {signal}"
            );
            break;
        }
        assert!(
            sent.elapsed().as_secs() < 90,
            "the job still runs 90 s after rank 1 got {signal}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (err, sent.elapsed().as_secs_f64())
}

#[test]
fn a_rank_that_dies_or_hangs_ends_the_job_with_an_error() {
    if !have_mpirun() {
        return;
    }
    // Killed: the launcher notices and ends the job.
    let (err, secs) = signal_rank_one("mpi-kill", "-KILL", 60);
    eprintln!("rank 1 killed: the job ended {secs:.1} s later:\n{err}");
    assert!(err.contains("rank 1") || err.contains("exited"), "{err}");
    // Stopped (a hang): rank 0's collective times out and ends the job with its own error.
    let (err, secs) = signal_rank_one("mpi-hang", "-STOP", 5);
    eprintln!("rank 1 stopped: the job ended {secs:.1} s later:\n{err}");
    assert!(err.contains("did not complete within 5 s"), "{err}");
}
