//! `protoclust extract <model> --data SPEC --out FILE`: pooled features to safetensors.

use crate::data_spec::DataSpec;
use crate::spill::Spill;
use crate::{device, model_file};
use anyhow::{Context, Result};
use protoclust_eval::extract_each;
use protoclust_nn::infer::EvalTrunk;
use protoclust_nn::io::{save_with_spilled, OutRef, Spilled};
use protoclust_nn::precision::Precision;
use protoclust_train::metrics::Progress;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Writes `features` (N × C), `indices` and, when labelled, `labels`.
pub fn run(model: &Path, data: &str, out: &Path, precision: Precision) -> Result<()> {
    let dev = device::select()?;
    let (net, cfg) = model_file::load_backbone(model, &dev)?;
    let spec = DataSpec::parse(data)?;
    let view = cfg
        .map(|c| c.eval_view)
        .unwrap_or_else(|| spec.default_eval_view());
    let trunk = EvalTrunk::new(&net).with_precision(precision)?;
    let source = spec.open().context("--data")?;
    drop(net);
    let batch = trunk.batch_for(view.size, 256);
    let total = source.len();
    let progress = Progress::new(total as u64, 0, false);
    // The rows go to disk batch by batch: memory does not grow with the data set.
    let mut spill = Spill::beside(out)?;
    let (mut labels, mut indices) = (Vec::new(), Vec::new());
    let mut dim = trunk.modules().out_dim();
    let mut failed = None;
    extract_each(source, &view, batch, &dev, &|x| trunk.pooled(x), &mut |b| {
        if failed.is_none() {
            failed = spill.push(b.rows).err();
        }
        dim = b.dim;
        labels.extend_from_slice(b.labels);
        indices.extend(b.indices.iter().map(|&i| i as i64));
        progress.update(b.read as u64, &format!("{}/{total} images", b.read), false);
    })?;
    progress.finish();
    if let Some(e) = failed {
        return Err(e);
    }
    let n = indices.len();
    anyhow::ensure!(
        spill.values() == n * dim,
        "extract: {} values for {n} rows of {dim}",
        spill.values()
    );
    let index_shape = [n];
    let mut t = BTreeMap::new();
    t.insert("indices".to_string(), OutRef::I64(&index_shape, &indices));
    let labels: Option<Vec<i64>> = labels.iter().map(|l| l.map(i64::from)).collect();
    if let Some(l) = &labels {
        t.insert("labels".to_string(), OutRef::I64(&index_shape, l));
    }
    let features = Spilled {
        file: spill.finish()?,
        shape: vec![n, dim],
    };
    let spilled = BTreeMap::from([("features".to_string(), features)]);
    save_with_spilled(out, &t, &spilled, HashMap::new())?;
    println!("wrote {n} features of dimension {dim} to {}", out.display());
    Ok(())
}
