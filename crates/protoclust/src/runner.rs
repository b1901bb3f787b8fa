//! Builds a method, loader and monitor from a [`RunConfig`] and runs training.

use crate::config::RunConfig;
use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::Device;
use protoclust_data::loader::Loader;
use protoclust_methods::deepcluster::DeepCluster;
use protoclust_methods::jigclu::JigClu;
use protoclust_methods::odc::Odc;
use protoclust_methods::slotcon::SlotCon;
use protoclust_methods::swav::Swav;
use protoclust_methods::Method;
use protoclust_nn::backbone::ResNet;
use protoclust_nn::io::{self, NamedTensors};
use protoclust_nn::named::load_named;
use protoclust_train::monitor::KnnMonitor;
use protoclust_train::{train, Checkpoint, RunSummary, TrainOptions};
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

/// Trains the method `cfg` names, writing the resolved config into the run directory; the
/// summary carries the trained backbone.
pub fn run(
    cfg: &RunConfig,
    resume: Option<&Path>,
    quiet: bool,
    device: &Device,
) -> Result<RunSummary<ResNet>> {
    match cfg.method.as_str() {
        "odc" => run_method(&mut Odc::new(cfg.odc.clone()), cfg, resume, quiet, device),
        "deepcluster" => run_method(
            &mut DeepCluster::new(cfg.deepcluster.clone()),
            cfg,
            resume,
            quiet,
            device,
        ),
        "slotcon" => run_method(
            &mut SlotCon::new(cfg.slotcon.clone(), cfg.train.epochs),
            cfg,
            resume,
            quiet,
            device,
        ),
        "jigclu" => run_method(
            &mut JigClu::new(cfg.jigclu.clone()),
            cfg,
            resume,
            quiet,
            device,
        ),
        _ => run_method(
            &mut Swav::new(cfg.swav.clone(), cfg.loader.batch_size),
            cfg,
            resume,
            quiet,
            device,
        ),
    }
}

/// Trains `method` with the data, optimiser and loop settings of `cfg`.
pub fn run_method<M: Method>(
    method: &mut M,
    cfg: &RunConfig,
    resume: Option<&Path>,
    quiet: bool,
    device: &Device,
) -> Result<RunSummary<ResNet>> {
    let loader = loader_for(cfg, method)?;
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
        pass_view: cfg.eval_view.clone(),
        pass_batch_size: cfg.monitor.batch_size,
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

/// The backbone tensors of a checkpoint's model (`prefix` removed).
fn backbone_tensors(model: &NamedTensors, prefix: &str) -> NamedTensors {
    model
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix)
                .map(|rest| (rest.to_string(), v.clone()))
        })
        .collect()
}

/// A backbone loaded from a training checkpoint or an exported safetensors file, with the
/// run config it came from when known.
pub fn load_backbone(path: &Path, device: &Device) -> Result<(ResNet, Option<RunConfig>)> {
    load_backbone_at(path, None, device)
}

/// [`load_backbone`], reading a checkpoint's backbone under `prefix` (e.g. SlotCon's
/// `student.backbone.`) instead of the method's evaluated one.
pub fn load_backbone_at(
    path: &Path,
    prefix: Option<&str>,
    device: &Device,
) -> Result<(ResNet, Option<RunConfig>)> {
    let (tensors, meta) = io::load(path)?;
    if meta.contains_key("protoclust") {
        let ck = Checkpoint::from_parts(path, tensors, &meta)?;
        let cfg = crate::config::parse(
            &ck.meta.config,
            &format!("{} (embedded config)", path.display()),
            &[],
        )?;
        let net = protoclust_nn::backbone::resnet(cfg.backbone(), cfg.seed, device)?;
        let net = load_named(
            net,
            &backbone_tensors(&ck.model, prefix.unwrap_or(cfg.backbone_prefix())),
        )
        .with_context(|| format!("{}", path.display()))?;
        return Ok((net.valid(), Some(cfg)));
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
