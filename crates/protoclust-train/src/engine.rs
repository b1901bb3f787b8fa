//! The training loop.

use crate::checkpoint::{Checkpoint, CheckpointMeta, FORMAT};
use crate::cluster_stats::{ClusterCounter, CollapseWatch};
use crate::hook::{StepEvent, StepHook};
use crate::metrics::{MetricsLog, Progress};
use crate::monitor::KnnMonitor;
use crate::step;
use burn::tensor::{Device, Tensor, TensorData};
use protoclust_data::loader::{Batch, Loader};
use protoclust_data::source::Source;
use protoclust_data::views::CenterView;
use protoclust_eval::{cluster_agreement, extract_with, ClusterAgreement, KnnResult};
use protoclust_methods::{
    BatchPass, BatchVisitor, EpochContext, FeaturePass, Method, MethodError, StepContext,
};
use protoclust_nn::collective::{Collective, World};
use protoclust_nn::named::{load_named, named_tensors, HostTensor};
use protoclust_nn::optim::loss_scale::{LossScaler, Verdict};
use protoclust_nn::optim::{OptimConfig, Optimizer, Schedule, ScheduleConfig};
use protoclust_nn::precision::Precision;
use protoclust_nn::running::SyncRunningStats;
use protoclust_nn::stats::TensorStats;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// How long to train and what to write.
#[derive(Clone)]
pub struct TrainOptions {
    /// Total epochs.
    pub epochs: u64,
    /// Seed of the model initialisation (the loader has its own).
    pub seed: u64,
    /// Run directory (checkpoints/, metrics.jsonl).
    pub run_dir: PathBuf,
    /// Keep a numbered checkpoint every this many epochs (0: only `last`).
    pub checkpoint_every_epochs: u64,
    /// Also write `last` every this many iterations (0: only at epoch ends).
    pub checkpoint_every_iterations: u64,
    /// Metrics line every this many iterations.
    pub log_every: u64,
    /// Stop (as if killed) after this many global iterations, leaving the checkpoint.
    pub stop_after_iterations: Option<u64>,
    /// Continue from this checkpoint.
    pub resume: Option<PathBuf>,
    /// Model tensors and method state to start from when not resuming (a released checkpoint),
    /// with the file they came from for errors.
    pub init: Option<InitFrom>,
    /// Resolved configuration, stored in checkpoints.
    pub config_toml: String,
    /// Online kNN monitor.
    pub monitor: Option<KnnMonitor>,
    /// Iterations at ln(K) before the collapse warning.
    pub collapse_patience: u64,
    /// No progress output.
    pub quiet: bool,
    /// View of the whole-data-set passes a method may ask for (ODC, DeepCluster).
    pub pass_view: CenterView,
    /// Batch size of those passes.
    pub pass_batch_size: usize,
    /// The processes sharing each global batch: gradients are averaged over them every step,
    /// and only rank 0 writes the run directory and prints progress.
    pub world: World,
    /// The float type of the step's convolutions and matrix products (float16 adds dynamic
    /// loss scaling).
    pub precision: Precision,
    /// Run after every step on the training thread; `Break` stops the run after `last` is
    /// written (a notebook's callback or Ctrl-C).
    pub on_step: Option<StepHook>,
}

/// The engine's whole-training-set pass: the evaluation view of every sample, in order.
struct SourcePass {
    source: Arc<dyn Source>,
    view: CenterView,
    batch_size: usize,
    device: Device,
}

impl FeaturePass for SourcePass {
    fn len(&self) -> usize {
        self.source.len()
    }

    fn run(&self, f: &dyn Fn(Tensor<4>) -> Tensor<2>) -> Result<Tensor<2>, MethodError> {
        let feats = extract_with(
            self.source.clone(),
            &self.view,
            self.batch_size,
            &self.device,
            f,
        )
        .map_err(|e| MethodError::Data(format!("whole-data-set feature pass: {e}")))?;
        let n = self.source.len();
        let dim = feats.dim.max(1);
        let mut rows = vec![0f32; n * dim];
        for (r, &i) in feats.indices.iter().enumerate() {
            rows[i * dim..(i + 1) * dim].copy_from_slice(feats.row(r));
        }
        Ok(Tensor::from_data(
            TensorData::new(rows, [n, dim]),
            &self.device.clone().without_autodiff(),
        ))
    }
}

/// The engine's pass over one epoch's training batches: the loader's order of `epoch`, each
/// image's views drawn from a stream apart from the steps' (the key `u64::MAX - epoch`).
struct LoaderPass<'a> {
    loader: &'a Loader,
    epoch: u64,
    device: Device,
}

impl BatchPass for LoaderPass<'_> {
    fn run(&self, f: &mut BatchVisitor<'_>) -> Result<(), MethodError> {
        let order = self.loader.order(self.epoch);
        for batch in self
            .loader
            .epoch_in_order(u64::MAX - self.epoch, 0, Some(order))
        {
            let batch =
                batch.map_err(|e| MethodError::Data(format!("training-batch pass: {e}")))?;
            if batch.is_empty() {
                continue;
            }
            f(&batch, &views_to_tensors(&batch, &self.device))?;
        }
        Ok(())
    }
}

/// NMI/ARI of a method's pseudo-labels against the source's labels, when it has both.
fn pseudo_label_agreement(
    labels: Option<&[usize]>,
    source: &dyn Source,
) -> Option<ClusterAgreement> {
    let labels = labels?;
    let mut pred = Vec::with_capacity(labels.len());
    let mut truth = Vec::with_capacity(labels.len());
    for (i, &l) in labels.iter().enumerate() {
        if let Some(t) = source.label(i) {
            pred.push(l);
            truth.push(t as usize);
        }
    }
    (!truth.is_empty()).then(|| cluster_agreement(&pred, &truth))
}

/// What a finished (or stopped) run leaves.
pub struct RunSummary<M> {
    /// The trained model.
    pub model: M,
    /// Global iterations done.
    pub iterations: u64,
    /// Epochs fully done.
    pub epochs: u64,
    /// Seconds spent in this process.
    pub wall_seconds: f64,
    /// Mean loss of the last epoch.
    pub last_epoch_loss: Option<f64>,
    /// Last kNN monitor results.
    pub knn: Vec<KnnResult>,
    /// Images that could not be decoded and were skipped.
    pub skipped_images: usize,
    /// Path of the last checkpoint.
    pub last_checkpoint: PathBuf,
    /// Agreement of the final pseudo-labels with the true labels (pseudo-label methods on
    /// labelled data).
    pub pseudo_labels: Option<ClusterAgreement>,
    /// True when the step hook stopped the run before its last epoch ended.
    pub stopped: bool,
}

impl<M> RunSummary<M> {
    /// The same summary with the model replaced by `f(model)` (e.g. just its backbone).
    pub fn map_model<N>(self, f: impl FnOnce(M) -> N) -> RunSummary<N> {
        RunSummary {
            model: f(self.model),
            iterations: self.iterations,
            epochs: self.epochs,
            wall_seconds: self.wall_seconds,
            last_epoch_loss: self.last_epoch_loss,
            knn: self.knn,
            skipped_images: self.skipped_images,
            last_checkpoint: self.last_checkpoint,
            pseudo_labels: self.pseudo_labels,
            stopped: self.stopped,
        }
    }
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Data could not be loaded.
    #[error(transparent)]
    Data(#[from] protoclust_data::DataError),
    /// The method refused (configuration, state or non-finite values).
    #[error(transparent)]
    Method(#[from] MethodError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Io(#[from] protoclust_nn::io::IoError),
    /// The checkpoint does not fit the model.
    #[error("{path}: {reason}")]
    Resume {
        /// Checkpoint file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// The run directory could not be written.
    #[error("{path}: {source}")]
    RunDir {
        /// The path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The kNN monitor failed.
    #[error("kNN monitor: {0}")]
    Monitor(String),
}

/// Paths inside a run directory.
pub fn last_checkpoint_path(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints").join("last.safetensors")
}

/// Uploads every view position of a batch as an N × 3 × S × S tensor.
pub fn views_to_tensors(batch: &Batch, device: &Device) -> Vec<Tensor<4>> {
    batch
        .views
        .iter()
        .map(|v| {
            Tensor::from_data(
                TensorData::new(v.data.clone(), [batch.len(), 3, v.size, v.size]),
                device,
            )
        })
        .collect()
}

struct Position {
    epoch: u64,
    batch: usize,
    iteration: u64,
}

/// The mean of every rank's `value` (each rank's loss is its part of the global batch's mean).
fn global_mean(value: f64, world: &World) -> f64 {
    let n = world.world_size();
    if n == 1 {
        return value;
    }
    let mut v = [value];
    world.sum_host_f64(&mut v);
    v[0] / n as f64
}

/// The starting point of a run continued from another model (a released checkpoint).
#[derive(Debug, Clone)]
pub struct InitFrom {
    /// Where the tensors came from.
    pub path: PathBuf,
    /// Model tensors under the method's model paths.
    pub model: BTreeMap<String, HostTensor>,
    /// Method state (e.g. SlotCon's centre).
    pub state: BTreeMap<String, HostTensor>,
}

impl InitFrom {
    /// `model` (as `method` initialised it) with the tensors of this starting point and the
    /// method's state loaded. Tensors the source does not have (a trunk alone: the heads) keep
    /// their seeded initialisation; a tensor the model does not have is an error, never ignored.
    pub fn apply<M: Method>(
        &self,
        model: M::Model,
        method: &mut M,
        device: &Device,
    ) -> Result<M::Model, TrainError> {
        let err = |reason: String| TrainError::Resume {
            path: self.path.clone(),
            reason: format!("train.init: {reason}"),
        };
        let mut all = named_tensors(&model);
        for (k, v) in &self.model {
            if !all.contains_key(k) {
                return Err(err(format!("`{k}` is not a tensor of this run's model")));
            }
            all.insert(k.clone(), v.clone());
        }
        let model = load_named(model, &all).map_err(|e| err(e.to_string()))?;
        method.load_state(&self.state, device)?;
        Ok(model)
    }
}

/// Trains `method` on batches from `loader`; resumes when `opts.resume` is set.
pub fn train<M: Method>(
    method: &mut M,
    loader: &Loader,
    optim: OptimConfig,
    schedule: ScheduleConfig,
    opts: &TrainOptions,
    device: &Device,
) -> Result<RunSummary<M::Model>, TrainError> {
    let started = Instant::now();
    let ad = device.clone().autodiff();
    let run_dir = &opts.run_dir;
    let rd = |source| TrainError::RunDir {
        path: run_dir.clone(),
        source,
    };
    let lead = opts.world.rank() == 0;
    if lead {
        std::fs::create_dir_all(run_dir.join("checkpoints")).map_err(rd)?;
    }
    let ipe = loader.batches_per_epoch();
    let base_lr = optim.lr;
    let sched = Schedule::new(schedule, base_lr, opts.epochs, ipe as u64);
    let mut optimizer = Optimizer::new(optim);
    let mut model = method.init_model(opts.seed, &ad)?;
    let mut scaler = LossScaler::for_precision(opts.precision);
    let mut pos = Position {
        epoch: 0,
        batch: 0,
        iteration: 0,
    };
    if let (None, Some(init)) = (&opts.resume, &opts.init) {
        model = init.apply(model, method, &ad)?;
    }
    if let Some(path) = &opts.resume {
        let (ck, warning) = Checkpoint::load_for_resume(path)?;
        if let Some(w) = warning {
            eprintln!("warning: {w}");
        }
        let resume_err = |reason: String| TrainError::Resume {
            path: path.clone(),
            reason,
        };
        if ck.meta.method != method.name() {
            return Err(resume_err(format!(
                "checkpoint of method `{}`, this run is `{}`",
                ck.meta.method,
                method.name()
            )));
        }
        model = load_named(model, &ck.model).map_err(|e| resume_err(e.to_string()))?;
        optimizer.load_state(&ck.optim, &ad);
        if let Some(s) = &mut scaler {
            *s = LossScaler::from_state(&ck.optim);
        }
        method.load_state(&ck.method, &ad)?;
        pos = Position {
            epoch: ck.meta.epoch,
            batch: ck.meta.batch,
            iteration: ck.meta.iteration,
        };
    }
    let metrics_path = run_dir.join("metrics.jsonl");
    let mut log = if lead {
        MetricsLog::open(&metrics_path, opts.resume.is_some()).map_err(|source| {
            TrainError::RunDir {
                path: metrics_path.clone(),
                source,
            }
        })?
    } else {
        MetricsLog::discard()
    };
    let last_path = last_checkpoint_path(run_dir);
    let save = |model: &M::Model,
                method: &M,
                optimizer: &Optimizer,
                scaler: &Option<LossScaler>,
                epoch: u64,
                batch: usize,
                iteration: u64,
                path: &Path|
     -> Result<(), TrainError> {
        model.sync_running_stats();
        // Every rank takes part: a method's state may gather what each rank keeps.
        let method_state = method.state();
        if !lead {
            return Ok(());
        }
        Checkpoint {
            meta: CheckpointMeta {
                format: FORMAT.into(),
                method: method.name().into(),
                epoch,
                batch,
                iteration,
                config: opts.config_toml.clone(),
                imported_from: None,
            },
            model: named_tensors(model),
            optim: {
                let mut state = optimizer.state();
                state.extend(scaler.iter().flat_map(LossScaler::state));
                state
            },
            method: method_state,
        }
        .save(path)?;
        Ok(())
    };
    let total_iters = opts.epochs * ipe as u64;
    let progress = Progress::new(total_iters, pos.iteration, opts.quiet || !lead);
    let mut counter = method.num_clusters().map(ClusterCounter::new);
    let mut collapse = method
        .num_clusters()
        .map(|k| CollapseWatch::new(k, opts.collapse_patience));
    let mut knn_last = Vec::new();
    let mut last_epoch_loss = None;
    let mut skipped_images = 0usize;
    // float16 steps skipped for a gradient overflow.
    let mut overflow_skips = 0u64;
    let mut epochs_done = pos.epoch;
    let mut stopped = false;
    if let Some(m) = opts
        .monitor
        .as_ref()
        .filter(|m| m.every_epochs > 0 && pos.iteration == 0)
    {
        // The random-init encoder, measured in the same run as the trained one.
        let init = m
            .evaluate(M::backbone(&model), &ad)
            .map_err(TrainError::Monitor)?;
        let line = init
            .iter()
            .map(|r| format!("k={} T={}: top1 {:.2}%", r.k, r.temperature, r.top1))
            .collect::<Vec<_>>()
            .join(", ");
        progress.println(&format!("random-init kNN {line}"));
        let _ = log.write(&json!({"kind": "knn_init", "iteration": 0, "knn": init}));
    }
    'run: for epoch in pos.epoch..opts.epochs {
        let start_batch = if epoch == pos.epoch { pos.batch } else { 0 };
        if start_batch == 0 {
            let pass = SourcePass {
                source: loader.source().clone(),
                view: opts.pass_view.clone(),
                batch_size: opts.pass_batch_size,
                device: device.clone(),
            };
            let batches = LoaderPass {
                loader,
                epoch,
                device: ad.clone(),
            };
            let ctx = EpochContext {
                epoch,
                seed: opts.seed,
                device: ad.clone(),
                data: &pass,
                batches: &batches,
            };
            model = method.on_epoch_start(model, &ctx)?;
            for prefix in method.reinitialized_params() {
                optimizer.reset(&prefix);
            }
            if let Some(a) = pseudo_label_agreement(method.pseudo_labels(), &**loader.source()) {
                progress.println(&format!(
                    "epoch {epoch} clustering: NMI {:.4}, ARI {:.4} against the true labels",
                    a.nmi, a.ari
                ));
                let _ = log.write(&json!({"kind": "clustering", "epoch": epoch,
                    "iteration": pos.iteration, "agreement": a}));
            }
        }
        let order = method.epoch_order(epoch, opts.seed);
        let (mut loss_sum, mut loss_n) = (0f64, 0u64);
        let mut window = (Instant::now(), 0usize);
        for (k, batch) in loader.epoch_in_order(epoch, start_batch, order).enumerate() {
            let b = start_batch + k;
            let batch = batch?;
            for (i, why) in &batch.skipped {
                progress.println(&format!("skipped image {i}: {why}"));
            }
            skipped_images += batch.skipped.len();
            if batch.is_empty() {
                continue;
            }
            let ctx = StepContext {
                iteration: pos.iteration,
                epoch,
                iters_per_epoch: ipe,
                device: ad.clone(),
                seed: opts.seed,
            };
            let views = views_to_tensors(&batch, &ad);
            let step::Forwarded {
                model: forwarded,
                out,
                sums,
            } = step::forward(method, model, &views, &batch, &ctx, opts.precision)?;
            model = forwarded;
            let loss = global_mean(sums[0] as f64, &opts.world);
            let bad_watch = sums[1..].iter().any(|v| !v.is_finite());
            if !loss.is_finite() || bad_watch {
                let mut details = vec![format!("loss = {loss}")];
                for (name, t) in &out.watch {
                    details.push(format!("{name}: {}", TensorStats::of(t)));
                }
                let details = details.join("\n");
                let dump = run_dir.join("nonfinite.txt");
                if lead {
                    let _ = std::fs::write(&dump, &details);
                }
                progress.finish();
                return Err(MethodError::NonFinite {
                    iteration: pos.iteration,
                    what: if loss.is_finite() {
                        "a watched tensor".into()
                    } else {
                        "the loss".into()
                    },
                    details: format!(
                        "{details}\n(statistics written to {}; the last good checkpoint {} is untouched)",
                        dump.display(),
                        last_path.display()
                    ),
                }
                .into());
            }
            let grads = step::backward(
                &*method,
                &model,
                out.loss.clone(),
                scaler.as_ref(),
                &ctx,
                &opts.world,
            );
            let lr = sched.lr(pos.iteration);
            let (updated, verdict) = step::update(
                method,
                model,
                grads,
                scaler.as_mut(),
                &mut optimizer,
                lr,
                &ctx,
            );
            model = updated;
            if verdict == Verdict::Skip {
                overflow_skips += 1;
            }
            pos.iteration += 1;
            loss_sum += loss;
            loss_n += 1;
            // Images of the global batch (each rank holds its equal part).
            window.1 += batch.len() * opts.world.world_size();
            if let Some(c) = &mut counter {
                c.add(&out.assignments);
            }
            if let Some(w) = &mut collapse {
                if let Some(msg) = w.observe(loss) {
                    progress.println(&msg);
                    let _ = log.write(
                        &json!({"kind": "warning", "iteration": pos.iteration, "message": msg}),
                    );
                }
            }
            let log_now = opts.log_every > 0 && pos.iteration.is_multiple_of(opts.log_every);
            let secs = window.0.elapsed().as_secs_f64().max(1e-9);
            let ips = window.1 as f64 / secs;
            let msg = format!(
                "epoch {epoch} it {} loss {loss:.4} lr {lr:.4e} {ips:.1} img/s",
                pos.iteration
            );
            progress.update(pos.iteration, &msg, log_now);
            if log_now {
                let mut rec = json!({"kind": "step", "iteration": pos.iteration, "epoch": epoch,
                    "loss": loss, "lr": lr, "img_per_s": ips});
                for (name, v) in &out.metrics {
                    rec[name] = json!(v);
                }
                if let Some(s) = &scaler {
                    rec["loss_scale"] = json!(s.scale());
                    rec["overflow_skips"] = json!(overflow_skips);
                }
                let _ = log.write(&rec);
                window = (Instant::now(), 0);
            }
            if opts.checkpoint_every_iterations > 0
                && pos
                    .iteration
                    .is_multiple_of(opts.checkpoint_every_iterations)
            {
                save(
                    &model,
                    method,
                    &optimizer,
                    &scaler,
                    epoch,
                    b + 1,
                    pos.iteration,
                    &last_path,
                )?;
            }
            let hook_stop = opts.on_step.as_ref().is_some_and(|hook| {
                hook(&StepEvent {
                    iteration: pos.iteration,
                    total: total_iters,
                    epoch,
                    loss,
                    lr,
                    img_per_s: ips,
                    metrics: &out.metrics,
                })
                .is_break()
            });
            stopped |= hook_stop;
            if hook_stop || opts.stop_after_iterations == Some(pos.iteration) {
                save(
                    &model,
                    method,
                    &optimizer,
                    &scaler,
                    epoch,
                    b + 1,
                    pos.iteration,
                    &last_path,
                )?;
                break 'run;
            }
        }
        epochs_done = epoch + 1;
        let mean_loss = (loss_n > 0).then(|| loss_sum / loss_n as f64);
        last_epoch_loss = mean_loss.or(last_epoch_loss);
        let mut rec = json!({"kind": "epoch", "epoch": epoch, "iteration": pos.iteration,
            "loss": mean_loss, "skipped_images": skipped_images,
            "wall_s": started.elapsed().as_secs_f64()});
        if let Some(c) = &mut counter {
            rec["clusters"] = json!(c.take());
        }
        if let Some(a) = pseudo_label_agreement(method.pseudo_labels(), &**loader.source()) {
            rec["pseudo_labels"] = json!(a);
        }
        if let Some(m) = &opts.monitor {
            if m.every_epochs > 0 && (epoch + 1).is_multiple_of(m.every_epochs) {
                model.sync_running_stats();
                knn_last = m
                    .evaluate(M::backbone(&model), &ad)
                    .map_err(TrainError::Monitor)?;
                rec["knn"] = json!(knn_last);
                let line = knn_last
                    .iter()
                    .map(|r| format!("k={} T={}: top1 {:.2}%", r.k, r.temperature, r.top1))
                    .collect::<Vec<_>>()
                    .join(", ");
                progress.println(&format!("epoch {epoch} kNN {line}"));
            }
        }
        progress.println(&format!(
            "epoch {epoch} done: mean loss {:.4}{}",
            mean_loss.unwrap_or(f64::NAN),
            rec.get("clusters")
                .map(|c| format!(", clusters used {}/{}", c["used"], c["clusters"]))
                .unwrap_or_default()
        ));
        let _ = log.write(&rec);
        save(
            &model,
            method,
            &optimizer,
            &scaler,
            epoch + 1,
            0,
            pos.iteration,
            &last_path,
        )?;
        if opts.checkpoint_every_epochs > 0
            && (epoch + 1).is_multiple_of(opts.checkpoint_every_epochs)
        {
            let numbered = run_dir
                .join("checkpoints")
                .join(format!("epoch-{:04}.safetensors", epoch + 1));
            save(
                &model,
                method,
                &optimizer,
                &scaler,
                epoch + 1,
                0,
                pos.iteration,
                &numbered,
            )?;
        }
    }
    progress.finish();
    model.sync_running_stats();
    Ok(RunSummary {
        model,
        iterations: pos.iteration,
        epochs: epochs_done,
        wall_seconds: started.elapsed().as_secs_f64(),
        last_epoch_loss,
        knn: knn_last,
        skipped_images,
        last_checkpoint: last_path,
        pseudo_labels: pseudo_label_agreement(method.pseudo_labels(), &**loader.source()),
        stopped,
    })
}
