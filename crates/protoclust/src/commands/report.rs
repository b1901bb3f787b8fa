//! `protoclust report <run-dir>`: evaluates the run's last checkpoint and writes
//! `<run-dir>/report/index.html` with curves, cluster grids, a feature map and the tables.

use crate::commands::eval::{LinearArgs, SemiSupArgs};
use crate::commands::segment::{self, SegmentArgs};
use crate::data_spec::{DataKind, DataSpec};
use crate::device;
use crate::model_file::ModelFile;
use crate::suite::{self, argmax_rows, SplitFeatures, Splits, SuiteOptions};
use anyhow::{Context, Result};
use protoclust_data::source::Source;
use protoclust_eval::record::SuiteResult;
use protoclust_eval::Features;
use protoclust_report::embedding::TsneConfig;
use protoclust_report::grid::largest_clusters;
use protoclust_report::{write_report, ClusterSection, FeatureMap, Figure, ReportInput};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// CIFAR-10's class names by label.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// What the report command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Run directory (config.toml, metrics.jsonl, checkpoints/).
    pub run_dir: PathBuf,
    /// Checkpoint to evaluate (default: <run-dir>/checkpoints/last.safetensors).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Labelled training split (default: the run's monitor.train).
    #[arg(long)]
    pub train: Option<String>,
    /// Labelled test split (default: the run's monitor.test).
    #[arg(long)]
    pub test: Option<String>,
    /// Skip the linear probe and the semi-supervised runs (minutes on a CPU).
    #[arg(long)]
    pub quick: bool,
    /// Recompute the linear probe and semi-supervised numbers even when report/suite.json
    /// holds them for this checkpoint and these settings.
    #[arg(long)]
    pub fresh: bool,
    /// Clusters shown per assignment.
    #[arg(long, default_value_t = 10)]
    pub clusters: usize,
    /// Images per cluster.
    #[arg(long, default_value_t = 16)]
    pub per_cluster: usize,
    /// Points of the 2-D feature map (test split).
    #[arg(long, default_value_t = 2000)]
    pub map_points: usize,
    #[command(flatten)]
    pub linear: LinearArgs,
    #[command(flatten)]
    pub semisup: SemiSupArgs,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl ReportArgs {
    /// Defaults with --quick (no linear probe, no fine-tuning): what the demo uses.
    pub fn quick(run_dir: PathBuf) -> Self {
        Self {
            run_dir,
            checkpoint: None,
            train: None,
            test: None,
            quick: true,
            fresh: false,
            clusters: 10,
            per_cluster: 16,
            map_points: 2000,
            linear: LinearArgs {
                linear_epochs: 100,
                linear_lrs: vec![0.01, 0.1, 1.0],
                linear_batch: 256,
            },
            semisup: SemiSupArgs {
                percents: vec![1.0, 10.0],
                semisup_epochs: 50,
                lr_backbone: 0.01,
                lr_head: 0.1,
            },
            seed: 0,
        }
    }
}

fn class_names(spec: Option<&DataSpec>, classes: usize) -> Option<Vec<String>> {
    match spec {
        Some(s) if s.kind == DataKind::Cifar10 && classes == 10 => {
            Some(CIFAR10_CLASSES.iter().map(|c| c.to_string()).collect())
        }
        _ => None,
    }
}

/// Cosine of every row to the mean of its cluster (how central it is).
fn centrality(f: &Features, labels: &[usize]) -> Vec<f32> {
    let n = f.clone().normalized();
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let mut means = vec![0f32; k * f.dim];
    for (r, &c) in labels.iter().enumerate() {
        means[c * f.dim..(c + 1) * f.dim]
            .iter_mut()
            .zip(n.row(r))
            .for_each(|(m, v)| *m += v);
    }
    labels
        .iter()
        .enumerate()
        .map(|(r, &c)| {
            let m = &means[c * f.dim..(c + 1) * f.dim];
            let norm = m.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            n.row(r).iter().zip(m).map(|(a, b)| a * b).sum::<f32>() / norm
        })
        .collect()
}

fn truth(f: &Features) -> Option<Vec<u32>> {
    f.labels.iter().copied().collect()
}

fn sections(
    model: &ModelFile,
    train: &SplitFeatures,
    source: Arc<dyn Source>,
    kmeans: Vec<usize>,
    args: &ReportArgs,
    thumb: u32,
) -> Result<Vec<ClusterSection>> {
    let k = kmeans.iter().max().map_or(0, |m| m + 1);
    let f = &train.backbone;
    let t = truth(f);
    let method = model.config.as_ref().map_or("model", |c| c.method.as_str());
    let mut out = Vec::new();
    if let (Some(scores), "swav" | "slotcon" | "deepclusterv2") = (&train.scores, method) {
        let k = scores.dim;
        out.push(ClusterSection {
            title: format!("{method}: nearest images of each prototype ({k} prototypes)"),
            note: "Every image of the split ranked by each prototype's score (SwAV, and \
                   DeepCluster-v2's first head: cosine of the embedding; SlotCon: the best pixel \
                   cosine of the teacher's dense \
                   projection), whatever prototype wins the image; the prototypes with the \
                   highest scores are shown, as SlotCon's authors show their prototypes' \
                   nearest neighbours."
                .into(),
            strips: protoclust_report::prototype_neighbours(
                &scores.data,
                k,
                &f.indices,
                args.clusters,
                args.per_cluster,
            ),
            source: source.clone(),
            thumb,
        });
    }
    let mut push = |title: String, note: &str, labels: Vec<usize>, score: Vec<f32>| {
        out.push(ClusterSection {
            title,
            note: note.into(),
            strips: largest_clusters(
                &labels,
                &score,
                &f.indices,
                t.as_deref(),
                args.clusters,
                args.per_cluster,
            ),
            source: source.clone(),
            thumb,
        });
    };
    if let Some(scores) = &train.scores {
        let labels = argmax_rows(scores);
        let score: Vec<f32> = labels
            .iter()
            .enumerate()
            .map(|(r, &c)| scores.row(r)[c])
            .collect();
        push(
            format!(
                "{method}: head assignments ({} clusters/prototypes)",
                scores.dim
            ),
            "Each training image goes to its highest-scoring prototype (SwAV) or classifier \
             output (ODC/DeepCluster); the largest clusters, with the images of highest score \
             first. The caption gives the most frequent true label among all members.",
            labels,
            score,
        );
    }
    if let Some(labels) = &model.pseudo_labels {
        if labels.len() == f.len() {
            let pred: Vec<usize> = f.indices.iter().map(|&i| labels[i]).collect();
            let score = centrality(f, &pred);
            push(
                format!("{method}: pseudo-labels kept by the method"),
                "The method's own label of every training image (its memory); images closest \
                 to the cluster's mean backbone feature first.",
                pred,
                score,
            );
        }
    }
    let score = centrality(f, &kmeans);
    push(
        format!("k-means (k = {k}) on backbone features"),
        "Spherical k-means of the L2-normalised backbone features; images closest to the \
         centroid first.",
        kmeans,
        score,
    );
    Ok(out)
}

fn thumb_side(source: &dyn Source) -> u32 {
    source
        .get(0)
        .map(|s| {
            if s.image.width.min(s.image.height) <= 48 {
                64
            } else {
                96
            }
        })
        .unwrap_or(64)
}

/// The cached suite when it is for this checkpoint and these settings.
fn cached(path: &Path, model: &ModelFile, opts: &SuiteOptions) -> Option<SuiteResult> {
    let text = std::fs::read_to_string(path).ok()?;
    let r: SuiteResult = serde_json::from_str(&text).ok()?;
    let same_model = r.model == model.path.display().to_string()
        && r.iteration == model.iteration
        && r.model_stamp == suite::model_stamp(&model.path);
    let same_linear = r.linear.as_ref().map(|l| &l.config) == opts.linear.as_ref();
    let same_semisup = r.semisup.as_ref().map(|s| &s.config) == opts.semisup.as_ref();
    (same_model && same_linear && same_semisup).then_some(r)
}

/// Evaluates and writes the report; returns the path of index.html.
pub fn run(args: &ReportArgs) -> Result<PathBuf> {
    let t0 = std::time::Instant::now();
    let dev = device::select()?;
    let ck = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| args.run_dir.join("checkpoints/last.safetensors"));
    let model = ModelFile::open(&ck, None, true, &dev)?;
    let cfg = model.config.clone();
    let out_dir = args.run_dir.join("report");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let metrics_path = args.run_dir.join("metrics.jsonl");
    let (metrics, bad) = if metrics_path.exists() {
        protoclust_report::curves::read_metrics(&metrics_path)?
    } else {
        (Vec::new(), 0)
    };
    if bad > 0 {
        eprintln!("{}: {bad} unreadable lines skipped", metrics_path.display());
    }
    let mut summary: Vec<(String, String)> = vec![
        ("checkpoint".into(), ck.display().to_string()),
        (
            "method".into(),
            cfg.as_ref()
                .map_or("exported backbone".into(), |c| c.method.clone()),
        ),
        (
            "backbone".into(),
            format!(
                "ResNet-{} width {}{} ({}-d features)",
                model.backbone_config.depth,
                model.backbone_config.width,
                if model.backbone_config.small_stem {
                    ", small stem"
                } else {
                    ""
                },
                model.backbone.out_dim()
            ),
        ),
        (
            "iterations trained".into(),
            model.iteration.map_or("–".into(), |i| i.to_string()),
        ),
        ("evaluation backend".into(), format!("{dev:?}")),
    ];
    if let Some(w) = metrics
        .iter()
        .rev()
        .find_map(|r| r.get("wall_s").and_then(|v| v.as_f64()))
    {
        summary.push(("training wall time".into(), format!("{:.1} min", w / 60.0)));
    }
    let opts = SuiteOptions {
        linear: (!args.quick).then(|| args.linear.config(args.seed)),
        semisup: (!args.quick).then(|| args.semisup.config(args.seed)),
        seed: args.seed,
        verbose: true,
    };
    let suite_path = out_dir.join("suite.json");
    let splits = Splits::resolve(&model, args.train.as_deref(), args.test.as_deref());
    let mut clusters = Vec::new();
    let mut map = None;
    let mut class_list = None;
    let suite_result = match &splits {
        Ok(splits) => {
            let train_spec = match &args.train {
                Some(s) => Some(DataSpec::parse(s)?),
                None => cfg.as_ref().and_then(|c| c.monitor.train.clone()),
            };
            class_list = class_names(train_spec.as_ref(), splits.classes);
            let reuse = (!args.fresh)
                .then(|| cached(&suite_path, &model, &opts))
                .flatten();
            let quick = SuiteOptions {
                linear: None,
                semisup: None,
                ..opts
            };
            let run = suite::run(
                &model,
                splits,
                if reuse.is_some() { &quick } else { &opts },
                &dev,
            )?;
            let mut result = run.result;
            if let Some(old) = reuse {
                eprintln!(
                    "linear probe and semi-supervised numbers reused from {}",
                    suite_path.display()
                );
                result.linear = old.linear;
                result.semisup = old.semisup;
            }
            let thumb = thumb_side(splits.train.as_ref());
            clusters = sections(
                &model,
                &run.train,
                splits.train.clone(),
                run.kmeans.clone(),
                args,
                thumb,
            )?;
            let te = &run.test.backbone;
            let n = te.len().min(args.map_points);
            map = Some(FeatureMap {
                title: "t-SNE of test-split backbone features, coloured by true label".into(),
                data: te.data[..n * te.dim].to_vec(),
                dim: te.dim,
                groups: te.labels[..n]
                    .iter()
                    .map(|l| l.unwrap_or(0) as usize)
                    .collect(),
                legend: class_list
                    .clone()
                    .unwrap_or_else(|| (0..splits.classes).map(|c| format!("class {c}")).collect()),
                tsne: TsneConfig {
                    seed: args.seed,
                    ..Default::default()
                },
            });
            protoclust_nn::io::atomic_write(
                &suite_path,
                serde_json::to_string_pretty(&result)?.as_bytes(),
            )?;
            print!("{}", result.markdown());
            Some(result)
        }
        Err(e) => {
            eprintln!("no labelled splits ({e:#}); the report shows clusters of the training data");
            if let Some(c) = &cfg {
                let source = c.data.open().context("data")?;
                let view = c.eval_view.clone();
                let f = suite::split_features(&model, source.clone(), &view, &dev)?;
                // No labels to count classes by: show 10 k-means clusters.
                let k = 10;
                let km = suite::kmeans_labels(&f.backbone, k, args.seed, &dev)?;
                let thumb = thumb_side(source.as_ref());
                clusters = sections(&model, &f, source, km.clone(), args, thumb)?;
                let n = f.backbone.len().min(args.map_points);
                map = Some(FeatureMap {
                    title: format!("t-SNE of training-image backbone features, coloured by k-means cluster (k = {k})"),
                    data: f.backbone.data[..n * f.backbone.dim].to_vec(),
                    dim: f.backbone.dim,
                    groups: km[..n].to_vec(),
                    legend: (0..k).map(|c| format!("cluster {c}")).collect(),
                    tsne: TsneConfig {
                        seed: args.seed,
                        ..Default::default()
                    },
                });
            }
            None
        }
    };
    let (dense, dense_note) = dense_figures(&model, &ck, &out_dir, args.seed)?;
    let config_toml = std::fs::read_to_string(args.run_dir.join("config.toml"))
        .ok()
        .or_else(|| cfg.as_ref().and_then(|c| toml::to_string(c).ok()));
    let title = format!(
        "protoclust report: {}",
        args.run_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("run")
    );
    let index = write_report(&ReportInput {
        title,
        out_dir,
        summary,
        metrics: &metrics,
        suite: suite_result.as_ref(),
        clusters,
        class_names: class_list,
        map,
        dense,
        dense_note,
        config_toml,
    })?;
    eprintln!("report written in {:.0}s", t0.elapsed().as_secs_f64());
    Ok(index)
}

/// Segment panels for dense methods (SlotCon) when CamVid is at its default place.
fn dense_figures(
    model: &ModelFile,
    ck: &Path,
    out: &Path,
    seed: u64,
) -> Result<(Vec<Figure>, String)> {
    let dense = model.config.as_ref().is_some_and(|c| c.method == "slotcon");
    let images = PathBuf::from("../shared/data/camvid/val");
    if !dense || !images.is_dir() {
        return Ok((Vec::new(), String::new()));
    }
    let args = SegmentArgs {
        images,
        masks: PathBuf::from("../shared/data/camvid/valannot"),
        classes: 11,
        ignore: 11,
        out: out.to_path_buf(),
        panels: 4,
        seed,
        random_init: false,
        backbone_prefix: None,
        mode: segment::SegmentMode::All,
        matching: segment::MatchingArg::Majority,
        scores: segment::ScoresArg::Raw,
        regions: 6,
        region_rows: 12,
    };
    segment::run(ck, &args)?;
    let mut figs: Vec<Figure> = std::fs::read_dir(out)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with("segment_") && n.ends_with(".png"))
        .map(|file| Figure {
            caption: format!("{file}: image | ground truth | prediction"),
            file,
        })
        .collect();
    figs.sort_by(|a, b| a.file.cmp(&b.file));
    if out.join("prototypes/regions.png").is_file() {
        figs.push(Figure {
            file: "prototypes/regions.png".into(),
            caption: "prototype regions: a row per prototype (those winning the most pixels), \
                      its best val frames cropped to the region it wins (SlotCon's figure)"
                .into(),
        });
    }
    Ok((
        figs,
        "CamVid val: k-means (k = 11) on the teacher backbone's dense features, clusters \
         Hungarian-matched to the classes (eval segment); image | ground truth | prediction. \
         Last: each prototype's nearest regions (pixels given to their prototype argmax)."
            .into(),
    ))
}
