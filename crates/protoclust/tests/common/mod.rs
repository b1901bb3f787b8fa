//! Helpers shared by the integration tests.
#![allow(dead_code)]

use protoclust::commands::demo::demo_config;
use protoclust::config::RunConfig;
use protoclust::data_spec::{DataKind, DataSpec};
use std::path::{Path, PathBuf};

/// A tiny SwAV run on synthetic shapes: 24 images, batch 8 (3 iterations per epoch).
pub fn tiny_config(run_dir: &Path, epochs: u64) -> RunConfig {
    let mut c = demo_config(run_dir.to_path_buf(), epochs);
    c.data = DataSpec {
        kind: DataKind::Synthetic,
        len: 24,
        size: 16,
        seed: 3,
        ..Default::default()
    };
    c.loader.batch_size = 8;
    c.swav.backbone.width = 4;
    c.swav.projector.hidden = vec![16];
    c.swav.projector.out_dim = 8;
    c.swav.prototypes = 6;
    c.swav.views.crops[0].size = 16;
    c.swav.queue_length = 16;
    c.swav.queue_start_epoch = 0;
    c.swav.freeze_prototypes_iterations = 2;
    c.train.log_every = 1;
    c.train.checkpoint_every_iterations = 1;
    c.monitor.every_epochs = 0;
    c
}

/// A tiny run of any method: 32 synthetic images, batch 8, 4 clusters/prototypes.
pub fn tiny_method_config(dir: &Path, method: &str) -> RunConfig {
    let mut c = tiny_config(dir, 2);
    c.method = method.into();
    c.data.len = 32;
    let views = c.swav.views.clone();
    let mut one = views.clone();
    one.crops.truncate(1);
    one.crops[0].count = 1;
    c.odc.backbone = c.swav.backbone.clone();
    c.odc.neck.hidden = 16;
    c.odc.neck.out_dim = 8;
    c.odc.clusters = 4;
    c.odc.min_cluster = 3;
    c.odc.centroid_update_interval = 2;
    c.odc.views = one.clone();
    c.loader.replacement = method == "odc";
    c.deepcluster.backbone = c.swav.backbone.clone();
    c.deepcluster.clusters = 4;
    c.deepcluster.clustering.pca_dim = 8;
    c.deepcluster.views = one;
    c.deepclusterv2.backbone = c.swav.backbone.clone();
    c.deepclusterv2.projector = c.swav.projector.clone();
    c.deepclusterv2.prototypes = vec![4, 5, 4];
    c.deepclusterv2.views = views.clone();
    c.jigclu.backbone = c.swav.backbone.clone();
    c.jigclu.dim = 8;
    c.jigclu.views.size = 8;
    c.jigclu.views.photometric = c.swav.views.photometric.clone();
    c.slotcon.backbone = c.swav.backbone.clone();
    c.slotcon.projector.hidden = 8;
    c.slotcon.projector.out_dim = 8;
    c.slotcon.predictor.hidden = 8;
    c.slotcon.prototypes = 4;
    c.slotcon.views.size = 16;
    c.slotcon.views.view1 = c.swav.views.photometric.clone();
    c.slotcon.views.view2 = c.swav.views.photometric.clone();
    c.optim = protoclust_nn::optim::OptimConfig {
        kind: protoclust_nn::optim::OptimKind::Sgd,
        lr: 0.05,
        momentum: 0.9,
        ..Default::default()
    };
    c.eval_view.resize = 16;
    c.eval_view.size = 16;
    c
}

/// A fresh scratch directory under the target directory.
/// The device `PROTOCLUST_DEVICE` names, as the CLI picks it (flex by default): the tests
/// that take it run on wgpu in CI's lavapipe pass.
pub fn device() -> burn::tensor::Device {
    protoclust::device::select().unwrap_or_else(|e| panic!("{e:#}"))
}

pub fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The shared real-data folder, or None (with a message) when it is missing.
pub fn shared_data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/data is missing (real-data test)");
        None
    }
}

/// Runs the protoclust binary: (success, stdout followed by stderr).
pub fn cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_protoclust"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
