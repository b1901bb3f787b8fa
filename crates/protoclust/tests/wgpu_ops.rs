//! The two burn 0.22 cubecl defects found on wgpu (lavapipe) and the project's workarounds,
//! checked on the device `PROTOCLUST_DEVICE` names against flex (CI runs it on wgpu; on
//! flex it compares flex with itself):
//! * the erf GELU's backward is the tanh approximation's derivative (about 8e-4 relative
//!   off), which failed SlotCon's predictor gradients: `ops::gelu` composes it from `erf`;
//! * `topk_with_indices` returns out-of-range indices for k past about 128 on long rows,
//!   which crashed the kNN monitor's k = 200: `ops::top_k_rows` sorts instead.

mod common;

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use protoclust_nn::ops::{gelu, top_k_rows};

#[allow(deprecated)]
fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// GELU's values and gradient (of Σ w·gelu(x)) on `dev`.
fn gelu_on(dev: &Device, x: &[f32], w: &[f32], shape: [usize; 2]) -> (Vec<f32>, Vec<f32>) {
    let x = Tensor::<2>::from_data(TensorData::new(x.to_vec(), shape), dev).require_grad();
    let w = Tensor::<2>::from_data(TensorData::new(w.to_vec(), shape), dev);
    let y = gelu(x.clone());
    let grads = (y.clone() * w).sum().backward();
    (host(y), host(x.grad(&grads).unwrap()))
}

#[test]
fn gelu_gradient_matches_flex_on_the_device() {
    let shape = [64, 48];
    let cpu = Device::flex();
    let x = host(Tensor::<2>::random(
        shape,
        Distribution::Normal(0.0, 2.0),
        &cpu,
    ));
    let w = host(Tensor::<2>::random(
        shape,
        Distribution::Normal(0.0, 1.0),
        &cpu,
    ));
    let (y0, g0) = gelu_on(&cpu.autodiff(), &x, &w, shape);
    let (y1, g1) = gelu_on(&common::device().autodiff(), &x, &w, shape);
    let worst = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs() / p.abs().max(1.0))
            .fold(0f32, f32::max)
    };
    // f32 rounding of erf and exp: burn's own backward on cubecl is 8e-4 off here.
    assert!(worst(&y0, &y1) < 2e-6, "gelu values {}", worst(&y0, &y1));
    assert!(worst(&g0, &g1) < 2e-6, "gelu gradient {}", worst(&g0, &g1));
}

#[test]
fn top_k_rows_is_exact_for_the_knn_monitors_k_on_the_device() {
    let dev = common::device();
    for (n, m, k) in [(256usize, 2048usize, 200usize), (3, 1000, 129), (4, 50, 5)] {
        let x = Tensor::<2>::random([n, m], Distribution::Normal(0.0, 1.0), &dev);
        let all = host(x.clone());
        let (v, i) = top_k_rows(x, k);
        let v = host(v);
        #[allow(deprecated)]
        let i: Vec<i64> = i.into_data().convert::<i64>().to_vec().unwrap();
        for r in 0..n {
            let mut row = all[r * m..(r + 1) * m].to_vec();
            row.sort_by(|a, b| b.total_cmp(a));
            assert_eq!(
                &v[r * k..(r + 1) * k],
                &row[..k],
                "row {r} of {n}x{m}, k {k}"
            );
            for j in 0..k {
                let c = i[r * k + j];
                assert!((0..m as i64).contains(&c), "index {c} of {m} columns");
                assert_eq!(all[r * m + c as usize], v[r * k + j]);
            }
        }
    }
}

/// `PROTOCLUST_DEVICE=wgpu` where no Vulkan driver can be found (the loader's and EGL's
/// driver lists pointed at nothing): one `error:` line and a non-zero exit, nothing written.
/// Without the `wgpu` feature: one line saying the build lacks it.
#[test]
fn wgpu_without_an_adapter_is_one_error_line() {
    let dir = common::scratch("wgpu-no-adapter");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_protoclust"))
        .args(["demo", "--epochs", "1", "--out"])
        .arg(&dir)
        .env("PROTOCLUST_DEVICE", "wgpu")
        .env("VK_ICD_FILENAMES", "/nonexistent.json")
        .env("VK_DRIVER_FILES", "/nonexistent.json")
        .env("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent.json")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .collect();
    assert!(!out.status.success());
    let expected = if cfg!(feature = "wgpu") {
        "error: PROTOCLUST_DEVICE=wgpu: no usable graphics adapter ("
    } else {
        "error: PROTOCLUST_DEVICE=wgpu: not available in this build"
    };
    assert!(
        lines.len() == 1 && lines[0].starts_with(expected),
        "stderr: {err}"
    );
    assert!(
        std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none()),
        "the demo wrote into {}",
        dir.display()
    );
}
