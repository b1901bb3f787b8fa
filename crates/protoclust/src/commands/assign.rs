//! `protoclust assign MODEL --data SPEC --out FILE`: the cluster of every image, streamed to
//! CSV or JSON lines: the method's own clusters (SwAV/SlotCon prototype argmax, ODC/DeepCluster
//! classifier argmax) or, with `--k` (and for JigClu or exported backbones), spherical k-means
//! on the backbone's pooled features. Optionally one folder per cluster and contact sheets.

use crate::data_spec::DataSpec;
use crate::model_file::ModelFile;
use crate::suite::split_features;
use crate::{device, suite};
use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use protoclust_data::source::{Source, Subset};
use protoclust_data::views::CenterView;
use protoclust_eval::Features;
use protoclust_nn::cluster::{kmeans, KMeansConfig, KMeansMetric};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Images per streamed chunk (features of one chunk are in memory at a time).
const CHUNK: usize = 2048;

/// Members shown on a contact sheet (the most confident first).
const SHEET_IMAGES: usize = 64;

/// Temperature of the soft scores of k-means clusters (cosine similarity to the centroids).
const KMEANS_TEMPERATURE: f64 = 0.1;

/// What `assign` was asked for (its command-line arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct AssignArgs {
    /// Training checkpoint of any method, or an exported backbone.
    pub model: PathBuf,
    /// Images: folder:DIR | folder-unlabelled:DIR | list:FILE | cifar10:FILE[,FILE] | stl10:X[,Y] | synthetic:LEN[:SIZE[:SEED]].
    #[arg(long)]
    pub data: String,
    /// Output file: FILE.csv or FILE.jsonl (one row per image).
    #[arg(long)]
    pub out: PathBuf,
    /// k-means with K clusters on the backbone's features instead of the method's own clusters (needed for JigClu and exported backbones).
    #[arg(long)]
    pub k: Option<usize>,
    /// Images k-means is fitted on, evenly spread over the data.
    #[arg(long, default_value_t = 20000)]
    pub fit_images: usize,
    /// Seed of k-means.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write one folder per cluster of symbolic links to its images (PNGs for data sets without files).
    #[arg(long, value_name = "DIR")]
    pub copy_to: Option<PathBuf>,
    /// With --copy-to: copy the files instead of linking them.
    #[arg(long, requires = "copy_to")]
    pub copy: bool,
    /// Write one contact-sheet PNG per cluster (its most confident images), largest cluster first.
    #[arg(long, value_name = "DIR")]
    pub sheets: Option<PathBuf>,
}

/// Output format, from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    JsonLines,
}

impl Format {
    fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Ok(Self::Csv),
            Some("jsonl") => Ok(Self::JsonLines),
            _ => bail!(
                "--out {}: expected a .csv or .jsonl file name",
                path.display()
            ),
        }
    }
}

/// Where cluster scores come from.
enum Scorer {
    /// The method's head scores, soft scores at the method's temperature.
    Method { temperature: f64 },
    /// Cosine similarity to unit centroids (k × dim, row-major).
    KMeans { centroids: Vec<f32>, dim: usize },
}

/// One image's answer.
struct Row {
    index: usize,
    path: Option<PathBuf>,
    cluster: usize,
    score: f32,
    /// (cluster, soft score), best first, up to five.
    top: Vec<(usize, f32)>,
    confidence: f32,
    label: Option<u32>,
}

/// Softmax of `scores / t`, in f64 for the exponentials.
fn softmax(scores: &[f32], t: f64) -> Vec<f32> {
    let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = scores.iter().map(|&s| ((s as f64 - m) / t).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|v| (v / z) as f32).collect()
}

/// The row of one image from its cluster scores (argmax ties go to the lower id, as
/// `eval cluster`).
fn row(index: usize, path: Option<PathBuf>, label: Option<u32>, scores: &[f32], t: f64) -> Row {
    let soft = softmax(scores, t);
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let top: Vec<(usize, f32)> = order.iter().take(5).map(|&c| (c, soft[c])).collect();
    let cluster = order[0];
    let second = top.get(1).map_or(0.0, |t| t.1);
    Row {
        index,
        path,
        cluster,
        score: scores[cluster],
        confidence: top[0].1 - second,
        top,
        label,
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn join<T: ToString>(v: impl Iterator<Item = T>) -> String {
    v.map(|x| x.to_string()).collect::<Vec<_>>().join(";")
}

impl Row {
    fn write(&self, f: Format, w: &mut impl Write) -> std::io::Result<()> {
        let path = self.path.as_ref().map(|p| p.to_string_lossy().into_owned());
        match f {
            Format::Csv => writeln!(
                w,
                "{},{},{},{},{},{},{},{},{}",
                self.index,
                csv_field(path.as_deref().unwrap_or("")),
                self.cluster,
                self.score,
                self.top[0].1,
                self.confidence,
                join(self.top.iter().map(|t| t.0)),
                join(self.top.iter().map(|t| t.1)),
                self.label.map(|l| l.to_string()).unwrap_or_default()
            ),
            Format::JsonLines => {
                let v = serde_json::json!({
                    "index": self.index,
                    "path": path,
                    "cluster": self.cluster,
                    "score": self.score,
                    "probability": self.top[0].1,
                    "confidence": self.confidence,
                    "top": self.top.iter().map(|t| serde_json::json!([t.0, t.1])).collect::<Vec<_>>(),
                    "label": self.label,
                });
                writeln!(w, "{v}")
            }
        }
    }
}

const CSV_HEADER: &str =
    "index,path,cluster,score,probability,confidence,top5,top5_probabilities,label";

/// The method's own clusters, or k-means on backbone features when asked or when the model
/// file has none.
fn scorer(
    args: &AssignArgs,
    model: &ModelFile,
    source: &Arc<dyn Source>,
    view: &CenterView,
    dev: &Device,
) -> Result<Scorer> {
    let method_t = model.config.as_ref().and_then(|c| match c.method.as_str() {
        "swav" => Some(c.swav.temperature),
        "slotcon" => Some(c.slotcon.teacher_temp),
        "odc" | "deepcluster" => Some(1.0),
        _ => None,
    });
    if let (None, Some(temperature)) = (args.k, method_t) {
        if model.head.is_some() {
            return Ok(Scorer::Method { temperature });
        }
    }
    let Some(k) = args.k else {
        bail!(
            "{}: this model has no clusters of its own (a JigClu checkpoint or an exported \
             backbone): give --k K for k-means on its backbone features",
            args.model.display()
        );
    };
    let n = source.len();
    let m = args.fit_images.clamp(1, n.max(1));
    let picks: Vec<usize> = (0..m).map(|i| i * n / m).collect();
    if k < 2 || k >= picks.len() {
        bail!(
            "--k {k}: k-means needs 2 <= k < the {} images it is fitted on (--fit-images)",
            picks.len()
        );
    }
    let fit = Arc::new(Subset::new(source.clone(), picks)?);
    let f = protoclust_eval::extract(&model.backbone, fit, view, 256, dev)?;
    let plain = dev.clone().without_autodiff();
    let r = kmeans(
        &f.to_tensor(&plain),
        &KMeansConfig {
            k,
            restarts: 3,
            max_iterations: 100,
            metric: KMeansMetric::Spherical,
            seed: args.seed,
            ..Default::default()
        },
    )?;
    let centroids = protoclust_nn::ops::host::to_f32(r.centroids);
    Ok(Scorer::KMeans {
        centroids,
        dim: f.dim,
    })
}

/// Cluster scores of every row of one chunk (N × K, row-major) and K.
fn chunk_scores(scorer: &Scorer, feats: &suite::SplitFeatures) -> Result<(Vec<f32>, usize)> {
    match scorer {
        Scorer::Method { .. } => {
            let s = feats
                .scores
                .as_ref()
                .context("the model's head gave no cluster scores")?;
            Ok((s.data.clone(), s.dim))
        }
        Scorer::KMeans { centroids, dim } => {
            let b: &Features = &feats.backbone;
            let k = centroids.len() / dim;
            let mut out = Vec::with_capacity(b.len() * k);
            for r in b.data.chunks_exact(*dim) {
                let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                for c in centroids.chunks_exact(*dim) {
                    out.push(r.iter().zip(c).map(|(a, b)| a * b).sum::<f32>() / norm);
                }
            }
            Ok((out, k))
        }
    }
}

/// Places a member into its cluster folder: a link to its file, a copy, or (for sources
/// without files) a PNG of the decoded image.
fn place(dir: &Path, source: &dyn Source, r: &Row, copy: bool) -> Result<()> {
    let sub = dir.join(format!("cluster_{:04}", r.cluster));
    std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
    match &r.path {
        Some(p) => {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            let dst = sub.join(format!("{:07}_{name}", r.index));
            let _ = std::fs::remove_file(&dst);
            if copy {
                std::fs::copy(p, &dst)
                    .with_context(|| format!("copying {} to {}", p.display(), dst.display()))?;
            } else {
                let abs = std::fs::canonicalize(p).with_context(|| format!("{}", p.display()))?;
                link(&abs, &dst)?;
            }
        }
        None => {
            let s = source.get(r.index)?;
            let img = image::RgbImage::from_raw(
                s.image.width as u32,
                s.image.height as u32,
                s.image.pixels,
            )
            .context("decoded image of the wrong size")?;
            let dst = sub.join(format!("{:07}.png", r.index));
            img.save(&dst)
                .with_context(|| format!("writing {}", dst.display()))?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn link(src: &Path, dst: &Path) -> Result<()> {
    std::os::unix::fs::symlink(src, dst).with_context(|| format!("linking {}", dst.display()))
}

#[cfg(not(unix))]
fn link(src: &Path, dst: &Path) -> Result<()> {
    std::fs::copy(src, dst)
        .map(|_| ())
        .with_context(|| format!("copying to {}", dst.display()))
}

/// Per cluster: its size and its most confident members (bounded).
struct Members {
    size: Vec<usize>,
    best: Vec<BinaryHeap<Reverse<(u32, usize)>>>,
}

impl Members {
    fn add(&mut self, r: &Row) {
        if self.size.len() <= r.cluster {
            self.size.resize(r.cluster + 1, 0);
            self.best.resize_with(r.cluster + 1, BinaryHeap::new);
        }
        self.size[r.cluster] += 1;
        // Confidence in [0, 1] as ordered bits; ties keep the lower index.
        let key = (r.confidence.max(0.0).to_bits(), usize::MAX - r.index);
        let heap = &mut self.best[r.cluster];
        heap.push(Reverse(key));
        if heap.len() > SHEET_IMAGES {
            heap.pop();
        }
    }
}

/// Runs `assign`; returns (rows written, clusters used).
pub fn run(args: &AssignArgs) -> Result<(usize, usize)> {
    let format = Format::of(&args.out)?;
    let dev = device::select()?;
    // k-means reads backbone features only: without the head, the chunks skip computing it.
    let model = ModelFile::open(&args.model, None, args.k.is_none(), &dev)?;
    let spec = DataSpec::parse(&args.data)?;
    let source = spec.open().context("--data")?;
    let view = model
        .config
        .as_ref()
        .map(|c| c.eval_view.clone())
        .unwrap_or_else(|| spec.default_eval_view());
    let scorer = scorer(args, &model, &source, &view, &dev)?;
    let temperature = match &scorer {
        Scorer::Method { temperature } => *temperature,
        Scorer::KMeans { .. } => KMEANS_TEMPERATURE,
    };
    let tmp = args.out.with_extension(format!(
        "{}.partial",
        args.out.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let werr = |e: std::io::Error| anyhow::anyhow!("writing {}: {e}", tmp.display());
    if format == Format::Csv {
        writeln!(w, "{CSV_HEADER}").map_err(werr)?;
    }
    let mut members = Members {
        size: Vec::new(),
        best: Vec::new(),
    };
    let mut rows = 0;
    let n = source.len();
    for start in (0..n).step_by(CHUNK) {
        let idx: Vec<usize> = (start..(start + CHUNK).min(n)).collect();
        let chunk: Arc<dyn Source> = Arc::new(Subset::new(source.clone(), idx.clone())?);
        let feats = split_features(&model, chunk, &view, &dev)?;
        let (scores, k) = chunk_scores(&scorer, &feats)?;
        for (i, s) in scores.chunks_exact(k.max(1)).enumerate() {
            let global = idx[feats.backbone.indices[i]];
            let r = row(
                global,
                source.path(global).map(Path::to_path_buf),
                feats.backbone.labels[i],
                s,
                temperature,
            );
            r.write(format, &mut w).map_err(werr)?;
            if let Some(dir) = &args.copy_to {
                place(dir, source.as_ref(), &r, args.copy)?;
            }
            members.add(&r);
            rows += 1;
        }
    }
    w.flush().map_err(werr)?;
    w.into_inner()
        .map_err(|e| werr(e.into_error()))?
        .sync_all()
        .map_err(werr)?;
    std::fs::rename(&tmp, &args.out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), args.out.display()))?;
    if let Some(dir) = &args.sheets {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut order: Vec<usize> = (0..members.size.len())
            .filter(|&c| members.size[c] > 0)
            .collect();
        order.sort_by(|&a, &b| members.size[b].cmp(&members.size[a]).then(a.cmp(&b)));
        for (rank, &c) in order.iter().enumerate() {
            let mut best: Vec<(u32, usize)> = members.best[c].iter().map(|r| r.0).collect();
            best.sort_by(|a, b| b.cmp(a));
            let images: Vec<usize> = best.iter().map(|&(_, i)| usize::MAX - i).collect();
            let path = dir.join(format!(
                "{rank:04}_cluster_{c:04}_{}images.png",
                members.size[c]
            ));
            protoclust_report::grid::write_sheet(source.as_ref(), &images, 48, 8, &path)?;
        }
    }
    let used = members.size.iter().filter(|&&s| s > 0).count();
    Ok((rows, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_rank_clusters_and_measure_the_margin() {
        let r = row(7, None, Some(2), &[0.1, 0.9, 0.9, -0.3, 0.0, 0.5], 0.1);
        assert_eq!(r.cluster, 1, "ties go to the lower id");
        assert_eq!(
            r.top.iter().map(|t| t.0).collect::<Vec<_>>(),
            [1, 2, 5, 0, 4]
        );
        assert!((r.top[0].1 - r.top[1].1).abs() < 1e-6 && r.confidence.abs() < 1e-6);
        let sum: f32 = softmax(&[0.1, 0.9, 0.9, -0.3, 0.0, 0.5], 0.1).iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        let mut out = Vec::new();
        r.write(Format::Csv, &mut out).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.starts_with("7,,1,0.9,") && line.trim_end().ends_with(",2"),
            "{line}"
        );
        assert_eq!(line.split(',').count(), CSV_HEADER.split(',').count());
    }

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_field("a/b.png"), "a/b.png");
        assert_eq!(csv_field("a,b \"c\".png"), "\"a,b \"\"c\"\".png\"");
    }
}
