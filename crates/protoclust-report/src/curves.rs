//! Training curves from a run's `metrics.jsonl`: loss, learning rate, online kNN, cluster
//! statistics.

use crate::chart::{line_chart, Series};
use crate::{Figure, ReportError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The records of a metrics file, one JSON object per line (unparsable lines are counted).
pub fn read_metrics(path: &Path) -> Result<(Vec<Value>, usize), ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut bad = 0;
    let records = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str::<Value>(l) {
            Ok(v) => Some(v),
            Err(_) => {
                bad += 1;
                None
            }
        })
        .collect();
    Ok((records, bad))
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_f64()
}

fn kind(v: &Value) -> &str {
    v.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// Points of field `path` over records of `want` kind, against `x`.
fn points(records: &[Value], want: &str, x: &[&str], path: &[&str]) -> Vec<(f64, f64)> {
    records
        .iter()
        .filter(|r| kind(r) == want)
        .filter_map(|r| Some((num(r, x)?, num(r, path)?)))
        .collect()
}

fn series(name: &str, points: Vec<(f64, f64)>) -> Vec<Series> {
    if points.is_empty() {
        Vec::new()
    } else {
        vec![Series {
            name: name.into(),
            points,
        }]
    }
}

/// The online kNN top-1 per (k, T) setting against epochs completed (0 = random init).
fn knn_series(records: &[Value]) -> Vec<Series> {
    let mut by: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in records {
        let x = match kind(r) {
            "knn_init" => 0.0,
            "epoch" => match num(r, &["epoch"]) {
                Some(e) => e + 1.0,
                None => continue,
            },
            _ => continue,
        };
        for k in r.get("knn").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(kk), Some(t), Some(top1)) =
                (num(k, &["k"]), num(k, &["temperature"]), num(k, &["top1"]))
            {
                by.entry(format!("k={kk} T={t}"))
                    .or_default()
                    .push((x, top1));
            }
        }
    }
    by.into_iter()
        .map(|(name, points)| Series { name, points })
        .collect()
}

/// Draws every curve the metrics support into `dir`, returning the figures made.
pub fn training_curves(records: &[Value], dir: &Path) -> Result<Vec<Figure>, ReportError> {
    let it = ["iteration"];
    let ep = ["epoch"];
    let epoch_x = |path: &[&str]| -> Vec<(f64, f64)> {
        points(records, "epoch", &ep, path)
            .into_iter()
            .map(|(x, y)| (x + 1.0, y))
            .collect()
    };
    let mut step_loss = series("per logged step", points(records, "step", &it, &["loss"]));
    step_loss.extend(series(
        "epoch mean",
        records
            .iter()
            .filter(|r| kind(r) == "epoch")
            .filter_map(|r| Some((num(r, &it)?, num(r, &["loss"])?)))
            .collect(),
    ));
    let plots: Vec<(&str, &str, &str, &str, Vec<Series>)> = vec![
        ("loss.svg", "Training loss", "iteration", "loss", step_loss),
        (
            "lr.svg",
            "Learning rate",
            "iteration",
            "lr",
            series("lr", points(records, "step", &it, &["lr"])),
        ),
        (
            "knn.svg",
            "Online kNN top-1 on the test split",
            "epochs completed",
            "top-1 (%)",
            knn_series(records),
        ),
        (
            "clusters_used.svg",
            "Clusters used by the epoch's assignments",
            "epoch",
            "clusters with members",
            series("used", epoch_x(&["clusters", "used"])),
        ),
        (
            "cluster_entropy.svg",
            "Entropy of the cluster sizes (nats)",
            "epoch",
            "entropy",
            series("entropy", epoch_x(&["clusters", "entropy"])),
        ),
        (
            "pseudo_labels.svg",
            "Pseudo-labels against the true labels",
            "epoch",
            "score",
            [("NMI", "nmi"), ("ARI", "ari")]
                .iter()
                .flat_map(|(n, f)| series(n, epoch_x(&["pseudo_labels", f])))
                .collect(),
        ),
    ];
    let mut out = Vec::new();
    for (file, title, xl, yl, s) in plots {
        if line_chart(&dir.join(file), title, xl, yl, &s)? {
            out.push(Figure {
                file: file.into(),
                caption: title.into(),
            });
        }
    }
    Ok(out)
}
