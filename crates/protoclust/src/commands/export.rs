//! `protoclust export <checkpoint> --out FILE [--format safetensors|onnx]`: the backbone as a
//! torchvision-named state dict, or as an ONNX graph (images in, pooled features out).

use crate::device;
use crate::export::{export_backbone, ExportFormat};
use crate::model_file::ModelFile;
use anyhow::Result;
use std::path::Path;

/// Writes the backbone as torchvision-named safetensors or as ONNX.
pub fn run(checkpoint: &Path, out: &Path, format: &str) -> Result<()> {
    let format: ExportFormat = format
        .parse()
        .map_err(|e| anyhow::anyhow!("--format {format}: {e}"))?;
    let dev = device::select()?;
    let model = ModelFile::open(checkpoint, None, false, &dev)?;
    println!("{}", export_backbone(&model, out, format)?);
    Ok(())
}
