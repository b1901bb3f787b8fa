//! `protoclust report` on a finished (tiny) run: every section, every referenced image, the
//! TensorBoard event file, a headless-browser render when Chromium is installed, and
//! evaluation numbers that repeat exactly with a fixed seed.

mod common;

use burn::tensor::Device;
use protoclust::commands::eval::{LinearArgs, SemiSupArgs};
use protoclust::commands::report::{run as report, ReportArgs};
use protoclust::data_spec::{DataKind, DataSpec};
use protoclust::runner;
use protoclust_eval::record::SuiteResult;
use std::path::Path;

fn synthetic(len: usize, seed: u64) -> DataSpec {
    DataSpec {
        kind: DataKind::Synthetic,
        len,
        size: 32,
        seed,
        ..Default::default()
    }
}

fn finished_run(name: &str) -> std::path::PathBuf {
    let d = common::scratch(name);
    let mut cfg = common::tiny_config(&d, 2);
    cfg.monitor.train = Some(synthetic(300, 0));
    cfg.monitor.test = Some(synthetic(120, 1));
    runner::run(&cfg, None, true, &Device::flex()).unwrap();
    d
}

fn small_args(run_dir: &Path) -> ReportArgs {
    ReportArgs {
        quick: false,
        fresh: true,
        clusters: 4,
        per_cluster: 6,
        map_points: 100,
        linear: LinearArgs {
            linear_epochs: 2,
            linear_lrs: vec![0.1, 1.0],
            linear_batch: 64,
        },
        semisup: SemiSupArgs {
            percents: vec![1.0, 10.0],
            semisup_epochs: 2,
            lr_backbone: 0.01,
            lr_head: 0.1,
        },
        ..ReportArgs::quick(run_dir.to_path_buf())
    }
}

#[test]
fn report_has_every_section_and_every_image_it_references() {
    let d = finished_run("report");
    let index = report(&small_args(&d)).unwrap();
    let html = std::fs::read_to_string(&index).unwrap();
    for needle in [
        "kNN sweep: backbone features",
        "kNN sweep: embedding features",
        "Linear probe",
        "Semi-supervised fine-tuning",
        "Hungarian accuracy",
        "head assignments",
        "nearest images of each prototype",
        "k-means (k = 6)",
        "map.svg",
        "loss.svg",
        "<h2 id=config>",
    ] {
        assert!(html.contains(needle), "index.html lacks {needle:?}");
    }
    let dir = index.parent().unwrap();
    let mut images = 0;
    for part in html.split("src=\"").skip(1) {
        let file = &part[..part.find('"').unwrap()];
        let meta = std::fs::metadata(dir.join(file))
            .unwrap_or_else(|_| panic!("{file} is referenced but missing"));
        assert!(meta.len() > 100, "{file} is nearly empty");
        images += 1;
    }
    assert!(images >= 8, "only {images} images");
    let suite: SuiteResult =
        serde_json::from_str(&std::fs::read_to_string(dir.join("suite.json")).unwrap()).unwrap();
    assert_eq!(suite.knn[0].results.len(), 7 * 4);
    assert_eq!(suite.semisup.as_ref().unwrap().runs.len(), 2);
    // The training run wrote TensorBoard events beside metrics.jsonl.
    let tb: Vec<_> = std::fs::read_dir(d.join("tb")).unwrap().collect();
    assert!(!tb.is_empty());

    let browser = Path::new("/usr/bin/chromium");
    if !browser.exists() {
        eprintln!(
            "skipping the browser render: /usr/bin/chromium is missing (apt-get install chromium)"
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check_report.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(dir)
        .arg(dir.join("screenshot.png"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check_report.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn evaluation_numbers_repeat_with_a_fixed_seed() {
    let d = finished_run("report_repeat");
    let first = report(&small_args(&d)).unwrap();
    let a = std::fs::read_to_string(first.with_file_name("suite.json")).unwrap();
    let second = report(&small_args(&d)).unwrap();
    let b = std::fs::read_to_string(second.with_file_name("suite.json")).unwrap();
    assert!(
        a == b,
        "two evaluations with seed 0 differ (see suite.json)"
    );
    let mut other = small_args(&d);
    other.seed = 1;
    report(&other).unwrap();
    let c = std::fs::read_to_string(first.with_file_name("suite.json")).unwrap();
    assert!(a != c, "the seed does not reach the evaluations");
}

#[test]
fn every_method_gets_a_report_with_its_own_assignments() {
    for (method, section) in [
        ("odc", "pseudo-labels kept by the method"),
        ("deepcluster", "pseudo-labels kept by the method"),
        (
            "deepclusterv2",
            "nearest images of each prototype (4 prototypes)",
        ),
        ("jigclu", "k-means (k = 6)"),
        ("slotcon", "nearest images of each prototype (4 prototypes)"),
    ] {
        let d = common::scratch(&format!("report_{method}"));
        let mut cfg = common::tiny_method_config(&d, method);
        // As in the CIFAR configs, the labelled train split is the training data itself (the
        // pseudo-labels belong to it).
        cfg.monitor.train = Some(cfg.data.clone());
        cfg.monitor.test = Some(synthetic(60, 1));
        runner::run(&cfg, None, true, &Device::flex()).unwrap();
        let index = report(&ReportArgs::quick(d.clone())).unwrap();
        let html = std::fs::read_to_string(&index).unwrap();
        assert!(html.contains(section), "{method}: no {section:?} section");
        assert!(html.contains("kNN sweep: backbone features"), "{method}");
    }
}
