//! Builds a method, loader and monitor from a [`RunConfig`] and runs training.

use crate::config::RunConfig;
use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::Device;
use protoclust_data::loader::Loader;
use protoclust_methods::swav::{Swav, SwavModel};
use protoclust_methods::Method;
use protoclust_nn::backbone::ResNet;
use protoclust_nn::io;
use protoclust_nn::named::load_named;
use protoclust_train::monitor::KnnMonitor;
use protoclust_train::{train, Checkpoint, RunSummary, TrainOptions};
use std::path::Path;

/// The SwAV method and its loader for a config.
pub fn build(cfg: &RunConfig) -> Result<(Swav, Loader)> {
    let source = cfg.data.open().context("data")?;
    let swav = Swav::new(cfg.swav.clone(), cfg.loader.batch_size);
    let loader = Loader::new(source, swav.views(), cfg.loader.clone(), cfg.seed)?;
    Ok((swav, loader))
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

/// Trains according to `cfg`, writing the resolved config into the run directory.
pub fn run(
    cfg: &RunConfig,
    resume: Option<&Path>,
    quiet: bool,
    device: &Device,
) -> Result<RunSummary<SwavModel>> {
    let (mut swav, loader) = build(cfg)?;
    let config_toml = toml::to_string(cfg).context("serialising the resolved config")?;
    let run_dir = cfg.train.run_dir.clone();
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    io::atomic_write(&run_dir.join("config.toml"), config_toml.as_bytes())?;
    let opts = TrainOptions {
        epochs: cfg.train.epochs,
        seed: cfg.seed,
        run_dir,
        checkpoint_every_epochs: cfg.train.checkpoint_every_epochs,
        checkpoint_every_iterations: cfg.train.checkpoint_every_iterations,
        log_every: cfg.train.log_every,
        stop_after_iterations: cfg.train.stop_after_iterations,
        resume: resume.map(Path::to_path_buf),
        config_toml,
        monitor: monitor(cfg)?,
        collapse_patience: cfg.train.collapse_patience,
        quiet,
    };
    Ok(train(
        &mut swav,
        &loader,
        cfg.optim.clone(),
        cfg.schedule.clone(),
        &opts,
        device,
    )?)
}

/// A backbone loaded from a training checkpoint or an exported safetensors file, with the
/// run config it came from when known.
pub fn load_backbone(path: &Path, device: &Device) -> Result<(ResNet, Option<RunConfig>)> {
    let (tensors, meta) = io::load(path)?;
    if meta.contains_key("protoclust") {
        let ck = Checkpoint::from_parts(path, tensors, &meta)?;
        let cfg = crate::config::parse(
            &ck.meta.config,
            &format!("{} (embedded config)", path.display()),
            &[],
        )?;
        let swav = Swav::new(cfg.swav.clone(), cfg.loader.batch_size);
        let model = swav.init_model(cfg.seed, device)?;
        let model = load_named(model, &ck.model).with_context(|| format!("{}", path.display()))?;
        return Ok((model.backbone.valid(), Some(cfg)));
    }
    if let Some(json) = meta.get("protoclust_backbone") {
        let bcfg: protoclust_nn::backbone::ResNetConfig = serde_json::from_str(json)
            .with_context(|| format!("{}: backbone metadata", path.display()))?;
        let net = protoclust_nn::backbone::resnet(&bcfg, 0, device)?;
        let ours = protoclust_eval::export::from_torchvision(&tensors);
        let net = load_named(net, &ours).with_context(|| format!("{}", path.display()))?;
        return Ok((net.valid(), None));
    }
    anyhow::bail!(
        "{}: neither a protoclust checkpoint nor a protoclust backbone export",
        path.display()
    )
}
