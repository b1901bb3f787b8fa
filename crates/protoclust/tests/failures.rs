//! Bad inputs and numerical failures: clear one-line errors, no panics, nothing lost.

mod common;

use burn::tensor::Device;
use protoclust::runner;
use std::process::Command;

fn protoclust(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_protoclust"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line_error(stderr: &str, needles: &[&str]) {
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "`{n}` not in: {}", lines[0]);
    }
}

#[test]
fn truncated_cifar_file_is_a_one_line_error_naming_it() {
    let d = common::scratch("bad-cifar");
    let f = d.join("data_batch_1.bin");
    std::fs::write(&f, vec![1u8; 3073 * 3 - 17]).unwrap();
    let cfg = d.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[data]\nkind = \"cifar10\"\npaths = [{:?}]\n[train]\nrun_dir = {:?}\n\
             [swav]\nprototypes = 100\n[[swav.views.crops]]\ncount = 2\nsize = 32\nscale = [0.14, 1.0]\n",
            f,
            d.join("run")
        ),
    )
    .unwrap();
    let (ok, err) = protoclust(&["train", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert_one_line_error(&err, &["data_batch_1.bin", "3073"]);
}

#[test]
fn unknown_key_and_wrong_type_are_one_line_errors() {
    let d = common::scratch("bad-config");
    let cfg = d.join("c.toml");
    std::fs::write(&cfg, "[swav]\nprototypes = 10\nsinkhorn_iters = 3\n").unwrap();
    let (ok, err) = protoclust(&["train", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert_one_line_error(&err, &["c.toml", "sinkhorn_iters", "unknown field"]);
    std::fs::write(&cfg, "[loader]\nbatch_size = \"big\"\n").unwrap();
    let (ok, err) = protoclust(&["train", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert_one_line_error(&err, &["loader.batch_size", "invalid type"]);
    let (ok, err) = protoclust(&["train", cfg.to_str().unwrap(), "--set", "swav.prototypes=0"]);
    assert!(!ok);
    assert_one_line_error(&err, &["loader.batch_size"]);
    std::fs::write(
        &cfg,
        "[swav.views]\ncrops = [{ count = 2, size = 4096, scale = [0.1, 1.0] }]\n",
    )
    .unwrap();
    let (ok, err) = protoclust(&["train", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert_one_line_error(&err, &["crops[0].size"]);
}

#[test]
fn corrupt_jpeg_in_a_folder_is_skipped_and_counted_or_fails_strictly() {
    use protoclust_data::loader::{Loader, LoaderConfig};
    use protoclust_data::source::{FolderLayout, ImageFiles};
    use protoclust_data::views::CenterView;
    use std::sync::Arc;
    let d = common::scratch("bad-jpeg");
    let class = d.join("cats");
    std::fs::create_dir_all(&class).unwrap();
    let img = image::RgbImage::from_fn(20, 12, |x, y| image::Rgb([x as u8 * 10, y as u8 * 20, 90]));
    img.save(class.join("good.png")).unwrap();
    // A JPEG whose header survives but whose segments are garbage (a half-copied download).
    let mut jpeg = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    for b in jpeg.iter_mut().skip(2) {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    std::fs::write(class.join("broken.jpg"), &jpeg).unwrap();
    let src = Arc::new(ImageFiles::open_folder(&d, FolderLayout::Classes).unwrap());
    let view = Arc::new(CenterView {
        resize: 12,
        size: 12,
        ..Default::default()
    });
    let lenient = LoaderConfig {
        batch_size: 2,
        shuffle: false,
        drop_last: false,
        ..Default::default()
    };
    let l = Loader::new(src.clone(), view.clone(), lenient.clone(), 0).unwrap();
    let b = l.load(0, &[0, 1]).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b.skipped.len(), 1);
    assert!(b.skipped[0].1.contains("broken.jpg"), "{:?}", b.skipped);
    let strict = Loader::new(
        src,
        view,
        LoaderConfig {
            strict: true,
            ..lenient
        },
        0,
    )
    .unwrap();
    let e = strict.load(0, &[0, 1]).unwrap_err().to_string();
    assert!(e.contains("broken.jpg") && !e.contains('\n'), "{e}");
}

#[test]
fn non_finite_codes_stop_the_run_and_keep_the_last_checkpoint() {
    let d = common::scratch("nan");
    let mut cfg = common::tiny_config(&d, 1);
    cfg.train.checkpoint_every_iterations = 0;
    let dev = Device::flex();
    let first = runner::run(&cfg, None, true, &dev).unwrap();
    let before = std::fs::read(&first.last_checkpoint).unwrap();
    // exp(score/eps) overflows float32 in the official arithmetic once |score|/eps > 88.
    cfg.train.epochs = 2;
    cfg.swav.epsilon = 1e-4;
    cfg.swav.sinkhorn_mode = protoclust_nn::ops::SinkhornMode::Official;
    let err = match runner::run(&cfg, Some(&first.last_checkpoint), true, &dev) {
        Ok(_) => panic!("the run should stop on non-finite codes"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("non-finite") && err.contains("sinkhorn_codes"),
        "{err}"
    );
    assert!(err.contains("nan") || err.contains("inf"), "{err}");
    assert_eq!(std::fs::read(&first.last_checkpoint).unwrap(), before);
    // The stable mode handles the same epsilon.
    cfg.swav.sinkhorn_mode = protoclust_nn::ops::SinkhornMode::Stable;
    runner::run(&cfg, Some(&first.last_checkpoint), true, &dev).unwrap();
}

#[test]
fn more_clusters_than_images_is_a_configuration_error_not_a_crash() {
    let d = common::scratch("bad-k");
    let cfg = d.join("c.toml");
    for method in ["odc", "deepcluster"] {
        std::fs::write(
            &cfg,
            format!(
                "method = \"{method}\"\n[data]\nkind = \"synthetic\"\nlen = 50\n[{method}]\nclusters = 100\n[train]\nrun_dir = {:?}\n",
                d.join("run")
            ),
        )
        .unwrap();
        let (ok, err) = protoclust(&["train", cfg.to_str().unwrap()]);
        assert!(!ok);
        assert_one_line_error(&err, &[&format!("{method}.clusters"), "100", "50"]);
    }
    // When the size is only known after opening (an image folder), k-means itself refuses.
    let x = protoclust_nn::ops::host::matrix(vec![0.5; 12], 6, 2, &Device::flex());
    let e = protoclust_nn::cluster::kmeans(
        &x,
        &protoclust_nn::cluster::KMeansConfig {
            k: 7,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("k = 7 clusters but 6 samples"));
}

#[test]
fn evaluation_and_export_options_out_of_range_are_one_line_errors() {
    let d = common::scratch("bad-eval");
    let cfg = common::tiny_config(&d, 1);
    let run = runner::run(&cfg, None, true, &Device::flex()).unwrap();
    let ck = run.last_checkpoint.to_str().unwrap().to_string();
    let (ok, err) = protoclust(&["eval", "linear", &ck, "--linear-lrs", "0,1"]);
    assert!(!ok);
    assert_one_line_error(&err, &["--linear-lrs", "positive"]);
    let out = d.join("x.bin");
    let (ok, err) = protoclust(&[
        "export",
        &ck,
        "--format",
        "pdf",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && !out.exists());
    assert_one_line_error(&err, &["--format pdf", "onnx"]);
    let missing = d.join("no-such-run");
    let (ok, err) = protoclust(&["report", missing.to_str().unwrap()]);
    assert!(!ok);
    assert_one_line_error(&err, &["no-such-run", "last.safetensors"]);
    // A checkpoint that is not a checkpoint.
    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    let (ok, err) = protoclust(&["eval", "cluster", junk.to_str().unwrap()]);
    assert!(!ok);
    assert_one_line_error(&err, &["junk.safetensors"]);
}

#[test]
fn an_unknown_kernel_choice_is_a_one_line_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_protoclust"))
        .args(["bench", "--kmeans", "100x4x2"])
        .env("PROTOCLUST_KERNELS", "fast")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_one_line_error(
        &String::from_utf8_lossy(&out.stderr),
        &["PROTOCLUST_KERNELS", "\"burn\""],
    );
}

#[test]
fn a_missing_model_file_is_named_once_with_the_os_reason_once() {
    let missing = common::scratch("missing-model").join("nope.safetensors");
    let (ok, stderr) = protoclust(&["eval", "knn", missing.to_str().unwrap()]);
    assert!(!ok);
    assert_one_line_error(&stderr, &["nope.safetensors", "No such file"]);
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

/// The error of training `c` (validation, then the checks against the opened data), which
/// must fail before the first step: no checkpoint is written.
fn refusal(c: &protoclust::config::RunConfig) -> String {
    let e = match protoclust::config::validate(c) {
        Err(e) => e,
        Ok(()) => runner::run(c, None, true, &Device::flex())
            .err()
            .expect("the config was accepted"),
    };
    let written = std::fs::read_dir(&c.train.run_dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(written, 0, "a checkpoint was written before the refusal");
    format!("{e:#}")
}

#[test]
fn configs_that_cannot_work_are_refused_naming_field_and_numbers() {
    let d = common::scratch("refused");
    let base = common::tiny_method_config(&d.join("run"), "swav"); // 32 images, batch 8
    let check = |c: protoclust::config::RunConfig, needles: &[&str]| {
        let e = refusal(&c);
        for n in needles {
            assert!(e.contains(n), "`{n}` not in: {e}");
        }
    };
    for m in ["odc", "deepcluster"] {
        let mut c = common::tiny_method_config(&d.join(m), m);
        c.odc.clusters = 32;
        c.odc.min_cluster = 0;
        c.deepcluster.clusters = 32;
        check(c, &[&format!("{m}.clusters = 32"), "32 images"]);
    }
    let mut c = base.clone();
    c.swav.prototypes = 8 * (8 + 16) + 1;
    check(
        c,
        &["swav.prototypes = 193", "batch_size 8 + queue 16", "192"],
    );
    let mut c = base.clone();
    c.swav.queue_length = 40;
    check(c, &["swav.queue_length = 40", "32 images"]);
    let mut c = base.clone();
    c.swav.views.crops[0].size = 17;
    check(c, &["swav.views.crops[0].size", "17 px", "16 px"]);
    let mut c = base.clone();
    c.swav.fixed_prototypes = false; // the demo's recipe fixes them, which allows any freeze
    c.swav.freeze_prototypes_iterations = 8; // 2 epochs x 4 batches
    check(
        c,
        &[
            "swav.freeze_prototypes_iterations = 8",
            "8 iterations",
            "2 epochs x 4 batches",
        ],
    );
}

#[test]
fn fixed_prototypes_cover_the_whole_run_and_stay_fixed() {
    let d = common::scratch("fixed-prototypes");
    // The prototypes of the epoch-1 and epoch-2 checkpoints of a 2-epoch run.
    let prototypes = |name: &str, fixed: bool| {
        let mut c = common::tiny_method_config(&d.join(name), "swav");
        c.swav.fixed_prototypes = fixed;
        // Would be refused without fixed_prototypes (it covers the whole run).
        c.swav.freeze_prototypes_iterations = if fixed { 8 } else { 0 };
        c.train.checkpoint_every_epochs = 1;
        protoclust::config::validate(&c).unwrap();
        runner::run(&c, None, true, &Device::flex()).unwrap();
        let read = |epoch: u32| {
            let path = c
                .train
                .run_dir
                .join(format!("checkpoints/epoch-{epoch:04}.safetensors"));
            let (tensors, _) = protoclust_nn::io::load(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let (_, t) = tensors
                .into_iter()
                .find(|(k, _)| k.ends_with("prototypes.weight"))
                .expect("a prototypes tensor");
            t.data
        };
        (read(1), read(2))
    };
    let moved = |(a, b): (Vec<f32>, Vec<f32>)| {
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    // Fixed up to the rounding of the per-step re-normalisation (a few ulps).
    let fixed = moved(prototypes("fixed", true));
    assert!(fixed < 1e-6, "fixed prototypes moved by {fixed}");
    let learnt = moved(prototypes("learnt", false));
    assert!(learnt > 1e-4, "learnt prototypes moved only by {learnt}");
}
