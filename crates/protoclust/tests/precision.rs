//! Mixed-precision training (`train.precision`): the first loss within the half type's
//! rounding of float32's, parameters and optimiser state in float32, float16 losses scaled.

mod common;

use burn::tensor::{DType, Device};
use protoclust::runner;
use protoclust_nn::optim::loss_scale::INIT_SCALE;
use protoclust_nn::precision::Precision;
use protoclust_train::Checkpoint;
use std::path::PathBuf;

/// Whether the CPU kernels compute bf16 here (AVX512-BF16); elsewhere `train.precision =
/// "bf16"` on the CPU is refused.
fn cpu_bf16() -> bool {
    protoclust_nn::kernels::bf16_gemm::supported()
}

/// Asserts `e` is the one-line refusal of bf16 training on a CPU without AVX512-BF16.
fn assert_bf16_refusal(e: &anyhow::Error) {
    let line = protoclust::error_line(e);
    assert!(
        !line.contains('\n') && line.contains("avx512_bf16") && line.contains("train.precision"),
        "{line}"
    );
}

/// Trains the tiny SwAV run (6 steps) in `precision`; returns its run directory, final
/// checkpoint and the parameters' dtypes.
fn run(precision: Precision, name: &str) -> (PathBuf, Checkpoint, Vec<DType>) {
    let dir = common::scratch(name);
    let mut c = common::tiny_config(&dir, 2);
    c.train.precision = precision;
    let s = runner::run(&c, None, true, &Device::flex()).unwrap();
    assert_eq!(s.iterations, 6);
    struct Dtypes(Vec<DType>);
    impl burn::module::ModuleVisitor for Dtypes {
        fn visit_float<const D: usize>(
            &mut self,
            p: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            self.0.push(p.val().dtype());
        }
    }
    let mut d = Dtypes(Vec::new());
    burn::module::Module::visit(&s.model, &mut d);
    (dir, Checkpoint::load(&s.last_checkpoint).unwrap(), d.0)
}

/// The logged per-step records of a run's metrics.jsonl.
fn steps(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .collect()
}

#[test]
fn half_precision_runs_keep_float32_state_and_the_first_loss() {
    let (full, _, full_dtypes) = run(Precision::F32, "precision-f32");
    assert!(full_dtypes.iter().all(|d| *d == DType::F32));
    let first = steps(&full)[0]["loss"].as_f64().unwrap();
    // Unit roundoff u: bfloat16 2^-9, float16 2^-12. The first step's loss is computed before
    // any update, from features within some tens of u of float32 (tests/precision.rs of
    // protoclust-nn); 64u is the bound.
    for (precision, u) in [
        (Precision::Bf16, 2f64.powi(-9)),
        (Precision::F16, 2f64.powi(-12)),
    ] {
        if precision == Precision::Bf16 && !cpu_bf16() {
            let dir = common::scratch("precision-bf16-refused");
            let mut c = common::tiny_config(&dir, 2);
            c.train.precision = precision;
            let Err(e) = runner::run(&c, None, true, &Device::flex()) else {
                panic!("bf16 training ran on a CPU without AVX512-BF16");
            };
            assert_bf16_refusal(&e);
            assert!(
                !dir.join("metrics.jsonl").exists(),
                "refused before writing"
            );
            continue;
        }
        let (dir, ck, dtypes) = run(precision, &format!("precision-{precision}"));
        assert!(
            dtypes.iter().all(|d| *d == DType::F32),
            "{precision}: master weights stay float32, got {dtypes:?}"
        );
        let log = steps(&dir);
        assert_eq!(log.len(), 6);
        let loss = log[0]["loss"].as_f64().unwrap();
        let off = (loss - first).abs() / first;
        assert!(
            off > 0.0,
            "{precision}: the half-precision path was not taken"
        );
        assert!(
            off < 64.0 * u,
            "{precision}: first loss {loss} against {first} (u = {u})"
        );
        assert!(log.iter().all(|r| r["loss"].as_f64().unwrap().is_finite()));
        let scale = ck.optim.get("loss_scaler.scale").map(|t| t.data[0]);
        match precision {
            Precision::F16 => {
                // PyTorch's GradScaler rule: every overflow halves the scale and skips the step.
                let last = log.last().unwrap();
                let skips = last["overflow_skips"].as_u64().unwrap();
                assert_eq!(last["loss_scale"].as_f64().map(|v| v as f32), scale);
                assert_eq!(scale, Some(INIT_SCALE / 2f32.powi(skips as i32)));
                assert!(skips < 6, "some float16 step was taken");
            }
            _ => {
                assert_eq!(scale, None, "{precision} needs no loss scaling");
                assert!(log[0].get("loss_scale").is_none());
            }
        }
    }
}

#[test]
fn every_method_trains_in_half_precision() {
    for method in ["odc", "deepcluster", "deepclusterv2", "jigclu", "slotcon"] {
        for precision in [Precision::Bf16, Precision::F16] {
            let dir = common::scratch(&format!("precision-{method}-{precision}"));
            let mut c = common::tiny_method_config(&dir, method);
            c.train.precision = precision;
            let s = runner::run(&c, None, true, &Device::flex());
            if precision == Precision::Bf16 && !cpu_bf16() {
                let Err(e) = s else {
                    panic!("{method}: bf16 training ran on a CPU without AVX512-BF16");
                };
                assert_bf16_refusal(&e);
                continue;
            }
            let s = s.unwrap_or_else(|e| panic!("{method} in {precision}: {e:#}"));
            let loss = s.last_epoch_loss.unwrap();
            assert!(loss.is_finite(), "{method} in {precision}: loss {loss}");
        }
    }
}

/// `extract --precision bf16`: the features follow f32's to bf16's rounding on a CPU with
/// AVX512-BF16; without it (or with the AVX-512 kernels turned off) a one-line refusal naming
/// the CPU feature, and nothing written.
#[test]
fn extract_in_bf16_follows_f32_or_is_refused_in_one_line() {
    let dir = common::scratch("extract-bf16");
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/released/swav_w8.pth.tar");
    let extract = |precision: &str, out: &str, vectors: Option<&str>| {
        let out = dir.join(out);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_protoclust"));
        cmd.args([
            "extract",
            model.to_str().unwrap(),
            "--data",
            "synthetic:6:64",
        ])
        .args(["--out", out.to_str().unwrap(), "--precision", precision]);
        if let Some(v) = vectors {
            cmd.env("PROTOCLUST_VECTORS", v);
        }
        (cmd.output().unwrap(), out)
    };
    let features = |path: &std::path::Path| {
        let (t, _) = protoclust_nn::io::load(path).unwrap();
        t["features"].data.clone()
    };
    let (o, f32_out) = extract("f32", "f32.safetensors", None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (o, refused) = extract("bf16", "avx2.safetensors", Some("avx2"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !refused.exists());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("AVX512-BF16") && err.contains("avx512_bf16"),
        "{err}"
    );
    let (o, bf16_out) = extract("bf16", "bf16.safetensors", None);
    if !protoclust_nn::kernels::bf16_gemm::supported() {
        assert!(!o.status.success() && !bf16_out.exists());
        return;
    }
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (features(&f32_out), features(&bf16_out));
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        err > 0.0 && err <= 2e-2 * scale,
        "max|bf16 − f32| {err:e} of {scale:e}"
    );
}

/// `train` with `train.precision = "bf16"` and the AVX-512 kernels turned off (as on a CPU
/// without AVX512-BF16): one line naming the CPU feature, nothing written.
#[test]
fn bf16_training_without_the_cpu_feature_is_refused_in_one_line() {
    let dir = common::scratch("train-bf16-refused");
    let run_dir = dir.join("run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_protoclust"))
        .args(["train", "configs/swav_cifar10.toml", "--quiet"])
        .args(["--set", "data.kind=synthetic", "--set", "data.len=256"])
        .args(["--set", "train.precision=bf16", "--set", "train.epochs=1"])
        .args(["--set", "swav.freeze_prototypes_iterations=1"])
        .args(["--set", &format!("train.run_dir={}", run_dir.display())])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("PROTOCLUST_VECTORS", "avx2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    // The run's header line, then the error in one line.
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: train.precision") && last.contains("avx512_bf16"),
        "{err}"
    );
    assert_eq!(err.matches("error").count(), 1, "{err}");
    assert!(!run_dir.exists(), "nothing written");
}
