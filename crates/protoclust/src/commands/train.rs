//! `protoclust train <config>`.

use crate::{config, device, runner};
use anyhow::Result;
use protoclust_nn::collective::Collective;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The checkpoint `--resume [PATH]` names: PATH, or the run directory's last one.
fn resume_path(cfg: &config::RunConfig, resume: Option<Option<PathBuf>>) -> Option<PathBuf> {
    resume.map(|r| {
        r.unwrap_or_else(|| protoclust_train::engine::last_checkpoint_path(&cfg.train.run_dir))
    })
}

/// Trains from a config file with `--set` overrides, optionally resuming or starting from
/// `init`.
pub fn run(
    path: &Path,
    overrides: &[String],
    resume: Option<Option<PathBuf>>,
    init: Option<PathBuf>,
    quiet: bool,
) -> Result<()> {
    let mut cfg = config::load(path, overrides)?;
    if init.is_some() {
        cfg.train.init = init;
    }
    let world = crate::world::join(Duration::from_secs(cfg.train.collective_timeout_s))?;
    let lead = world.rank() == 0;
    // Ranks on one host share its cores unless told otherwise.
    let threads = match cfg.train.threads {
        0 if world.world_size() > 1 => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / crate::world::local_ranks()).max(1)
        }
        t => t,
    };
    if threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
    if lead {
        for w in cfg.warnings() {
            eprintln!("warning: {w}");
        }
    }
    let dev = device::select()?;
    let resume = resume_path(&cfg, resume);
    if lead {
        eprintln!(
            "protoclust train: {} on {} ({} images, batch {}{}), {} epochs, run dir {}",
            cfg.method,
            device::describe(&dev),
            cfg.data.open()?.len(),
            cfg.loader.batch_size,
            if world.world_size() > 1 {
                format!(
                    " over {} processes of {threads} threads{}",
                    world.world_size(),
                    if cfg.train.sync_batchnorm {
                        ", SyncBatchNorm"
                    } else {
                        ""
                    }
                )
            } else {
                String::new()
            },
            cfg.train.epochs,
            cfg.train.run_dir.display()
        );
    }
    let s = runner::run_in(&cfg, resume.as_deref(), quiet || !lead, &dev, &world)?;
    if !lead {
        return Ok(());
    }
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
