//! `protoclust eval segment`: unsupervised semantic segmentation of an image+mask set with a
//! backbone's dense features (k-means, Hungarian matching, mIoU), plus PNG panels.

use crate::{config, device, model_file};
use anyhow::{Context, Result};
use burn::module::Module;
use protoclust_data::source::{ImageMaskPairs, Source};
use protoclust_eval::segment_png::{panel, png_bytes, CAMVID_COLOURS};
use protoclust_eval::{segment_eval, SegmentConfig};
use protoclust_nn::io::atomic_write;
use std::path::{Path, PathBuf};

/// What `eval segment` needs besides the model (its command-line options).
#[derive(Debug, Clone, clap::Args)]
pub struct SegmentArgs {
    /// Evaluation images.
    #[arg(long, default_value = "../shared/data/camvid/val")]
    pub images: PathBuf,
    /// Masks of class ids, same file names as the images.
    #[arg(long, default_value = "../shared/data/camvid/valannot")]
    pub masks: PathBuf,
    /// Number of classes (and clusters).
    #[arg(long, default_value_t = 11)]
    pub classes: usize,
    /// Mask value to ignore.
    #[arg(long, default_value_t = 11)]
    pub ignore: u8,
    /// Folder for the PNG panels.
    #[arg(long, default_value = "segment")]
    pub out: PathBuf,
    /// Number of panels to write.
    #[arg(long, default_value_t = 6)]
    pub panels: usize,
    /// k-means seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate the untrained backbone of the config given as MODEL.
    #[arg(long)]
    pub random_init: bool,
    /// Backbone path prefix inside the checkpoint (default: the method's evaluated one;
    /// SlotCon's student: `student.backbone.`).
    #[arg(long)]
    pub backbone_prefix: Option<String>,
}

/// Runs the evaluation and prints mIoU, pixel accuracy and per-class IoU.
pub fn run(model: &Path, a: &SegmentArgs) -> Result<()> {
    let dev = device::select()?;
    let (net, cfg) = if a.random_init {
        let cfg = config::load(model, &[])?;
        let net = protoclust_nn::backbone::resnet(cfg.backbone(), cfg.seed, &dev)?.valid();
        (net, Some(cfg))
    } else {
        model_file::load_backbone_at(model, a.backbone_prefix.as_deref(), &dev)?
    };
    let normalize = cfg
        .as_ref()
        .map(|c| c.eval_view.normalize.clone())
        .unwrap_or_default();
    let pairs = ImageMaskPairs::open(&a.images, &a.masks).with_context(|| {
        format!(
            "--images {} / --masks {}",
            a.images.display(),
            a.masks.display()
        )
    })?;
    let sc = SegmentConfig {
        classes: a.classes,
        ignore: a.ignore,
        normalize,
        restarts: 3,
        seed: a.seed,
    };
    let t = std::time::Instant::now();
    let (r, predicted) = segment_eval(&net, &pairs, &sc, &dev)?;
    println!(
        "segment: {} images, {} labelled pixels, k-means k={} on dense features ({:.1}s)",
        pairs.len(),
        r.pixels,
        a.classes,
        t.elapsed().as_secs_f64()
    );
    println!(
        "mIoU {:.2}%  pixel accuracy {:.2}%",
        r.miou, r.pixel_accuracy
    );
    let ious: Vec<String> = r
        .class_iou
        .iter()
        .enumerate()
        .map(|(c, v)| format!("{c}:{v:.1}"))
        .collect();
    println!("class IoU: {}", ious.join(" "));
    if a.panels > 0 {
        std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
        for p in predicted.iter().take(a.panels) {
            let img = pairs.get(p.index)?.image;
            let png = png_bytes(&panel(&img, p, &r.cluster_to_class, &CAMVID_COLOURS))?;
            let path = a.out.join(format!("segment_{:03}.png", p.index));
            atomic_write(&path, &png)?;
        }
        println!(
            "{} panels (image | ground truth | prediction) in {}",
            a.panels.min(predicted.len()),
            a.out.display()
        );
    }
    Ok(())
}
