//! The evaluation suite of one model file: kNN sweeps on backbone and head features, linear
//! probe, semi-supervised fine-tuning and clustering metrics, as one serialisable record.

use crate::data_spec::DataSpec;
use crate::model_file::ModelFile;
use anyhow::{Context, Result};
use burn::tensor::{Device, Tensor};
use protoclust_data::source::Source;
use protoclust_data::views::CenterView;
use protoclust_eval::cluster_metrics::cluster_agreement;
use protoclust_eval::record::{ClusteringRow, KnnTable, SuiteResult};
use protoclust_eval::{
    extract_with, knn_classify, linear_probe, semi_supervised, sweep_settings, Features,
    LinearProbeConfig, LinearProbeResult, SemiSupConfig, SemiSupResult,
};
use protoclust_nn::cluster::{kmeans, KMeansConfig, KMeansMetric};
use std::sync::Arc;

/// The labelled splits an evaluation runs on.
pub struct Splits {
    /// Labelled training split (kNN memory bank, probe training).
    pub train: Arc<dyn Source>,
    /// Labelled test split.
    pub test: Arc<dyn Source>,
    /// Centre view of both.
    pub view: CenterView,
    /// Classes of the training split.
    pub classes: usize,
    /// The splits as given (`kind:path`), for the record.
    pub names: [String; 2],
}

fn describe(spec: &DataSpec) -> String {
    serde_json::to_string(spec).unwrap_or_default()
}

/// Why an evaluation cannot run on an unlabelled split.
fn unlabelled(which: &str) -> String {
    format!(
        "--{which}: the {which} split has no labels; this evaluation needs labelled splits \
         (class sub-folders with folder:, a list of path,label lines with list:, or a labelled \
         data set)"
    )
}

impl Splits {
    /// The given specs, or the run's `monitor.train`/`monitor.test` when the model file is a
    /// checkpoint that has them.
    pub fn resolve(model: &ModelFile, train: Option<&str>, test: Option<&str>) -> Result<Self> {
        let cfg = model.config.as_ref();
        let spec = |given: Option<&str>, fallback: Option<DataSpec>, which: &str| match given {
            Some(s) => DataSpec::parse(s),
            None => fallback.with_context(|| {
                format!("--{which} is needed (the model file carries no monitor.{which} split)")
            }),
        };
        let tr = spec(train, cfg.and_then(|c| c.monitor.train.clone()), "train")?;
        let te = spec(test, cfg.and_then(|c| c.monitor.test.clone()), "test")?;
        let view = cfg
            .map(|c| c.eval_view.clone())
            .unwrap_or_else(|| tr.default_eval_view());
        let train = tr.open().context("--train")?;
        let test = te.open().context("--test")?;
        let classes = train.num_classes().with_context(|| unlabelled("train"))?;
        test.num_classes().with_context(|| unlabelled("test"))?;
        Ok(Self {
            train,
            test,
            view,
            classes,
            names: [describe(&tr), describe(&te)],
        })
    }
}

/// Features of one split: the backbone's, and the head's embedding and cluster scores when
/// the model file has a head.
pub struct SplitFeatures {
    /// Pooled backbone features.
    pub backbone: Features,
    /// Head embedding.
    pub embedding: Option<Features>,
    /// Head cluster scores.
    pub scores: Option<Features>,
}

fn columns(all: &Features, from: usize, to: usize) -> Features {
    let dim = to - from;
    Features {
        dim,
        data: all
            .data
            .chunks_exact(all.dim)
            .flat_map(|r| r[from..to].iter().copied())
            .collect(),
        labels: all.labels.clone(),
        indices: all.indices.clone(),
        skipped: all.skipped,
    }
}

/// One pass over `source` computing backbone, embedding and score columns together.
pub fn split_features(
    model: &ModelFile,
    source: Arc<dyn Source>,
    view: &CenterView,
    device: &Device,
) -> Result<SplitFeatures> {
    let plain = device.clone().without_autodiff();
    let dims = std::cell::Cell::new([0usize; 3]);
    let batch = model.trunk.batch_for(view.size, 256);
    let all = extract_with(source, view, batch, &plain, &|x: Tensor<4>| {
        let trunk = model.trunk.forward(x);
        let mut parts = vec![trunk.pooled.clone()];
        if let Some(head) = &model.head {
            let out = head(&trunk);
            parts.extend(out.embedding);
            parts.extend(out.scores);
        }
        let mut d = [0usize; 3];
        parts
            .iter()
            .enumerate()
            .for_each(|(i, p)| d[i] = p.dims()[1]);
        dims.set(d);
        Tensor::cat(parts, 1)
    })?;
    if all.skipped > 0 {
        eprintln!(
            "{} images could not be decoded and were skipped",
            all.skipped
        );
    }
    let [b, e, s] = dims.get();
    let has = model.head.is_some();
    Ok(SplitFeatures {
        backbone: columns(&all, 0, b),
        embedding: (has && e > 0).then(|| columns(&all, b, b + e)),
        scores: (has && s > 0).then(|| columns(&all, b + e, b + e + s)),
    })
}

/// kNN sweeps on the backbone features and, when present, the head embedding.
pub fn knn_tables(
    train: &SplitFeatures,
    test: &SplitFeatures,
    classes: usize,
    device: &Device,
) -> Result<Vec<KnnTable>> {
    let mut out = Vec::new();
    let pairs = [
        ("backbone", Some(&train.backbone), Some(&test.backbone)),
        (
            "embedding",
            train.embedding.as_ref(),
            test.embedding.as_ref(),
        ),
    ];
    for (name, tr, te) in pairs {
        if let (Some(tr), Some(te)) = (tr, te) {
            let results = knn_classify(tr, te, &sweep_settings(tr.len()), classes, device)?;
            out.push(KnnTable {
                features: name.into(),
                dim: tr.dim,
                results,
            });
        }
    }
    Ok(out)
}

fn truth(f: &Features) -> Vec<usize> {
    f.labels.iter().map(|l| l.unwrap_or(0) as usize).collect()
}

fn row(
    assignments: &str,
    clusters: usize,
    split: &str,
    pred: &[usize],
    f: &Features,
) -> ClusteringRow {
    let mut seen = vec![false; clusters];
    pred.iter().for_each(|&p| {
        if let Some(s) = seen.get_mut(p) {
            *s = true;
        }
    });
    ClusteringRow {
        assignments: assignments.into(),
        clusters,
        used: seen.iter().filter(|&&s| s).count(),
        split: split.into(),
        agreement: cluster_agreement(pred, &truth(f)),
    }
}

/// Row-wise argmax.
pub fn argmax_rows(f: &Features) -> Vec<usize> {
    f.data
        .chunks_exact(f.dim.max(1))
        .map(|r| {
            r.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
                .map(|(i, _)| i)
                .unwrap_or(0)
        })
        .collect()
}

/// k-means (spherical, k = number of classes, `seed`) on the backbone features of `f`.
pub fn kmeans_labels(f: &Features, k: usize, seed: u64, device: &Device) -> Result<Vec<usize>> {
    let x = f.to_tensor(&device.clone().without_autodiff());
    let r = kmeans(
        &x,
        &KMeansConfig {
            k,
            restarts: 3,
            max_iterations: 100,
            metric: KMeansMetric::Spherical,
            seed,
            ..Default::default()
        },
    )?;
    Ok(r.labels)
}

/// Clustering metrics of the training split: the head's argmax, the method's pseudo-labels,
/// and k-means on backbone features; also returns the k-means labels.
pub fn clustering(
    model: &ModelFile,
    train: &SplitFeatures,
    classes: usize,
    seed: u64,
    device: &Device,
) -> Result<(Vec<ClusteringRow>, Vec<usize>)> {
    let f = &train.backbone;
    let mut rows = Vec::new();
    if let Some(scores) = &train.scores {
        rows.push(row(
            "head argmax (prototypes / classifier)",
            scores.dim,
            "train",
            &argmax_rows(scores),
            f,
        ));
    }
    if let Some(labels) = &model.pseudo_labels {
        if labels.len() != f.len() {
            eprintln!(
                "the method's {} pseudo-labels are for its training data, not the {}-image train split: not compared",
                labels.len(),
                f.len()
            );
        } else {
            let k = labels.iter().max().map_or(0, |m| m + 1);
            let pred: Vec<usize> = f.indices.iter().map(|&i| labels[i]).collect();
            rows.push(row("method pseudo-labels", k, "train", &pred, f));
        }
    }
    let km = kmeans_labels(f, classes, seed, device)?;
    rows.push(row(
        &format!("k-means (k = {classes}, spherical) on backbone features"),
        classes,
        "train",
        &km,
        f,
    ));
    Ok((rows, km))
}

/// What to run beyond kNN and clustering.
pub struct SuiteOptions {
    /// Linear probe settings, None to skip it.
    pub linear: Option<LinearProbeConfig>,
    /// Semi-supervised settings, None to skip it.
    pub semisup: Option<SemiSupConfig>,
    /// Seed of k-means (the probe and fine-tuning carry their own).
    pub seed: u64,
    /// Print progress.
    pub verbose: bool,
}

/// The suite's features and results (features kept for the report).
pub struct SuiteRun {
    /// Training split features.
    pub train: SplitFeatures,
    /// Test split features.
    pub test: SplitFeatures,
    /// k-means labels of the training split (k = classes, the suite's seed).
    pub kmeans: Vec<usize>,
    /// The numbers.
    pub result: SuiteResult,
}

/// The linear probe and the semi-supervised runs `opts` asks for.
pub fn supervised(
    model: &ModelFile,
    splits: &Splits,
    opts: &SuiteOptions,
    device: &Device,
) -> Result<(Option<LinearProbeResult>, Option<SemiSupResult>)> {
    let say = |s: &str| {
        if opts.verbose {
            eprintln!("{s}");
        }
    };
    let linear = match &opts.linear {
        Some(cfg) => {
            say("linear probe");
            let net = &model.trunk;
            Some(linear_probe(
                &|x| net.pooled(x),
                splits.train.clone(),
                splits.test.clone(),
                &splits.view,
                cfg,
                device,
                &|epoch, losses| {
                    if opts.verbose && (epoch + 1) % 10 == 0 {
                        eprintln!("  linear epoch {}: loss per lr {losses:.3?}", epoch + 1);
                    }
                },
            )?)
        }
        None => None,
    };
    let semisup = match &opts.semisup {
        Some(cfg) => {
            say("semi-supervised fine-tuning");
            let net = model.trainable_backbone(device)?;
            Some(semi_supervised(
                &net,
                splits.train.clone(),
                splits.test.clone(),
                &splits.view,
                cfg,
                device,
                &|pct, epoch, loss| {
                    if opts.verbose && (epoch + 1) % 10 == 0 {
                        eprintln!("  {pct}% labels, epoch {}: loss {loss:.3}", epoch + 1);
                    }
                },
            )?)
        }
        None => None,
    };
    Ok((linear, semisup))
}

/// Size and modification time of a file, as text ("" when unreadable).
pub fn model_stamp(path: &std::path::Path) -> String {
    std::fs::metadata(path)
        .map(|m| {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{} bytes, mtime {t} ns", m.len())
        })
        .unwrap_or_default()
}

/// Runs the whole suite on `model`.
pub fn run(
    model: &ModelFile,
    splits: &Splits,
    opts: &SuiteOptions,
    device: &Device,
) -> Result<SuiteRun> {
    let say = |s: &str| {
        if opts.verbose {
            eprintln!("{s}");
        }
    };
    say("features of the train and test splits");
    let train = split_features(model, splits.train.clone(), &splits.view, device)?;
    let test = split_features(model, splits.test.clone(), &splits.view, device)?;
    say("kNN sweep");
    let knn = knn_tables(&train, &test, splits.classes, device)?;
    say("clustering metrics");
    let (clustering, kmeans) = clustering(model, &train, splits.classes, opts.seed, device)?;
    let (linear, semisup) = supervised(model, splits, opts, device)?;
    let result = SuiteResult {
        model: model.path.display().to_string(),
        method: model.config.as_ref().map(|c| c.method.clone()),
        iteration: model.iteration,
        model_stamp: model_stamp(&model.path),
        splits: splits.names.clone(),
        seed: opts.seed,
        knn,
        clustering,
        linear,
        semisup,
    };
    Ok(SuiteRun {
        train,
        test,
        kmeans,
        result,
    })
}
