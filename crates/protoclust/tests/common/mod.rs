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

/// A fresh scratch directory under the target directory.
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
