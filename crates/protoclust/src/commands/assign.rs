//! `protoclust assign MODEL --data SPEC --out FILE`: the cluster of every image, streamed to
//! CSV or JSON lines: the method's own clusters (SwAV/SlotCon prototype argmax, ODC/DeepCluster
//! classifier argmax) or, with `--k` (and for JigClu or exported backbones), spherical k-means
//! on the backbone's pooled features. Optionally one folder per cluster and contact sheets.

use crate::assign::{assign_each, AssignOptions, Assignment};
use crate::data_spec::DataSpec;
use crate::device;
use crate::model_file::ModelFile;
use anyhow::{bail, Context, Result};
use protoclust_data::source::Source;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Members shown on a contact sheet (the most confident first).
const SHEET_IMAGES: usize = 64;

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
    /// Which of the method's prototype heads assigns (DeepCluster-v2 has several; 0 is the
    /// first, every method's own).
    #[arg(long, default_value_t = 0, conflicts_with = "k")]
    pub head: usize,
    /// Write one folder per cluster of symbolic links to its images (PNGs for data sets without files).
    #[arg(long, value_name = "DIR")]
    pub copy_to: Option<PathBuf>,
    /// With --copy-to: copy the files instead of linking them.
    #[arg(long, requires = "copy_to")]
    pub copy: bool,
    /// Write one contact-sheet PNG per cluster (its most confident images), largest cluster first.
    #[arg(long, value_name = "DIR")]
    pub sheets: Option<PathBuf>,
    /// Float type of the backbone's convolutions: f32, or bf16 as PyTorch's autocast (on the
    /// CPU it needs AVX512-BF16).
    #[arg(long, default_value = "f32")]
    pub precision: protoclust_nn::precision::Precision,
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

/// One output row.
fn write_row(r: &Assignment, f: Format, w: &mut impl Write) -> std::io::Result<()> {
    let path = r.path.as_ref().map(|p| p.to_string_lossy().into_owned());
    match f {
        Format::Csv => writeln!(
            w,
            "{},{},{},{},{},{},{},{},{}",
            r.index,
            csv_field(path.as_deref().unwrap_or("")),
            r.cluster,
            r.score,
            r.top[0].1,
            r.confidence,
            join(r.top.iter().map(|t| t.0)),
            join(r.top.iter().map(|t| t.1)),
            r.label.map(|l| l.to_string()).unwrap_or_default()
        ),
        Format::JsonLines => {
            let v = serde_json::json!({
                "index": r.index,
                "path": path,
                "cluster": r.cluster,
                "score": r.score,
                "probability": r.top[0].1,
                "confidence": r.confidence,
                "top": r.top.iter().map(|t| serde_json::json!([t.0, t.1])).collect::<Vec<_>>(),
                "label": r.label,
            });
            writeln!(w, "{v}")
        }
    }
}

const CSV_HEADER: &str =
    "index,path,cluster,score,probability,confidence,top5,top5_probabilities,label";

/// Places a member into its cluster folder: a link to its file, a copy, or (for sources
/// without files) a PNG of the decoded image.
fn place(dir: &Path, source: &dyn Source, r: &Assignment, copy: bool) -> Result<()> {
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
    fn add(&mut self, r: &Assignment) {
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
    let mut model = if args.head > 0 {
        ModelFile::open_head(&args.model, args.head, &dev)?
    } else {
        ModelFile::open(&args.model, None, args.k.is_none(), &dev)?
    };
    model.trunk = model.trunk.with_precision(args.precision)?;
    let spec = DataSpec::parse(&args.data)?;
    let source = spec.open().context("--data")?;
    let view = model
        .config
        .as_ref()
        .map(|c| c.eval_view.clone())
        .unwrap_or_else(|| spec.default_eval_view());
    let opts = AssignOptions {
        k: args.k,
        fit_images: args.fit_images,
        seed: args.seed,
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
    let total = source.len();
    let progress = protoclust_train::metrics::Progress::new(total as u64, 0, false);
    assign_each(&model, &source, &view, &opts, &dev, |r| {
        write_row(&r, format, &mut w).map_err(werr)?;
        if let Some(dir) = &args.copy_to {
            place(dir, source.as_ref(), &r, args.copy)?;
        }
        members.add(&r);
        rows += 1;
        progress.update(rows as u64, &format!("{rows}/{total} images"), false);
        Ok(())
    })?;
    progress.finish();
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
    fn a_row_has_every_header_column() {
        let r = Assignment {
            index: 7,
            path: None,
            cluster: 1,
            score: 0.9,
            top: vec![(1, 0.6), (2, 0.3)],
            confidence: 0.3,
            label: Some(2),
        };
        let mut out = Vec::new();
        write_row(&r, Format::Csv, &mut out).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.starts_with("7,,1,0.9,0.6,") && line.trim_end().ends_with(",2"),
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
