//! `protoclust export <checkpoint> --out FILE [--format safetensors|onnx]`: the backbone as a
//! torchvision-named state dict, or as an ONNX graph (images in, pooled features out).

use crate::{device, model_file};
use anyhow::{bail, Context, Result};
use protoclust_eval::export::export_safetensors;
use protoclust_eval::onnx::{backbone_onnx, encode, INPUT, OUTPUT};
use protoclust_nn::io::atomic_write;
use std::collections::HashMap;
use std::path::Path;

/// Writes the backbone as torchvision-named safetensors or as ONNX.
pub fn run(checkpoint: &Path, out: &Path, format: &str) -> Result<()> {
    if format != "safetensors" && format != "onnx" {
        bail!("--format {format}: expected safetensors or onnx");
    }
    let dev = device::select()?;
    let (net, cfg) = model_file::load_backbone(checkpoint, &dev)?;
    if format == "onnx" {
        let model = backbone_onnx(&net).map_err(anyhow::Error::msg)?;
        atomic_write(out, &encode(&model))?;
        println!(
            "wrote {} (ONNX opset 13: input `{INPUT}` N×3×H×W normalised images, output `{OUTPUT}` N×{})",
            out.display(),
            net.out_dim()
        );
        return Ok(());
    }
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
