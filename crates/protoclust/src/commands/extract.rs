//! `protoclust extract <model> --data SPEC --out FILE`: pooled features to safetensors.

use crate::data_spec::DataSpec;
use crate::{device, model_file};
use anyhow::{Context, Result};
use protoclust_eval::extract;
use protoclust_nn::io::{save_mixed, OutTensor};
use protoclust_nn::named::HostTensor;
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
    let f = extract(&net, spec.open().context("--data")?, &view, 256, &dev)?;
    let mut t = BTreeMap::new();
    t.insert(
        "features".to_string(),
        OutTensor::F32(HostTensor {
            shape: vec![f.len(), f.dim],
            data: f.data.clone(),
        }),
    );
    t.insert(
        "indices".to_string(),
        OutTensor::I64(vec![f.len()], f.indices.iter().map(|&i| i as i64).collect()),
    );
    if f.labels.iter().all(|l| l.is_some()) {
        t.insert(
            "labels".to_string(),
            OutTensor::I64(
                vec![f.len()],
                f.labels.iter().map(|l| l.unwrap_or(0) as i64).collect(),
            ),
        );
    }
    save_mixed(out, &t, HashMap::new())?;
    println!(
        "wrote {} features of dimension {} to {}",
        f.len(),
        f.dim,
        out.display()
    );
    Ok(())
}
