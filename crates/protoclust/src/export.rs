//! A model file's backbone written for other frameworks: torchvision-named safetensors or ONNX.

use crate::model_file::ModelFile;
use anyhow::{bail, Result};
use protoclust_eval::export::export_safetensors;
use protoclust_eval::onnx::{backbone_onnx, encode, INPUT, OUTPUT};
use protoclust_nn::io::atomic_write;
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

/// What an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// A state dict under torchvision's ResNet parameter names (safetensors).
    Torchvision,
    /// An ONNX graph (opset 13): normalised images in, pooled features out.
    Onnx,
}

impl FromStr for ExportFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "safetensors" | "torchvision" => Ok(Self::Torchvision),
            "onnx" => Ok(Self::Onnx),
            _ => bail!("expected safetensors (torchvision names) or onnx"),
        }
    }
}

/// Writes the backbone of `model` to `out` (atomically); returns a sentence saying what was
/// written.
pub fn export_backbone(model: &ModelFile, out: &Path, format: ExportFormat) -> Result<String> {
    let net = &model.backbone;
    match format {
        ExportFormat::Onnx => {
            let graph = backbone_onnx(net).map_err(anyhow::Error::msg)?;
            atomic_write(out, &encode(&graph))?;
            Ok(format!(
                "wrote {} (ONNX opset 13: input `{INPUT}` N×3×H×W normalised images, output `{OUTPUT}` N×{})",
                out.display(),
                net.out_dim()
            ))
        }
        ExportFormat::Torchvision => {
            let mut meta = HashMap::new();
            meta.insert(
                "protoclust_backbone".to_string(),
                serde_json::to_string(&model.backbone_config)?,
            );
            meta.insert("format".to_string(), "pt".to_string());
            export_safetensors(net, out, meta)?;
            Ok(format!(
                "wrote {} (torchvision ResNet-{} names; load with strict=False, no fc)",
                out.display(),
                model.backbone_config.depth
            ))
        }
    }
}
