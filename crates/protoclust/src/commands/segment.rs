//! `protoclust eval segment`: unsupervised semantic segmentation of an image+mask set, by
//! k-means on a backbone's dense features and/or by a method's prototypes (each pixel's
//! argmax), matched to classes; mIoU, pixel accuracy, PNG panels.

use crate::model_file::ModelFile;
use crate::{config, device, model_file};
use anyhow::{Context, Result};
use burn::module::Module;
use protoclust_data::source::{ImageMaskPairs, Source};
use protoclust_eval::prototype_regions::{nearest_regions, region_crop, region_sheet};
use protoclust_eval::segment::Predicted;
use protoclust_eval::segment_png::{panel, png_bytes, CAMVID_COLOURS};
use protoclust_eval::{
    segment_eval, segment_eval_prototypes, Matching, SegmentConfig, SegmentResult,
};
use protoclust_nn::io::atomic_write;
use std::path::{Path, PathBuf};

/// Which segmentations `eval segment` scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SegmentMode {
    /// k-means (k = classes) on the backbone's dense features, Hungarian one-to-one.
    Kmeans,
    /// Each pixel's prototype (SlotCon's dense scores, SwAV's head per pixel), by --matching.
    Prototypes,
    /// Both: k-means for any backbone, prototypes where the model has them.
    All,
}

/// How prototypes are matched to classes (the prototype mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MatchingArg {
    /// One-to-one (Hungarian); prototypes beyond the class count stay unmatched.
    Hungarian,
    /// Many-to-one: every prototype takes its majority class.
    Majority,
}

impl From<MatchingArg> for Matching {
    fn from(m: MatchingArg) -> Self {
        match m {
            MatchingArg::Hungarian => Matching::Hungarian,
            MatchingArg::Majority => Matching::Majority,
        }
    }
}

/// Which per-pixel scores the prototype mode takes the argmax of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoresArg {
    /// The method's prototype scores as they are.
    Raw,
    /// Minus the method's running centre (SlotCon: the teacher's distillation target).
    Centered,
}

/// What `eval segment` needs besides the model (its command-line options).
#[derive(Debug, Clone, clap::Args)]
pub struct SegmentArgs {
    /// Evaluation images: a folder, or a list file of image paths (one per line).
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
    /// SlotCon's student: `student.backbone.`; k-means mode only).
    #[arg(long)]
    pub backbone_prefix: Option<String>,
    /// Which segmentations to score.
    #[arg(long, value_enum, default_value_t = SegmentMode::All)]
    pub mode: SegmentMode,
    /// How prototypes are matched to classes.
    #[arg(long, value_enum, default_value_t = MatchingArg::Hungarian)]
    pub matching: MatchingArg,
    /// Which prototype scores the prototype mode takes the argmax of.
    #[arg(long, value_enum, default_value_t = ScoresArg::Raw)]
    pub scores: ScoresArg,
    /// Prototype mode: regions.png, the images each prototype wins best, cropped to its
    /// region (SlotCon's figure); this many images per prototype, 0 for none.
    #[arg(long, default_value_t = 6)]
    pub regions: usize,
    /// Prototypes (rows) in regions.png: those winning the most pixels.
    #[arg(long, default_value_t = 16)]
    pub region_rows: usize,
}

/// Runs the evaluation(s) and prints mIoU, pixel accuracy and per-class IoU of each.
pub fn run(model: &Path, a: &SegmentArgs) -> Result<()> {
    let dev = device::select()?;
    let pairs = ImageMaskPairs::open(&a.images, &a.masks).with_context(|| {
        format!(
            "--images {} / --masks {}",
            a.images.display(),
            a.masks.display()
        )
    })?;
    let prototypes_asked = a.mode != SegmentMode::Kmeans;
    // The method's model with its dense head, for the prototype mode.
    let with_head = if !prototypes_asked {
        None
    } else if a.random_init {
        Some(ModelFile::random_init(model, &dev)?)
    } else if a.backbone_prefix.is_some() {
        anyhow::bail!("--backbone-prefix applies to --mode kmeans only (the prototypes belong to the method's own backbone)")
    } else {
        Some(ModelFile::open(model, None, true, &dev)?)
    };
    let dense_head = with_head
        .as_ref()
        .and_then(|m| m.dense.as_ref().map(|dense| (m, dense)));
    if a.mode == SegmentMode::Prototypes && dense_head.is_none() {
        anyhow::bail!(
            "{}: --mode prototypes needs a model with prototypes (a SwAV or SlotCon checkpoint or config); this one has none (use --mode kmeans)",
            model.display()
        );
    }
    let (net, cfg) = if a.mode == SegmentMode::Prototypes {
        (None, with_head.as_ref().and_then(|m| m.config.clone()))
    } else if a.random_init {
        let cfg = config::load(model, &[])?;
        let net = protoclust_nn::backbone::resnet(cfg.backbone(), cfg.seed, &dev)?.valid();
        (Some(net), Some(cfg))
    } else if let Some(m) = with_head.as_ref().filter(|_| a.backbone_prefix.is_none()) {
        // The checkpoint is open already: its evaluated backbone is the k-means one too.
        (Some(m.backbone.clone()), m.config.clone())
    } else {
        let (net, cfg) = model_file::load_backbone_at(model, a.backbone_prefix.as_deref(), &dev)?;
        (Some(net), cfg)
    };
    let normalize = cfg
        .as_ref()
        .map(|c| c.eval_view.normalize.clone())
        .unwrap_or_default();
    let sc = SegmentConfig {
        classes: a.classes,
        ignore: a.ignore,
        normalize,
        restarts: 3,
        seed: a.seed,
    };
    if let Some(net) = net {
        let t = std::time::Instant::now();
        let (r, predicted) = segment_eval(&net, &pairs, &sc, &dev)?;
        let what = format!("k-means k={} on dense features", a.classes);
        report(&what, &r, &pairs, t.elapsed().as_secs_f64());
        write_panels(
            a,
            &Scored {
                out: &a.out,
                pairs: &pairs,
                predicted: &predicted,
                result: &r,
            },
        )?;
    }
    if let Some((m, dense)) = dense_head {
        let t = std::time::Instant::now();
        let matching = Matching::from(a.matching);
        let centered = match (a.scores, &m.dense_center) {
            (ScoresArg::Raw, _) => None,
            (ScoresArg::Centered, Some(c)) => Some(c.clone()),
            (ScoresArg::Centered, None) => anyhow::bail!(
                "{}: --scores centered needs a method that keeps a centre of its prototype scores (a trained SlotCon checkpoint); this model has none (use --scores raw)",
                model.display()
            ),
        };
        let scores = |t: &protoclust_nn::backbone::ResNetOutput| {
            let s = dense(t);
            match &centered {
                Some(c) => {
                    let k = c.dims()[0];
                    s - c.clone().to_device(&t.map.device()).reshape([1, k, 1, 1])
                }
                None => s,
            }
        };
        let (r, predicted) =
            segment_eval_prototypes(&m.backbone, &scores, &pairs, &sc, matching, &dev)?;
        let k = r.cluster_to_class.len();
        let what = format!(
            "prototypes: argmax of {k}{}, {matching:?} matching",
            if centered.is_some() {
                " (centred scores)"
            } else {
                ""
            }
        );
        report(&what, &r, &pairs, t.elapsed().as_secs_f64());
        let out = if a.mode == SegmentMode::All {
            a.out.join("prototypes")
        } else {
            a.out.clone()
        };
        let scored = Scored {
            out: &out,
            pairs: &pairs,
            predicted: &predicted,
            result: &r,
        };
        write_panels(a, &scored)?;
        write_regions(a, &scored)?;
    }
    Ok(())
}

/// Writes `out/regions.png`: a row per prototype (the `--region-rows` winning the most
/// pixels), its `--regions` best images cropped to the region it wins; prints the rows.
fn write_regions(a: &SegmentArgs, s: &Scored<'_>) -> Result<()> {
    let (out, pairs, predicted, r) = (s.out, s.pairs, s.predicted, s.result);
    if a.regions == 0 || a.region_rows == 0 {
        return Ok(());
    }
    let rows = nearest_regions(predicted, a.region_rows, a.regions);
    let total: u64 = predicted.iter().map(|p| p.clusters.len() as u64).sum();
    let mut crops = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut line = Vec::with_capacity(row.images.len());
        for &(i, _) in &row.images {
            let img = pairs.get(predicted[i].index)?.image;
            line.extend(region_crop(&img, &predicted[i], row.prototype));
        }
        crops.push(line);
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("regions.png");
    atomic_write(&path, &png_bytes(&region_sheet(&crops, a.regions, 96))?)?;
    println!(
        "prototype regions (rows of {}: prototype, share of pixels, matched class):",
        path.display()
    );
    for row in &rows {
        let class = r.cluster_to_class.get(row.prototype).copied();
        let class = class
            .filter(|&c| c < a.classes)
            .map_or("-".to_string(), |c| c.to_string());
        println!(
            "  {:>4}  {:>5.1}%  class {class}",
            row.prototype,
            100.0 * row.pixels as f64 / total.max(1) as f64
        );
    }
    Ok(())
}

/// Prints one evaluation's scores.
fn report(what: &str, r: &SegmentResult, pairs: &ImageMaskPairs, secs: f64) {
    println!(
        "segment: {} images, {} labelled pixels, {what} ({secs:.1}s)",
        pairs.len(),
        r.pixels,
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
}

/// One evaluation's segmentations, for the figure writers.
struct Scored<'a> {
    /// Folder the figures go to.
    out: &'a Path,
    pairs: &'a ImageMaskPairs,
    predicted: &'a [Predicted],
    result: &'a SegmentResult,
}

/// Writes the first `--panels` image | truth | prediction panels into `s.out`.
fn write_panels(a: &SegmentArgs, s: &Scored<'_>) -> Result<()> {
    let (out, pairs, predicted, r) = (s.out, s.pairs, s.predicted, s.result);
    if a.panels == 0 {
        return Ok(());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for p in predicted.iter().take(a.panels) {
        let img = pairs.get(p.index)?.image;
        let png = png_bytes(&panel(&img, p, &r.cluster_to_class, &CAMVID_COLOURS))?;
        let path = out.join(format!("segment_{:03}.png", p.index));
        atomic_write(&path, &png)?;
    }
    println!(
        "{} panels (image | ground truth | prediction) in {}",
        a.panels.min(predicted.len()),
        out.display()
    );
    Ok(())
}
