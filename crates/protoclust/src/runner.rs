//! Builds a method, loader and monitor from a [`RunConfig`] and runs training.

use crate::config::RunConfig;
use anyhow::{Context, Result};
use burn::tensor::Device;
use protoclust_data::loader::Loader;
use protoclust_data::loader::Shard;
use protoclust_methods::deepcluster::DeepCluster;
use protoclust_methods::deepclusterv2::DeepClusterV2;
use protoclust_methods::jigclu::JigClu;
use protoclust_methods::odc::Odc;
use protoclust_methods::slotcon::SlotCon;
use protoclust_methods::swav::Swav;
use protoclust_methods::Method;
use protoclust_nn::backbone::ResNet;
use protoclust_nn::collective::{set_sync_batchnorm, Collective, World};
use protoclust_nn::io;
use protoclust_train::monitor::KnnMonitor;
use protoclust_train::{train, RunSummary, StepHook, TrainOptions};
use std::path::Path;

/// The SwAV method and its loader for a config.
pub fn build(cfg: &RunConfig) -> Result<(Swav, Loader)> {
    let swav = Swav::new(cfg.swav.clone(), cfg.loader.batch_size);
    let loader = loader_for(cfg, &swav)?;
    Ok((swav, loader))
}

/// The training loader of `cfg` for `method`'s views.
pub fn loader_for<M: Method>(cfg: &RunConfig, method: &M) -> Result<Loader> {
    let source = cfg.data.open().context("data")?;
    Ok(Loader::new(
        source,
        method.views(),
        cfg.loader.clone(),
        cfg.seed,
    )?)
}

/// The online kNN monitor of a config, if enabled.
pub fn monitor(cfg: &RunConfig) -> Result<Option<KnnMonitor>> {
    let m = &cfg.monitor;
    match (&m.train, &m.test) {
        (Some(tr), Some(te)) if m.every_epochs > 0 => Ok(Some(KnnMonitor {
            train: tr.open().context("monitor.train")?,
            test: te.open().context("monitor.test")?,
            view: cfg.eval_view.clone(),
            every_epochs: m.every_epochs,
            settings: m.knn.clone(),
            batch_size: m.batch_size,
        })),
        _ => Ok(None),
    }
}

/// Something to do with a method of any type (see [`with_method`]).
pub trait WithMethod {
    /// What it produces.
    type Out;
    /// Runs on the method built from the config.
    fn call<M: Method>(self, method: M) -> Self::Out;
}

/// Builds the method `cfg` names and hands it to `w`.
pub fn with_method<W: WithMethod>(cfg: &RunConfig, w: W) -> W::Out {
    with_method_in(cfg, &World::Single, w)
}

/// [`with_method`] for one rank of `world`.
fn with_method_in<W: WithMethod>(cfg: &RunConfig, world: &World, w: W) -> W::Out {
    let world = world.clone();
    match cfg.method.as_str() {
        "odc" => w.call(Odc::new(cfg.odc.clone()).in_world(world)),
        "deepcluster" => w.call(DeepCluster::new(cfg.deepcluster.clone()).in_world(world)),
        "deepclusterv2" => w.call(
            DeepClusterV2::new(cfg.deepclusterv2.clone(), cfg.loader.batch_size).in_world(world),
        ),
        "slotcon" => w.call(SlotCon::new(cfg.slotcon.clone(), cfg.train.epochs).in_world(world)),
        "jigclu" => w.call(JigClu::new(cfg.jigclu.clone()).in_world(world)),
        _ => w.call(Swav::new(cfg.swav.clone(), cfg.loader.batch_size).in_world(world)),
    }
}

struct Train<'a> {
    cfg: &'a RunConfig,
    resume: Option<&'a Path>,
    quiet: bool,
    device: &'a Device,
    world: &'a World,
    on_step: Option<StepHook>,
}

impl WithMethod for Train<'_> {
    type Out = Result<RunSummary<ResNet>>;
    fn call<M: Method>(self, mut method: M) -> Self::Out {
        run_method(
            &mut method,
            self.cfg,
            self.resume,
            self.quiet,
            self.device,
            self.world,
            self.on_step,
        )
    }
}

/// Trains the method `cfg` names, writing the resolved config into the run directory; the
/// summary carries the trained backbone.
pub fn run(
    cfg: &RunConfig,
    resume: Option<&Path>,
    quiet: bool,
    device: &Device,
) -> Result<RunSummary<ResNet>> {
    run_in(cfg, resume, quiet, device, &World::Single)
}

/// [`run`] in one process with `on_step` called after every step (it may stop the run, leaving
/// `last` to resume from): the Python binding's callback and Ctrl-C.
pub fn run_with_hook(
    cfg: &RunConfig,
    resume: Option<&Path>,
    quiet: bool,
    device: &Device,
    on_step: StepHook,
) -> Result<RunSummary<ResNet>> {
    train_in(cfg, resume, quiet, device, &World::Single, Some(on_step))
}

/// [`run`] as one rank of `world`: this rank's part of every global batch, gradients averaged
/// over the ranks, SyncBatchNorm when `train.sync_batchnorm`; rank 0 writes the run directory.
pub fn run_in(
    cfg: &RunConfig,
    resume: Option<&Path>,
    quiet: bool,
    device: &Device,
    world: &World,
) -> Result<RunSummary<ResNet>> {
    train_in(cfg, resume, quiet, device, world, None)
}

fn train_in(
    cfg: &RunConfig,
    resume: Option<&Path>,
    quiet: bool,
    device: &Device,
    world: &World,
    on_step: Option<StepHook>,
) -> Result<RunSummary<ResNet>> {
    let train = Train {
        cfg,
        resume,
        quiet,
        device,
        world,
        on_step,
    };
    if world.world_size() == 1 {
        return with_method(cfg, train);
    }
    if cfg.train.sync_batchnorm {
        if !protoclust_nn::kernels::run_on(device) {
            anyhow::bail!(
                "train.sync_batchnorm: SyncBatchNorm runs on the flex device with protoclust's kernels; set it to false for this device"
            );
        }
        set_sync_batchnorm(Some(world.clone()));
    }
    let out = with_method_in(cfg, world, train);
    set_sync_batchnorm(None);
    out
}

/// Trains `method` with the data, optimiser and loop settings of `cfg`.
pub fn run_method<M: Method>(
    method: &mut M,
    cfg: &RunConfig,
    resume: Option<&Path>,
    quiet: bool,
    device: &Device,
    world: &World,
    on_step: Option<StepHook>,
) -> Result<RunSummary<ResNet>> {
    let loader = loader_for(cfg, method)?;
    crate::preflight::check(cfg, &loader)?;
    crate::device::precision_supported(device, cfg.train.precision)?;
    if let Some(w) = crate::device::precision_warning(device, cfg.train.precision) {
        if world.rank() == 0 && !quiet {
            eprintln!("{w}");
        }
    }
    let loader = loader.sharded(Shard {
        rank: world.rank(),
        ranks: world.world_size(),
    })?;
    let config_toml = toml::to_string(cfg).context("serialising the resolved config")?;
    let run_dir = cfg.train.run_dir.clone();
    if world.rank() == 0 {
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("creating {}", run_dir.display()))?;
        io::atomic_write(&run_dir.join("config.toml"), config_toml.as_bytes())?;
    }
    let opts = TrainOptions {
        epochs: cfg.train.epochs,
        seed: cfg.seed,
        run_dir,
        checkpoint_every_epochs: cfg.train.checkpoint_every_epochs,
        checkpoint_every_iterations: cfg.train.checkpoint_every_iterations,
        log_every: cfg.train.log_every,
        stop_after_iterations: cfg.train.stop_after_iterations,
        resume: resume.map(Path::to_path_buf),
        init: match (&cfg.train.init, resume) {
            (Some(p), None) => Some(crate::import::init_from(p, cfg)?),
            _ => None,
        },
        config_toml,
        monitor: monitor(cfg)?,
        collapse_patience: cfg.train.collapse_patience,
        quiet,
        pass_view: cfg.eval_view.clone(),
        pass_batch_size: cfg.monitor.batch_size,
        world: world.clone(),
        precision: cfg.train.precision,
        on_step,
    };
    let s = train(
        method,
        &loader,
        cfg.optim.clone(),
        cfg.schedule.clone(),
        &opts,
        device,
    )?;
    Ok(s.map_model(|m| M::backbone(&m).clone()))
}
