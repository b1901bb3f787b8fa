//! Released checkpoints (issue #37): models built and saved by the authors' own code
//! (`scripts/fixtures/releases.py`: facebookresearch/swav @ 06b1b7c, legacy container, flat
//! `module.` dict) are opened directly and after `protoclust import`, and every output the
//! authors' forward recorded is matched: pooled trunk features, head embeddings, prototype
//! scores and their argmax. Bad files are one-line errors that write nothing.

use burn::tensor::{Device, Tensor, TensorData};
use protoclust::import::{self, Release};
use protoclust::model_file::ModelFile;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/releases")
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("releases")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fixture tensor: shape and values as f64.
struct Json {
    shape: Vec<usize>,
    data: Vec<f64>,
}

fn tensor(v: &Value) -> Json {
    Json {
        shape: v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect(),
        data: v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_f64().unwrap())
            .collect(),
    }
}

#[allow(deprecated)]
fn host(t: Tensor<2>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

/// The fixture's tolerance for one output: 4× the error of PyTorch's own float32 run of the
/// same network against its float64 reference (a 50-layer network in f32 is not within the
/// loss fixtures' 2e-5 of its f64 value, PyTorch's own f32 included), and never tighter than
/// those fixtures' `2e-5 · max|ref| + 1e-7`.
fn tolerance(reference: &Json, pytorch_f32: &Json) -> f64 {
    let scale = reference.data.iter().fold(0f64, |m, v| m.max(v.abs()));
    let torch_err = reference
        .data
        .iter()
        .zip(&pytorch_f32.data)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    (4.0 * torch_err).max(2e-5 * scale) + 1e-7
}

fn check(name: &str, case: &str, got: &[f32], fx: &Value) {
    let reference = tensor(&fx["outputs"][name]);
    let f32_run = tensor(&fx["outputs_f32"][name]);
    assert_eq!(got.len(), reference.data.len(), "{case}: {name} size");
    let err = got
        .iter()
        .zip(&reference.data)
        .fold(0f64, |m, (g, r)| m.max((*g as f64 - r).abs()));
    let tol = tolerance(&reference, &f32_run);
    assert!(
        err <= tol,
        "{case}: {name}: max|got - ref| = {err:.3e} > {tol:.3e}"
    );
    eprintln!("{case}: {name}: max|err| {err:.3e} (tolerance {tol:.3e})");
}

fn argmax(rows: &[f32], k: usize) -> Vec<i64> {
    rows.chunks(k)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0 as i64
        })
        .collect()
}

/// Pooled features, embedding and every head's scores of `model` on the fixture's images.
fn outputs(model: &ModelFile, fx: &Value, dev: &Device) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let images = tensor(&fx["inputs"]["images"]);
    let x: Tensor<4> = Tensor::from_data(
        TensorData::new(
            images.data.iter().map(|&v| v as f32).collect::<Vec<f32>>(),
            images.shape.clone(),
        ),
        dev,
    );
    let out = model.backbone.forward(x);
    let head = model.head.as_ref().expect("the release's head is loaded");
    let h = head(&out);
    (
        host(out.pooled),
        host(h.embedding.expect("an embedding")),
        host(h.scores.expect("prototype scores")),
    )
}

fn matches_the_authors_forward(case: &str, release: Release) {
    let dev = Device::flex();
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(format!("{case}.json"))).unwrap(),
    )
    .unwrap();
    let src = fixtures().join(fx["params"]["file"].as_str().unwrap());
    let imported = import::import(&src, None).unwrap();
    assert_eq!(imported.release, release);
    assert_eq!(imported.provenance.container, "legacy");
    assert_eq!(imported.provenance.prefix, "module.");
    assert_eq!(imported.backbone.depth, 50);
    assert_eq!(imported.backbone.width, 8);

    let direct = ModelFile::open(&src, None, true, &dev).unwrap();
    let (pooled, embedding, scores) = outputs(&direct, &fx, &dev);
    check("pooled", case, &pooled, &fx);
    check("embedding", case, &embedding, &fx);
    check("scores0", case, &scores, &fx);
    let k = tensor(&fx["outputs"]["scores0"]).shape[1];
    let want: Vec<i64> = tensor(&fx["outputs"]["argmax0"])
        .data
        .iter()
        .map(|&v| v as i64)
        .collect();
    assert_eq!(
        argmax(&scores, k),
        want,
        "{case}: the authors' cluster of every image"
    );

    // DeepCluster-v2's other heads: the embedding against each head's released prototypes.
    let mut head = 1;
    while let Some(v) = fx["outputs"].get(format!("scores{head}")) {
        let p = &imported.model[&format!("prototypes.heads.{head}.weight")];
        let (kh, d) = (p.shape[0], p.shape[1]);
        let got: Vec<f32> = embedding
            .chunks(d)
            .flat_map(|z| {
                (0..kh).map(move |j| (0..d).map(|c| z[c] * p.data[j * d + c]).sum::<f32>())
            })
            .collect();
        assert_eq!(tensor(v).shape, vec![embedding.len() / d, kh]);
        check(&format!("scores{head}"), case, &got, &fx);
        head += 1;
    }

    // After `import`: the same numbers, bit for bit.
    let dir = scratch(case);
    let out = dir.join("imported.safetensors");
    imported.save(&out).unwrap();
    let again = ModelFile::open(&out, None, true, &dev).unwrap();
    assert_eq!(outputs(&again, &fx, &dev), (pooled, embedding, scores));
    let cfg = again.config.as_ref().unwrap();
    assert_eq!(cfg.eval_view.normalize.std, [0.228, 0.224, 0.225]);
    assert_eq!((cfg.eval_view.resize, cfg.eval_view.size), (256, 224));
}

#[test]
fn swav_release_matches_the_authors_forward() {
    matches_the_authors_forward("swav_w8", Release::Swav);
}

#[test]
fn deepclusterv2_release_matches_the_authors_forward() {
    matches_the_authors_forward("deepclusterv2_w8", Release::Deepclusterv2);
}

fn protoclust(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_protoclust"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn import_in_two_processes_writes_identical_bytes_with_provenance() {
    let dir = scratch("two-processes");
    let src = fixtures().join("swav_w8.pth.tar");
    let files: Vec<Vec<u8>> = (0..2)
        .map(|i| {
            let out = dir.join(format!("out{i}.safetensors"));
            let o = protoclust(&[
                "import",
                src.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let said = String::from_utf8_lossy(&o.stdout);
            assert!(
                said.contains("layout swav") && said.contains("legacy"),
                "{said}"
            );
            std::fs::read(&out).unwrap()
        })
        .collect();
    assert!(
        files[0] == files[1],
        "two imports of one file differ in bytes"
    );
    let ck = protoclust_train::Checkpoint::load(&dir.join("out0.safetensors")).unwrap();
    let p = ck.meta.imported_from.expect("provenance");
    assert_eq!(
        (p.file.as_str(), p.layout.as_str(), p.container.as_str()),
        ("swav_w8.pth.tar", "swav", "legacy")
    );
    assert_eq!(p.bytes, std::fs::metadata(&src).unwrap().len());
    assert_eq!(p.sha256.len(), 64);
}

#[test]
fn bad_files_are_one_line_errors_that_write_nothing() {
    let dir = scratch("bad");
    let good = std::fs::read(fixtures().join("swav_w8.pth.tar")).unwrap();
    let truncated = dir.join("truncated.pth.tar");
    std::fs::write(&truncated, &good[..good.len() * 2 / 3]).unwrap();
    let garbage = dir.join("garbage.pth");
    std::fs::write(&garbage, b"\x80\x02not really a pickle at all").unwrap();
    let cases: Vec<(PathBuf, &str)> = vec![
        (truncated, "truncated"),
        (garbage, "pickle"),
        (
            fixtures().join("bad_missing.pth.tar"),
            "missing tensor `module.layer2.1.bn2.running_var`",
        ),
        (
            fixtures().join("bad_shape.pth.tar"),
            "`module.layer3.0.conv2.weight` has shape [16, 16, 1, 1], expected [16, 16, 3, 3]",
        ),
        (fixtures().join("bad_resnet101.pth.tar"), "[3, 4, 23, 3]"),
        (fixtures().join("bad_global.pth"), "no known layout"),
    ];
    let _ = std::fs::remove_file("/tmp/protoclust-pickle-ran");
    for (src, says) in cases {
        let out = dir.join("out.safetensors");
        let o = protoclust(&[
            "import",
            src.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{}: accepted", src.display());
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{}: {err}",
            src.display()
        );
        assert!(
            err.contains(src.file_name().unwrap().to_str().unwrap()),
            "{}: the error names the file: {err}",
            src.display()
        );
        if says != "truncated" {
            assert!(err.contains(says), "{}: {err}", src.display());
        }
        assert!(!out.exists(), "{}: an output was written", src.display());
        // Every command that takes a model says the same.
        let o = protoclust(&[
            "extract",
            src.to_str().unwrap(),
            "--data",
            "synthetic:4:32",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            !o.status.success() && !out.exists(),
            "{}: extract",
            src.display()
        );
    }
    assert!(
        !Path::new("/tmp/protoclust-pickle-ran").exists(),
        "the pickle's os.system global ran"
    );
}

#[test]
fn another_layout_is_refused_when_forced() {
    let src = fixtures().join("swav_w8.pth.tar");
    let err = import::import(&src, Some(Release::Slotcon))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a slotcon release"), "{err}");
    // The trunk alone is always readable: a backbone export with torchvision names.
    let i = import::import(&src, Some(Release::Backbone)).unwrap();
    assert!(i.config.is_none());
    assert_eq!(i.model.len(), 265);
    let dir = scratch("backbone");
    let out = dir.join("trunk.safetensors");
    i.save(&out).unwrap();
    let m = ModelFile::open(&out, None, true, &Device::flex()).unwrap();
    assert!(m.head.is_none());
    assert_eq!(m.backbone_config, i.backbone);
}
