//! The torchvision-named export reloads into the project's model with identical features.

mod common;

use burn::tensor::Device;
use protoclust::{model_file, runner};
use protoclust_data::source::Synthetic;
use protoclust_eval::extract;
use std::sync::Arc;

#[test]
fn exported_backbone_gives_identical_features() {
    let d = common::scratch("export");
    let cfg = common::tiny_config(&d, 1);
    let dev = Device::flex();
    let run = runner::run(&cfg, None, true, &dev).unwrap();
    let out = d.join("backbone.safetensors");
    protoclust::commands::export::run(&run.last_checkpoint, &out, "safetensors").unwrap();
    let (from_ck, _) = model_file::load_backbone(&run.last_checkpoint, &dev).unwrap();
    let (from_export, cfg_back) = model_file::load_backbone(&out, &dev).unwrap();
    assert!(cfg_back.is_none());
    let src = Arc::new(Synthetic::new(10, 16, 9));
    let view = protoclust_data::views::CenterView {
        resize: 16,
        size: 16,
        ..Default::default()
    };
    let a = extract(&from_ck, src.clone(), &view, 4, &dev).unwrap();
    let b = extract(&from_export, src, &view, 4, &dev).unwrap();
    assert_eq!(a.data, b.data);
    // The trained BN statistics travelled too (features differ from a fresh network's).
    let fresh = protoclust_nn::backbone::resnet(&cfg.swav.backbone, 123, &dev).unwrap();
    let c = extract(&fresh, Arc::new(Synthetic::new(10, 16, 9)), &view, 4, &dev).unwrap();
    assert_ne!(a.data, c.data);
}

#[test]
fn onnx_export_runs_in_onnxruntime_with_the_same_features() {
    let d = common::scratch("export_onnx");
    let cfg = common::tiny_config(&d, 1);
    let dev = Device::flex();
    let run = runner::run(&cfg, None, true, &dev).unwrap();
    let out = d.join("backbone.onnx");
    protoclust::commands::export::run(&run.last_checkpoint, &out, "onnx").unwrap();
    let (net, _) = model_file::load_backbone(&run.last_checkpoint, &dev).unwrap();
    let src = Arc::new(Synthetic::new(6, 20, 5));
    let view = protoclust_data::views::CenterView {
        resize: 20,
        size: 20,
        ..Default::default()
    };
    // The same normalised images through our network and through onnxruntime.
    let images = protoclust_eval::extract_with(src, &view, 6, &dev, &|x| x.flatten(1, 3)).unwrap();
    let x = burn::tensor::Tensor::<2>::from_data(
        burn::tensor::TensorData::new(images.data.clone(), [6, 3 * 20 * 20]),
        &dev,
    )
    .reshape([6, 3, 20, 20]);
    let feats: Vec<f32> = net
        .forward(x)
        .pooled
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .unwrap();
    let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(d.join("in.f32"), bytes(&images.data)).unwrap();
    std::fs::write(d.join("want.f32"), bytes(&feats)).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/onnx_check.py");
    let status = std::process::Command::new("python3")
        .arg(script)
        .arg(&out)
        .arg(d.join("in.f32"))
        .arg("6,3,20,20")
        .arg(d.join("want.f32"))
        .status();
    match status.map(|s| s.code()) {
        Ok(Some(0)) => {}
        Ok(Some(3)) | Err(_) => {
            eprintln!("skipping the runtime check: python3 with onnx + onnxruntime is missing (pip install onnx onnxruntime numpy)")
        }
        other => panic!("onnxruntime disagrees with the project's features: {other:?}"),
    }
}
