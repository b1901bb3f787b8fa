//! `protoclust extract <model> --data SPEC --out FILE`: pooled features to safetensors.

use crate::data_spec::DataSpec;
use crate::{device, model_file};
use anyhow::{Context, Result};
use protoclust_eval::extract_observed;
use protoclust_nn::infer::EvalTrunk;
use protoclust_nn::io::{save_mixed, OutTensor};
use protoclust_nn::named::HostTensor;
use protoclust_train::metrics::Progress;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Writes `features` (N × C), `indices` and, when labelled, `labels`.
pub fn run(model: &Path, data: &str, out: &Path) -> Result<()> {
    let dev = device::select()?;
    let (net, cfg) = model_file::load_backbone(model, &dev)?;
    let spec = DataSpec::parse(data)?;
    let view = cfg
        .map(|c| c.eval_view)
        .unwrap_or_else(|| spec.default_eval_view());
    let source = spec.open().context("--data")?;
    let trunk = EvalTrunk::new(&net);
    drop(net);
    let batch = trunk.batch_for(view.size, 256);
    let total = source.len();
    let progress = Progress::new(total as u64, 0, false);
    let f = extract_observed(
        source,
        &view,
        batch,
        &dev,
        &|x| trunk.pooled(x),
        &mut |done| progress.update(done as u64, &format!("{done}/{total} images"), false),
    )?;
    progress.finish();
    let (n, dim) = (f.len(), f.dim);
    let mut t = BTreeMap::new();
    t.insert(
        "features".to_string(),
        OutTensor::F32(HostTensor {
            shape: vec![n, dim],
            data: f.data,
        }),
    );
    t.insert(
        "indices".to_string(),
        OutTensor::I64(vec![n], f.indices.iter().map(|&i| i as i64).collect()),
    );
    if f.labels.iter().all(|l| l.is_some()) {
        t.insert(
            "labels".to_string(),
            OutTensor::I64(
                vec![n],
                f.labels.iter().map(|l| l.unwrap_or(0) as i64).collect(),
            ),
        );
    }
    save_mixed(out, &t, HashMap::new())?;
    println!(
        "wrote {} features of dimension {} to {}",
        n,
        dim,
        out.display()
    );
    Ok(())
}
