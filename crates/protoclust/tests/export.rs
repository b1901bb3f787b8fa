//! The torchvision-named export reloads into the project's model with identical features.

mod common;

use burn::tensor::Device;
use protoclust::runner;
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
    let (from_ck, _) = runner::load_backbone(&run.last_checkpoint, &dev).unwrap();
    let (from_export, cfg_back) = runner::load_backbone(&out, &dev).unwrap();
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
