//! `protoclust eval knn|linear|semisup|cluster|all <checkpoint-or-export>`.

use crate::device;
use crate::model_file::ModelFile;
use crate::suite::{self, Splits, SuiteOptions};
use anyhow::{bail, Result};
use clap::Args;
use protoclust_eval::record::{KnnTable, SuiteResult};
use protoclust_eval::{knn_classify, LinearProbeConfig, SemiSupConfig};
use protoclust_nn::io::atomic_write;
use std::path::{Path, PathBuf};

/// The model file and the labelled splits every evaluation takes.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Training checkpoint of any method, or an exported backbone.
    pub model: PathBuf,
    /// Labelled training split, e.g. cifar10:FILE (default: the run's monitor.train).
    #[arg(long)]
    pub train: Option<String>,
    /// Labelled test split (default: the run's monitor.test).
    #[arg(long)]
    pub test: Option<String>,
    /// Write the numbers as JSON to this file too.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Float type of the backbone's convolutions: f32, or bf16 as PyTorch's autocast (on the
    /// CPU it needs AVX512-BF16).
    #[arg(long, default_value = "f32")]
    pub precision: protoclust_nn::precision::Precision,
}

/// Linear-probe settings on the command line.
#[derive(Args, Debug, Clone)]
pub struct LinearArgs {
    /// Linear probe: epochs.
    #[arg(long, default_value_t = 100)]
    pub linear_epochs: usize,
    /// Linear probe: learning-rate grid.
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.1,1")]
    pub linear_lrs: Vec<f64>,
    /// Linear probe: batch size.
    #[arg(long, default_value_t = 256)]
    pub linear_batch: usize,
}

impl LinearArgs {
    pub fn config(&self, seed: u64) -> LinearProbeConfig {
        LinearProbeConfig {
            epochs: self.linear_epochs,
            lrs: self.linear_lrs.clone(),
            batch_size: self.linear_batch,
            seed,
            ..Default::default()
        }
    }
}

/// Semi-supervised settings on the command line.
#[derive(Args, Debug, Clone)]
pub struct SemiSupArgs {
    /// Semi-supervised: percentages of the training labels.
    #[arg(long, value_delimiter = ',', default_value = "1,10")]
    pub percents: Vec<f64>,
    /// Semi-supervised: epochs over the labelled subset.
    #[arg(long, default_value_t = 50)]
    pub semisup_epochs: usize,
    /// Semi-supervised: backbone learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr_backbone: f64,
    /// Semi-supervised: head learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr_head: f64,
}

impl SemiSupArgs {
    pub fn config(&self, seed: u64) -> SemiSupConfig {
        SemiSupConfig {
            percents: self.percents.clone(),
            epochs: self.semisup_epochs,
            lr_backbone: self.lr_backbone,
            lr_head: self.lr_head,
            seed,
            ..Default::default()
        }
    }
}

fn open(t: &Target, with_head: bool) -> Result<(ModelFile, Splits)> {
    let dev = device::select()?;
    let mut model = ModelFile::open(&t.model, None, with_head, &dev)?;
    model.trunk = model.trunk.with_precision(t.precision)?;
    let splits = Splits::resolve(&model, t.train.as_deref(), t.test.as_deref())?;
    Ok((model, splits))
}

fn save(out: Option<&Path>, value: &impl serde::Serialize) -> Result<()> {
    if let Some(p) = out {
        atomic_write(p, serde_json::to_string_pretty(value)?.as_bytes())?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

fn print_knn(tables: &[KnnTable], train: usize, test: usize) {
    for t in tables {
        for r in &t.results {
            println!(
                "kNN {:<9} k={:<4} T={:<5} top-1 {:6.2}%  top-5 {:6.2}%  ({train} train, {test} test)",
                t.features, r.k, r.temperature, r.top1, r.top5
            );
        }
    }
}

/// Weighted kNN for each (k, T) pair, or the standard sweep on backbone and head features.
pub fn knn(t: &Target, ks: &[usize], ts: &[f64], sweep: bool) -> Result<()> {
    if ks.len() != ts.len() {
        bail!("--k and --t need the same number of values");
    }
    let dev = device::select()?;
    let (model, splits) = open(t, sweep)?;
    let tr = suite::split_features(&model, splits.train.clone(), &splits.view, &dev)?;
    let te = suite::split_features(&model, splits.test.clone(), &splits.view, &dev)?;
    let tables = if sweep {
        suite::knn_tables(&tr, &te, splits.classes, &dev)?
    } else {
        let settings: Vec<(usize, f64)> = ks.iter().copied().zip(ts.iter().copied()).collect();
        vec![KnnTable {
            features: "backbone".into(),
            dim: tr.backbone.dim,
            results: knn_classify(&tr.backbone, &te.backbone, &settings, splits.classes, &dev)?,
        }]
    };
    print_knn(&tables, tr.backbone.len(), te.backbone.len());
    save(t.out.as_deref(), &tables)
}

/// Linear probe with the standard protocol.
pub fn linear(t: &Target, args: &LinearArgs, seed: u64) -> Result<()> {
    let r = run_suite(t, Some(args.config(seed)), None, false, seed)?;
    print!("{}", r.markdown());
    save(t.out.as_deref(), &r.linear)
}

/// Semi-supervised fine-tuning on 1% / 10% of the labels.
pub fn semisup(t: &Target, args: &SemiSupArgs, seed: u64) -> Result<()> {
    let r = run_suite(t, None, Some(args.config(seed)), false, seed)?;
    print!("{}", r.markdown());
    save(t.out.as_deref(), &r.semisup)
}

/// Clustering metrics of the method's assignments and of k-means on backbone features.
pub fn cluster(t: &Target, seed: u64) -> Result<()> {
    let dev = device::select()?;
    let (model, splits) = open(t, true)?;
    let tr = suite::split_features(&model, splits.train.clone(), &splits.view, &dev)?;
    let (rows, _) = suite::clustering(&model, &tr, splits.classes, seed, &dev)?;
    let r = SuiteResult {
        clustering: rows,
        ..empty_result(&model, &splits, seed)
    };
    print!("{}", r.markdown());
    save(t.out.as_deref(), &r.clustering)
}

fn empty_result(model: &ModelFile, splits: &Splits, seed: u64) -> SuiteResult {
    SuiteResult {
        model: model.path.display().to_string(),
        method: model.config.as_ref().map(|c| c.method.clone()),
        iteration: model.iteration,
        model_stamp: suite::model_stamp(&model.path),
        splits: splits.names.clone(),
        seed,
        knn: Vec::new(),
        clustering: Vec::new(),
        linear: None,
        semisup: None,
    }
}

fn run_suite(
    t: &Target,
    linear: Option<LinearProbeConfig>,
    semisup: Option<SemiSupConfig>,
    full: bool,
    seed: u64,
) -> Result<SuiteResult> {
    let dev = device::select()?;
    let (model, splits) = open(t, full)?;
    let opts = SuiteOptions {
        linear,
        semisup,
        seed,
        verbose: true,
    };
    if full {
        return Ok(suite::run(&model, &splits, &opts, &dev)?.result);
    }
    let (linear, semisup) = suite::supervised(&model, &splits, &opts, &dev)?;
    Ok(SuiteResult {
        linear,
        semisup,
        ..empty_result(&model, &splits, seed)
    })
}

/// The whole suite: kNN sweeps, clustering metrics, linear probe, semi-supervised.
pub fn all(
    t: &Target,
    linear: Option<&LinearArgs>,
    semisup: Option<&SemiSupArgs>,
    seed: u64,
) -> Result<()> {
    let r = run_suite(
        t,
        linear.map(|a| a.config(seed)),
        semisup.map(|a| a.config(seed)),
        true,
        seed,
    )?;
    print!("{}", r.markdown());
    save(t.out.as_deref(), &r)
}
