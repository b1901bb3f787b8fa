//! A run stopped mid-epoch and resumed ends bit-identical to an uninterrupted run.

mod common;

use burn::tensor::Device;
use protoclust::runner;
use protoclust_nn::named::named_tensors;
use protoclust_train::Checkpoint;

#[test]
fn resumed_run_equals_uninterrupted_run() {
    // On the device `PROTOCLUST_DEVICE` names (CI runs it on wgpu too). Bit-identical on flex;
    // on cubecl (wgpu) burn's results move by an ulp with the memory pool's history (two
    // identical runs in one process differ once unrelated tensors were kept alive between
    // them), so there the resumed state must match to rounding: a lost queue, momentum or
    // position moves it by orders of magnitude more.
    let dev = common::device();
    let exact = protoclust_nn::kernels::is_flex(&dev);
    let a_dir = common::scratch("resume-a");
    let b_dir = common::scratch("resume-b");
    let full = common::tiny_config(&a_dir, 2);
    let a = runner::run(&full, None, true, &dev).unwrap();
    assert_eq!(a.iterations, 6);

    // Killed after 4 iterations: mid-way through the second epoch, with the queue in use.
    let mut part = common::tiny_config(&b_dir, 2);
    part.train.stop_after_iterations = Some(4);
    let b = runner::run(&part, None, true, &dev).unwrap();
    assert_eq!(b.iterations, 4);
    let ck = Checkpoint::load(&b.last_checkpoint).unwrap();
    assert_eq!((ck.meta.epoch, ck.meta.batch, ck.meta.iteration), (1, 1, 4));
    assert!(
        ck.method.contains_key("queue.0"),
        "queue state is checkpointed"
    );
    assert!(
        ck.optim.keys().any(|k| k.ends_with(".buf1")),
        "momentum is checkpointed"
    );

    let resumed_cfg = common::tiny_config(&b_dir, 2);
    let c = runner::run(&resumed_cfg, Some(&b.last_checkpoint), true, &dev).unwrap();
    assert_eq!(c.iterations, 6);

    assert_same_state(
        &a.last_checkpoint,
        &c.last_checkpoint,
        if exact { 0.0 } else { 1e-4 },
    );
    // And the run did move the parameters (the comparison is not vacuous).
    let fresh = {
        let (swav, _) = runner::build(&full).unwrap();
        use protoclust_methods::Method;
        named_tensors(&swav.init_model(full.seed, &dev.clone().autodiff()).unwrap())
    };
    let ta = Checkpoint::load(&a.last_checkpoint).unwrap().model;
    let moved = ta
        .iter()
        .any(|(k, v)| v.data.iter().zip(&fresh[k].data).any(|(p, q)| p != q));
    assert!(moved);
}

#[test]
fn resumed_float16_run_equals_uninterrupted_run() {
    // The loss scaler's scale and count of good steps travel in the checkpoint.
    let dev = Device::flex();
    let cfg = |dir: &std::path::Path, stop: Option<u64>| {
        let mut c = common::tiny_config(dir, 2);
        c.train.precision = protoclust_nn::precision::Precision::F16;
        c.train.stop_after_iterations = stop;
        c
    };
    let a_dir = common::scratch("resume-f16-a");
    let b_dir = common::scratch("resume-f16-b");
    let a = runner::run(&cfg(&a_dir, None), None, true, &dev).unwrap();
    let b = runner::run(&cfg(&b_dir, Some(4)), None, true, &dev).unwrap();
    let ck = Checkpoint::load(&b.last_checkpoint).unwrap();
    assert!(
        ck.optim.contains_key("loss_scaler.scale"),
        "the loss scale is checkpointed"
    );
    let c = runner::run(&cfg(&b_dir, None), Some(&b.last_checkpoint), true, &dev).unwrap();
    assert_eq!(c.iterations, 6);
    assert_same_state(&a.last_checkpoint, &c.last_checkpoint, 0.0);
}

/// Model, optimiser and method state of two checkpoints are equal, to `within` times each
/// tensor's largest magnitude or 1, whichever is larger (0: bit-identical; a bias followed by
/// BatchNorm has a gradient of pure rounding noise, so tiny tensors are held absolutely).
fn assert_same_state(a: &std::path::Path, c: &std::path::Path, within: f32) {
    let (a, c) = (Checkpoint::load(a).unwrap(), Checkpoint::load(c).unwrap());
    assert_eq!(
        (a.meta.epoch, a.meta.batch, a.meta.iteration),
        (c.meta.epoch, c.meta.batch, c.meta.iteration)
    );
    for (what, x, y) in [
        ("model", &a.model, &c.model),
        ("optimiser", &a.optim, &c.optim),
        ("method", &a.method, &c.method),
    ] {
        assert_eq!(
            x.keys().collect::<Vec<_>>(),
            y.keys().collect::<Vec<_>>(),
            "{what} tensors"
        );
        for (name, t) in x {
            let worst = t
                .data
                .iter()
                .zip(&y[name].data)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            let scale = t.data.iter().fold(1f32, |m, v| m.max(v.abs()));
            assert!(
                worst <= within * scale,
                "resumed {what} tensor {name} differs by {worst} (allowed {})",
                within * scale
            );
        }
    }
}

#[test]
fn odc_deepcluster_jigclu_and_slotcon_resume_mid_epoch_with_their_memories() {
    let dev = Device::flex();
    for method in ["odc", "deepcluster", "deepclusterv2", "jigclu", "slotcon"] {
        eprintln!("resume: {method}");
        let a_dir = common::scratch(&format!("resume-{method}-a"));
        let b_dir = common::scratch(&format!("resume-{method}-b"));
        let a = runner::run(
            &common::tiny_method_config(&a_dir, method),
            None,
            true,
            &dev,
        )
        .unwrap();
        assert_eq!(a.iterations, 8);
        let mut part = common::tiny_method_config(&b_dir, method);
        part.train.stop_after_iterations = Some(6);
        let b = runner::run(&part, None, true, &dev).unwrap();
        let ck = Checkpoint::load(&b.last_checkpoint).unwrap();
        assert_eq!(
            (ck.meta.epoch, ck.meta.batch),
            (1, 2),
            "{method}: stopped mid-epoch"
        );
        let memory_keys: &[&str] = match method {
            "odc" => &["odc.bank", "odc.centroids", "odc.labels", "odc.loss_weight"],
            "deepcluster" => &["deepcluster.labels"],
            "deepclusterv2" => &["bank.0", "bank.1", "bank.index", "targets"],
            "slotcon" => &["slotcon.center"], // the teacher is part of the model
            _ => &[], // JigClu keeps no state: its montage permutation is drawn from (seed, iteration)
        };
        for k in memory_keys {
            assert!(ck.method.contains_key(*k), "{method}: {k} is checkpointed");
        }
        let c = runner::run(
            &common::tiny_method_config(&b_dir, method),
            Some(&b.last_checkpoint),
            true,
            &dev,
        )
        .unwrap();
        assert_eq!(c.iterations, 8);
        assert_same_state(&a.last_checkpoint, &c.last_checkpoint, 0.0);
        if !["odc", "slotcon", "deepclusterv2"].contains(&method) {
            continue;
        }
        // The memories did change after the stop (the comparison is not vacuous).
        let last = Checkpoint::load(&c.last_checkpoint).unwrap();
        let key = memory_keys[0];
        assert!(
            ck.method[key].data != last.method[key].data,
            "{method}: {key} did not move"
        );
    }
}

#[test]
fn online_knn_monitor_records_init_and_epoch_accuracies() {
    use protoclust::data_spec::{DataKind, DataSpec};
    let d = common::scratch("monitor");
    let mut cfg = common::tiny_config(&d, 2);
    let split = |seed| DataSpec {
        kind: DataKind::Synthetic,
        len: 30,
        size: 16,
        seed,
        ..Default::default()
    };
    cfg.monitor.every_epochs = 1;
    cfg.monitor.train = Some(split(3));
    cfg.monitor.test = Some(split(4));
    cfg.monitor.knn = vec![(5, 0.07)];
    cfg.eval_view.resize = 16;
    cfg.eval_view.size = 16;
    let s = runner::run(&cfg, None, true, &Device::flex()).unwrap();
    assert_eq!(s.knn.len(), 1);
    assert!((0.0..=100.0).contains(&s.knn[0].top1) && s.knn[0].top5 >= s.knn[0].top1);
    let log = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    let kinds: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
        .collect();
    assert_eq!(kinds.iter().filter(|k| k.contains("knn_init")).count(), 1);
    let epochs_with_knn = log
        .lines()
        .filter(|l| l.contains("\"epoch\"") && l.contains("\"knn\"") && !l.contains("knn_init"))
        .count();
    assert_eq!(epochs_with_knn, 2);
}

/// Flips one bit near the end of a file (inside its tensor data).
fn corrupt(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 0x04;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_corrupt_last_resumes_from_the_newest_valid_periodic_checkpoint() {
    let dev = Device::flex();
    let a_dir = common::scratch("resume-corrupt-a");
    let b_dir = common::scratch("resume-corrupt-b");
    let mut full = common::tiny_config(&a_dir, 3);
    full.train.checkpoint_every_iterations = 0;
    let a = runner::run(&full, None, true, &dev).unwrap();

    let mut part = common::tiny_config(&b_dir, 3);
    part.train.checkpoint_every_iterations = 0;
    part.train.checkpoint_every_epochs = 1;
    part.train.stop_after_iterations = Some(8); // mid-way through the third epoch
    let b = runner::run(&part, None, true, &dev).unwrap();
    let ckdir = b_dir.join("checkpoints");
    corrupt(&b.last_checkpoint);
    corrupt(&ckdir.join("epoch-0002.safetensors"));
    let err = Checkpoint::load(&b.last_checkpoint)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("last.safetensors") && err.contains("corrupt"),
        "{err}"
    );

    // The default resume path falls back to epoch-0001 (epoch-0002 is corrupt too) and the
    // run still ends bit-identical to the uninterrupted one.
    let (ck, warning) = Checkpoint::load_for_resume(&b.last_checkpoint).unwrap();
    assert_eq!(ck.meta.epoch, 1);
    let w = warning.unwrap();
    assert!(w.contains("epoch-0001") && w.contains("epoch-0002"), "{w}");
    let mut resumed = common::tiny_config(&b_dir, 3);
    resumed.train.checkpoint_every_iterations = 0;
    let c = runner::run(&resumed, Some(&b.last_checkpoint), true, &dev).unwrap();
    assert_same_state(&a.last_checkpoint, &c.last_checkpoint, 0.0);

    // An explicitly named corrupt checkpoint is refused, never used.
    let named = ckdir.join("epoch-0002.safetensors");
    let e = runner::run(&resumed, Some(&named), true, &dev)
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("corrupt"), "{e:#}");
    // With no readable periodic checkpoint left, the corrupt last is refused too.
    corrupt(&b.last_checkpoint);
    corrupt(&ckdir.join("epoch-0001.safetensors"));
    let e = Checkpoint::load_for_resume(&b.last_checkpoint)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no readable periodic checkpoint"), "{e}");
}

#[test]
fn two_identical_runs_write_byte_identical_checkpoints() {
    // The checkpoint's sha256 means something: same config, same data, same bytes (the
    // safetensors metadata map no longer comes out in a per-map hash order). On flex: burn's
    // cubecl results depend on the memory pool's history, which tests running beside each
    // other in one process share (docs/backends.md).
    let dev = Device::flex();
    let dir = common::scratch("identical-runs");
    let cfg = common::tiny_config(&dir, 1);
    let bytes = |_: u32| {
        let _ = std::fs::remove_dir_all(&cfg.train.run_dir);
        let s = runner::run(&cfg, None, true, &dev).unwrap();
        std::fs::read(&s.last_checkpoint).unwrap()
    };
    let (a, b) = (bytes(0), bytes(1));
    assert!(
        a == b,
        "two identical runs wrote different checkpoint bytes"
    );
}
