//! `protoclust eval knn|linear <checkpoint-or-export>`.

use crate::data_spec::DataSpec;
use crate::{device, runner};
use anyhow::{bail, Context, Result};
use protoclust_eval::{extract, knn_classify, linear_probe, Features, LinearProbeConfig};
use std::path::Path;

/// Train/test features of a backbone file, with the class count.
pub fn features(
    model: &Path,
    train: Option<&str>,
    test: Option<&str>,
    batch_size: usize,
) -> Result<(Features, Features, usize)> {
    let dev = device::select()?;
    let (net, cfg) = runner::load_backbone(model, &dev)?;
    let spec = |given: Option<&str>, fallback: Option<DataSpec>, which: &str| -> Result<DataSpec> {
        match given {
            Some(s) => DataSpec::parse(s),
            None => fallback.with_context(|| {
                format!("--{which} is needed (the model file carries no monitor.{which} split)")
            }),
        }
    };
    let tr = spec(
        train,
        cfg.as_ref().and_then(|c| c.monitor.train.clone()),
        "train",
    )?;
    let te = spec(
        test,
        cfg.as_ref().and_then(|c| c.monitor.test.clone()),
        "test",
    )?;
    let view = cfg
        .as_ref()
        .map(|c| c.eval_view.clone())
        .unwrap_or_else(|| tr.default_eval_view());
    let trs = tr.open().context("--train")?;
    let classes = trs.num_classes().context("the train split has no labels")?;
    let ftr = extract(&net, trs, &view, batch_size, &dev)?;
    let fte = extract(&net, te.open().context("--test")?, &view, batch_size, &dev)?;
    if ftr.skipped + fte.skipped > 0 {
        eprintln!(
            "{} images could not be decoded and were skipped",
            ftr.skipped + fte.skipped
        );
    }
    Ok((ftr, fte, classes))
}

/// Weighted kNN for each (k, T) pair.
pub fn knn(
    model: &Path,
    train: Option<&str>,
    test: Option<&str>,
    ks: &[usize],
    ts: &[f64],
) -> Result<()> {
    if ks.len() != ts.len() {
        bail!("--k and --t need the same number of values");
    }
    let (tr, te, classes) = features(model, train, test, 256)?;
    let dev = device::select()?;
    let settings: Vec<(usize, f64)> = ks.iter().copied().zip(ts.iter().copied()).collect();
    for r in knn_classify(&tr, &te, &settings, classes, &dev)? {
        println!(
            "kNN k={:<4} T={:<5} top-1 {:6.2}%  top-5 {:6.2}%  ({} train, {} test)",
            r.k,
            r.temperature,
            r.top1,
            r.top5,
            tr.len(),
            te.len()
        );
    }
    Ok(())
}

/// Linear probe on frozen features.
pub fn linear(
    model: &Path,
    train: Option<&str>,
    test: Option<&str>,
    cfg: &LinearProbeConfig,
) -> Result<()> {
    let (tr, te, classes) = features(model, train, test, 256)?;
    let r = linear_probe(&tr, &te, classes, cfg, &device::select()?).map_err(anyhow::Error::msg)?;
    println!(
        "linear probe ({} epochs, lr {}): top-1 {:.2}%  top-5 {:.2}%  ({} train, {} test)",
        cfg.epochs,
        cfg.lr,
        r.top1,
        r.top5,
        tr.len(),
        te.len()
    );
    Ok(())
}
