//! Assembles `index.html`: summary, evaluation tables, curves, cluster grids, feature map,
//! dense overlays and the run's config.

use crate::chart::{css_colour, scatter};
use crate::curves::training_curves;
use crate::embedding::{tsne_2d, TsneConfig};
use crate::grid::{write_strip, ClusterStrip};
use crate::{write_atomic, Figure, ReportError};
use protoclust_data::source::Source;
use protoclust_eval::record::SuiteResult;
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Image strips of the largest clusters of one assignment.
pub struct ClusterSection {
    /// Heading, e.g. "SwAV prototypes (argmax of the prototype scores)".
    pub title: String,
    /// How the images were chosen.
    pub note: String,
    /// One strip per cluster.
    pub strips: Vec<ClusterStrip>,
    /// Where the images come from.
    pub source: Arc<dyn Source>,
    /// Thumbnail side in pixels.
    pub thumb: u32,
}

/// Features to map in 2-D, coloured by group.
pub struct FeatureMap {
    /// Heading.
    pub title: String,
    /// N × dim features.
    pub data: Vec<f32>,
    /// Feature dimension.
    pub dim: usize,
    /// Group (class or cluster) per row, a palette index.
    pub groups: Vec<usize>,
    /// Name per group.
    pub legend: Vec<String>,
    /// t-SNE settings.
    pub tsne: TsneConfig,
}

/// Everything the page shows.
pub struct ReportInput<'a> {
    /// Page title.
    pub title: String,
    /// Output directory (created; index.html and images go here).
    pub out_dir: PathBuf,
    /// Key facts shown first (method, checkpoint, backend...).
    pub summary: Vec<(String, String)>,
    /// Records of metrics.jsonl.
    pub metrics: &'a [Value],
    /// Evaluation numbers.
    pub suite: Option<&'a SuiteResult>,
    /// Cluster grids.
    pub clusters: Vec<ClusterSection>,
    /// Class names by label, when known.
    pub class_names: Option<Vec<String>>,
    /// The 2-D feature map.
    pub map: Option<FeatureMap>,
    /// Dense-method figures already written into `out_dir`.
    pub dense: Vec<Figure>,
    /// Notes on the dense figures.
    pub dense_note: String,
    /// The run's resolved config.
    pub config_toml: Option<String>,
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}\
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}\
table{border-collapse:collapse;margin:.6em 0 1.2em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}\
.best{font-weight:bold;background:#eef6ee}.figs{display:flex;flex-wrap:wrap;gap:1em}\
figure{margin:0}figcaption{font-size:.85em;color:#555}.strip{margin:.4em 0 .9em}\
.strip img{image-rendering:pixelated;display:block}.note{color:#555;font-size:.9em}\
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.8em;max-height:40em}\
.swatch{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}";

fn knn_html(s: &mut String, suite: &SuiteResult) {
    for t in &suite.knn {
        let best = t.best().map(|b| (b.k, b.temperature));
        let ts = t.temperatures();
        let _ = write!(
            s,
            "<h3>kNN sweep: {} features ({}-d)</h3><p class=note>Weighted kNN on L2-normalised \
             features, top-1 / top-5 (%) on the test split; best top-1 highlighted.</p>\
             <table><tr><th>k</th>",
            esc(&t.features),
            t.dim
        );
        ts.iter().for_each(|x| {
            let _ = write!(s, "<th>T = {x}</th>");
        });
        s.push_str("</tr>");
        for k in t.ks() {
            let _ = write!(s, "<tr><td>{k}</td>");
            for &x in &ts {
                match t.get(k, x) {
                    Some(r) => {
                        let cls = if best == Some((k, x)) {
                            " class=best"
                        } else {
                            ""
                        };
                        let _ = write!(s, "<td{cls}>{:.2} / {:.2}</td>", r.top1, r.top5);
                    }
                    None => s.push_str("<td>–</td>"),
                }
            }
            s.push_str("</tr>");
        }
        s.push_str("</table>");
    }
}

fn eval_html(s: &mut String, suite: &SuiteResult) {
    s.push_str("<h2 id=eval>Evaluation</h2>");
    let _ = write!(
        s,
        "<p class=note>Model <code>{}</code>; train split <code>{}</code>, test split <code>{}</code>; seed {}.</p>",
        esc(&suite.model),
        esc(&suite.splits[0]),
        esc(&suite.splits[1]),
        suite.seed
    );
    knn_html(s, suite);
    if let Some(l) = &suite.linear {
        let _ = write!(
            s,
            "<h3>Linear probe</h3><p>Top-1 <b>{:.2}%</b>, top-5 <b>{:.2}%</b> (lr {} chosen on a held-out {}% of the training split).</p>\
             <p class=note>Frozen backbone, {} epochs, batch {}, SGD momentum 0.9, cosine, no weight decay, \
             RandomResizedCrop (scale {:?}) + flip at train time, centre view at test time; {} / {} / {} train / val / test images.</p>\
             <table><tr><th>lr</th><th>val top-1</th><th>test top-1</th><th>test top-5</th></tr>",
            l.test.top1, l.test.top5, l.lr, l.config.val_fraction * 100.0, l.config.epochs,
            l.config.batch_size, l.config.crop_scale, l.samples[0], l.samples[1], l.samples[2]
        );
        for r in &l.runs {
            let cls = if r.lr == l.lr { " class=best" } else { "" };
            let _ = write!(
                s,
                "<tr{cls}><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
                r.lr, r.val_top1, r.test.top1, r.test.top5
            );
        }
        s.push_str("</table>");
    } else {
        s.push_str("<h3>Linear probe</h3><p class=note>Not run (report --quick).</p>");
    }
    if let Some(ss) = &suite.semisup {
        let c = &ss.config;
        let _ = write!(
            s,
            "<h3>Semi-supervised fine-tuning</h3><p class=note>Backbone + linear head on a class-balanced \
             subset of the training labels (seed {}), {} epochs, batch {}, SGD momentum 0.9, cosine, \
             lr backbone {} / head {}, RandomResizedCrop + flip.</p>\
             <table><tr><th>labels</th><th>images</th><th>top-1</th><th>top-5</th></tr>",
            c.seed, c.epochs, c.batch_size, c.lr_backbone, c.lr_head
        );
        for r in &ss.runs {
            let _ = write!(
                s,
                "<tr><td>{}%</td><td>{}</td><td>{:.2}</td><td>{:.2}</td></tr>",
                r.percent, r.labelled, r.test.top1, r.test.top5
            );
        }
        s.push_str("</table>");
    } else {
        s.push_str(
            "<h3>Semi-supervised fine-tuning</h3><p class=note>Not run (report --quick).</p>",
        );
    }
    if !suite.clustering.is_empty() {
        s.push_str(
            "<h3>Clustering metrics</h3><table><tr><th>assignments</th><th>split</th>\
             <th>clusters (used)</th><th>NMI</th><th>ARI</th><th>Hungarian accuracy</th></tr>",
        );
        for r in &suite.clustering {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{} ({})</td><td>{:.4}</td><td>{:.4}</td><td>{:.2}%</td></tr>",
                esc(&r.assignments), esc(&r.split), r.clusters, r.used, r.agreement.nmi,
                r.agreement.ari, r.agreement.accuracy
            );
        }
        s.push_str("</table>");
    }
}

fn figures_html(s: &mut String, figs: &[Figure]) {
    s.push_str("<div class=figs>");
    for f in figs {
        let _ = write!(
            s,
            "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
            esc(&f.file),
            esc(&f.caption),
            esc(&f.caption)
        );
    }
    s.push_str("</div>");
}

fn class_name(names: &Option<Vec<String>>, label: u32) -> String {
    names
        .as_ref()
        .and_then(|n| n.get(label as usize).cloned())
        .unwrap_or_else(|| format!("class {label}"))
}

fn clusters_html(
    s: &mut String,
    dir: &Path,
    sections: &[ClusterSection],
    names: &Option<Vec<String>>,
) -> Result<(), ReportError> {
    for (si, sec) in sections.iter().enumerate() {
        let _ = write!(
            s,
            "<h3>{}</h3><p class=note>{}</p>",
            esc(&sec.title),
            esc(&sec.note)
        );
        for strip in &sec.strips {
            let file = format!("clusters_{si}_{:04}.png", strip.cluster);
            write_strip(
                sec.source.as_ref(),
                &strip.images,
                sec.thumb,
                &dir.join(&file),
            )?;
            let majority = strip
                .majority
                .map(|(l, share)| format!(" · {share:.0}% {}", esc(&class_name(names, l))))
                .unwrap_or_default();
            let caption = match &strip.caption {
                Some(c) => esc(c),
                None => format!(
                    "cluster {} · {} images{majority}",
                    strip.cluster, strip.size
                ),
            };
            let _ = write!(
                s,
                "<div class=strip><div>{caption}</div><img src=\"{file}\" alt=\"cluster {}\"></div>",
                strip.cluster
            );
        }
    }
    Ok(())
}

fn map_html(s: &mut String, dir: &Path, map: &FeatureMap) -> Result<(), ReportError> {
    let Some(points) = tsne_2d(&map.data, map.dim, &map.tsne) else {
        s.push_str("<p class=note>Too few samples for a map.</p>");
        return Ok(());
    };
    if scatter(&dir.join("map.svg"), &map.title, &points, &map.groups)? {
        let _ = write!(
            s,
            "<figure><img src=\"map.svg\" alt=\"feature map\"><figcaption>{} ({} points, t-SNE perplexity {}, seed {})</figcaption></figure><p>",
            esc(&map.title),
            points.len(),
            map.tsne.perplexity,
            map.tsne.seed
        );
        for (i, name) in map.legend.iter().enumerate() {
            let _ = write!(
                s,
                "<span class=swatch style=\"background:{}\"></span>{}",
                css_colour(i),
                esc(name)
            );
        }
        s.push_str("</p>");
    }
    Ok(())
}

/// Writes the report into `input.out_dir`; returns the path of index.html.
pub fn write_report(input: &ReportInput) -> Result<PathBuf, ReportError> {
    let dir = &input.out_dir;
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.clone(),
        source,
    })?;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{t}</title><style>{CSS}</style></head><body><h1>{t}</h1>",
        t = esc(&input.title)
    );
    s.push_str("<table>");
    for (k, v) in &input.summary {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    s.push_str("</table><p><a href=#eval>Evaluation</a> · <a href=#curves>Training curves</a> · \
                <a href=#clusters>Clusters</a> · <a href=#map>Feature map</a> · <a href=#config>Config</a></p>");
    match input.suite {
        Some(suite) => eval_html(&mut s, suite),
        None => s.push_str("<h2 id=eval>Evaluation</h2><p class=note>Not run.</p>"),
    }
    s.push_str("<h2 id=curves>Training curves</h2>");
    let curves = training_curves(input.metrics, dir)?;
    if curves.is_empty() {
        s.push_str("<p class=note>metrics.jsonl has no records to plot.</p>");
    }
    figures_html(&mut s, &curves);
    s.push_str("<h2 id=clusters>Clusters</h2>");
    clusters_html(&mut s, dir, &input.clusters, &input.class_names)?;
    if !input.dense.is_empty() {
        let _ = write!(
            s,
            "<h2 id=dense>Dense predictions</h2><p class=note>{}</p>",
            esc(&input.dense_note)
        );
        figures_html(&mut s, &input.dense);
    }
    s.push_str("<h2 id=map>Feature map</h2>");
    if let Some(map) = &input.map {
        map_html(&mut s, dir, map)?;
    }
    if let Some(cfg) = &input.config_toml {
        let _ = write!(s, "<h2 id=config>Config</h2><pre>{}</pre>", esc(cfg));
    }
    s.push_str("</body></html>\n");
    let index = dir.join("index.html");
    write_atomic(&index, s.as_bytes())?;
    Ok(index)
}
