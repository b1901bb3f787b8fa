//! `protoclust train <config>`.

use crate::{config, device, runner};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Trains from a config file with `--set` overrides, optionally resuming.
pub fn run(
    path: &Path,
    overrides: &[String],
    resume: Option<Option<PathBuf>>,
    quiet: bool,
) -> Result<()> {
    let cfg = config::load(path, overrides)?;
    if cfg.train.threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.train.threads)
            .build_global();
    }
    for w in cfg.warnings() {
        eprintln!("warning: {w}");
    }
    let dev = device::select()?;
    let resume = resume.map(|r| {
        r.unwrap_or_else(|| protoclust_train::engine::last_checkpoint_path(&cfg.train.run_dir))
    });
    eprintln!(
        "protoclust train: {} on {} ({} images, batch {}), {} epochs, run dir {}",
        cfg.method,
        device::describe(&dev),
        cfg.data.open()?.len(),
        cfg.loader.batch_size,
        cfg.train.epochs,
        cfg.train.run_dir.display()
    );
    let s = runner::run(&cfg, resume.as_deref(), quiet, &dev)?;
    eprintln!(
        "done: {} epochs, {} iterations in {:.1}s; last checkpoint {}",
        s.epochs,
        s.iterations,
        s.wall_seconds,
        s.last_checkpoint.display()
    );
    for r in &s.knn {
        eprintln!(
            "kNN k={} T={}: top-1 {:.2}%, top-5 {:.2}%",
            r.k, r.temperature, r.top1, r.top5
        );
    }
    if let Some(a) = &s.pseudo_labels {
        eprintln!(
            "final pseudo-labels vs true labels: NMI {:.4}, ARI {:.4} ({} images)",
            a.nmi, a.ari, a.samples
        );
    }
    if s.skipped_images > 0 {
        eprintln!(
            "{} images could not be decoded and were skipped",
            s.skipped_images
        );
    }
    Ok(())
}
