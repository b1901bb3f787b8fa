//! `protoclust export <checkpoint> --out FILE`: backbone with torchvision parameter names.

use crate::{device, runner};
use anyhow::{bail, Context, Result};
use protoclust_eval::export::export_safetensors;
use std::collections::HashMap;
use std::path::Path;

/// Writes the backbone as torchvision-named safetensors.
pub fn run(checkpoint: &Path, out: &Path, format: &str) -> Result<()> {
    if format != "safetensors" {
        bail!("--format {format}: only safetensors is supported so far");
    }
    let dev = device::select()?;
    let (net, cfg) = runner::load_backbone(checkpoint, &dev)?;
    let cfg = cfg.context("export needs a training checkpoint (it records the backbone config)")?;
    let mut meta = HashMap::new();
    meta.insert(
        "protoclust_backbone".to_string(),
        serde_json::to_string(cfg.backbone())?,
    );
    meta.insert("format".to_string(), "pt".to_string());
    export_safetensors(&net, out, meta)?;
    println!(
        "wrote {} (torchvision ResNet-{} names; load with strict=False, no fc)",
        out.display(),
        cfg.backbone().depth
    );
    Ok(())
}
