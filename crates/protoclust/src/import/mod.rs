//! Released checkpoints of the official code and the frameworks (SwAV, DeepCluster-v2, JigClu,
//! SlotCon, mmselfsup's ODC and SwAV, any ResNet trunk) as protoclust models: read safely,
//! every trunk tensor matched by exact name and shape, the release's head and eval transform.

pub mod reader;
pub mod release;

use crate::config::RunConfig;
use anyhow::{anyhow, bail, Result};
use protoclust_data::transform::Normalize;
use protoclust_methods::official::{Constant, Convert, Entry, OfficialError, Released};
use protoclust_methods::{deepclusterv2, jigclu, odc, slotcon, swav};
use protoclust_nn::backbone::ResNetConfig;
use protoclust_nn::io;
use protoclust_nn::named::HostTensor;
use protoclust_train::checkpoint::FORMAT;
use protoclust_train::{Checkpoint, CheckpointMeta, Provenance};
use reader::Source;
pub use release::Release;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// A release read into our model's names.
pub struct Imported {
    /// The layout it was read as.
    pub release: Release,
    /// The run config of its method with the release's architecture and eval transform
    /// (`None`: a trunk alone).
    pub config: Option<RunConfig>,
    /// The trunk's architecture.
    pub backbone: ResNetConfig,
    /// Model tensors under our paths (a trunk alone: the ResNet's own paths).
    pub model: BTreeMap<String, HostTensor>,
    /// Method state (SlotCon's centre).
    pub state: BTreeMap<String, HostTensor>,
    /// Where it came from.
    pub provenance: Provenance,
}

/// The tables of one release: the method's config, model entries, state entries.
struct Tables {
    config: Option<RunConfig>,
    backbone: ResNetConfig,
    model: Vec<Entry>,
    state: Vec<Entry>,
    /// Our tensors at fixed values (no counterpart in the release).
    constants: Vec<Constant>,
}

/// The eval transform of the facebookresearch/swav releases (`eval_linear.py`: Resize 256,
/// CenterCrop 224, std 0.228 for red).
fn swav_normalize() -> Normalize {
    Normalize {
        mean: [0.485, 0.456, 0.406],
        std: [0.228, 0.224, 0.225],
    }
}

/// The release's method with its eval transform; the training sections are the ImageNet
/// recipe at batch 256 (SwAV with its 3840-long queue, as the official batch-256 script) and a
/// placeholder image folder to replace for `train --init`.
fn run_config(method: &str, normalize: Normalize) -> RunConfig {
    let mut cfg = RunConfig {
        method: method.into(),
        ..Default::default()
    };
    cfg.data.kind = crate::data_spec::DataKind::Folder;
    cfg.data.paths = vec!["/path/to/your/images".into()];
    cfg.loader.batch_size = 256;
    cfg.eval_view.resize = 256;
    cfg.eval_view.size = 224;
    cfg.eval_view.normalize = normalize;
    cfg
}

/// solo-learn's CIFAR ResNets pad their 3 × 3 stem by 2 (`solo/methods/base.py`).
fn solo_learn_stem(b: &mut ResNetConfig) {
    if b.small_stem {
        b.stem_padding = Some(2);
    }
}

/// solo-learn's CIFAR evaluation transform (`classification_dataloader.py`): the 32-px image,
/// normalised with the CIFAR statistics.
fn cifar_eval(cfg: &mut RunConfig) {
    cfg.eval_view.resize = 32;
    cfg.eval_view.size = 32;
    cfg.eval_view.normalize = Normalize {
        mean: [0.4914, 0.4822, 0.4465],
        std: [0.247, 0.243, 0.261],
    };
}

/// The run config of a SwAV or DeepCluster-v2 release: solo-learn's stem padding on its trunk,
/// and the eval transform (the official files' std 0.228, solo-learn's CIFAR one for its CIFAR
/// trunks, ImageNet's otherwise).
fn swav_family_config(method: &str, release: Release, backbone: &mut ResNetConfig) -> RunConfig {
    let solo = matches!(release, Release::SoloSwav | Release::SoloDeepclusterv2);
    if solo {
        solo_learn_stem(backbone);
    }
    let norm = if matches!(release, Release::Swav | Release::Deepclusterv2) {
        swav_normalize()
    } else {
        Normalize::default()
    };
    let mut cfg = run_config(method, norm);
    if solo && backbone.small_stem {
        cifar_eval(&mut cfg);
    }
    cfg
}

fn tables(release: Release, src: &Released) -> Result<Tables, OfficialError> {
    let simple = |config: RunConfig, backbone: ResNetConfig, model: Vec<Entry>| Tables {
        config: Some(config),
        backbone,
        model,
        state: vec![],
        constants: vec![],
    };
    Ok(match release {
        Release::Swav
        | Release::MmselfsupSwav
        | Release::LightlySwav
        | Release::SoloSwav
        | Release::VisslSwav => {
            use swav::official::{PrototypeLayer, SwavNames};
            let names = match release {
                Release::MmselfsupSwav => SwavNames {
                    trunk: "backbone.",
                    head: "neck.projection_neck",
                    prototypes: PrototypeLayer::Plain(if src.has("head.loss.prototypes.weight") {
                        "head.loss.prototypes.weight"
                    } else {
                        "head.prototypes.weight"
                    }),
                },
                Release::LightlySwav => {
                    if src.has("prototypes.heads.1.weight") {
                        return Err(OfficialError::Architecture(
                            "lightly SwaVPrototypes with several heads (`prototypes.heads.1`): \
                             protoclust's SwAV has one prototype layer"
                                .into(),
                        ));
                    }
                    SwavNames {
                        trunk: "backbone.",
                        head: "projection_head.layers",
                        prototypes: PrototypeLayer::Biased("prototypes.heads.0"),
                    }
                }
                Release::SoloSwav => SwavNames {
                    trunk: "backbone.",
                    head: "projector",
                    prototypes: PrototypeLayer::WeightNormed("prototypes"),
                },
                Release::VisslSwav => SwavNames {
                    trunk: "trunk._feature_blocks.",
                    head: "heads.0.projection_head",
                    prototypes: PrototypeLayer::Plain("heads.0.prototypes0.weight"),
                },
                _ => swav::official::OFFICIAL,
            };
            let (mut c, t, constants) = swav::official::release(src, &names)?;
            let mut cfg = swav_family_config("swav", release, &mut c.backbone);
            let b = c.backbone.clone();
            cfg.swav = c;
            cfg.swav.queue_length = 3840;
            Tables {
                constants,
                ..simple(cfg, b, t)
            }
        }
        Release::Deepclusterv2 | Release::SoloDeepclusterv2 | Release::VisslDeepclusterv2 => {
            use deepclusterv2::official::DeepClusterV2Names;
            let names = match release {
                Release::SoloDeepclusterv2 => DeepClusterV2Names {
                    trunk: "backbone.",
                    head: "projector",
                    prototypes: "prototypes.",
                },
                Release::VisslDeepclusterv2 => DeepClusterV2Names {
                    trunk: "trunk._feature_blocks.",
                    head: "heads.0.projection_head",
                    prototypes: "heads.0.prototypes",
                },
                _ => deepclusterv2::official::OFFICIAL,
            };
            let (mut c, t, constants) = deepclusterv2::official::release(src, &names)?;
            let mut cfg = swav_family_config("deepclusterv2", release, &mut c.backbone);
            let b = c.backbone.clone();
            cfg.deepclusterv2 = c;
            Tables {
                constants,
                ..simple(cfg, b, t)
            }
        }
        Release::Jigclu => {
            let (c, t) = jigclu::official::release(src)?;
            let mut cfg = run_config("jigclu", Normalize::default());
            let b = c.backbone.clone();
            cfg.jigclu = c;
            simple(cfg, b, t)
        }
        Release::Odc => {
            let (c, t, constants) = odc::official::release(src)?;
            let mut cfg = run_config("odc", Normalize::default());
            let b = c.backbone.clone();
            cfg.odc = c;
            Tables {
                constants,
                ..simple(cfg, b, t)
            }
        }
        Release::Slotcon => {
            let (c, t) = slotcon::official::release(src)?;
            let mut cfg = run_config("slotcon", Normalize::default());
            let b = c.backbone.clone();
            cfg.slotcon = c;
            Tables {
                config: Some(cfg),
                backbone: b,
                model: t.model,
                state: t.state,
                constants: vec![],
            }
        }
        Release::Backbone => {
            let (b, t) = protoclust_methods::official::trunk(src, "")?;
            Tables {
                config: None,
                backbone: b,
                model: t,
                state: vec![],
                constants: vec![],
            }
        }
    })
}

/// torch out × in as burn's in × out.
fn transpose(t: HostTensor) -> HostTensor {
    let (r, c) = (t.shape[0], t.shape[1]);
    let mut data = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            data[j * r + i] = t.data[i * c + j];
        }
    }
    HostTensor {
        shape: vec![c, r],
        data,
    }
}

/// `nn.utils.weight_norm` (dim 0) folded: row i of `v` scaled to length `g[i]`.
fn weight_norm(g: &HostTensor, v: HostTensor) -> HostTensor {
    let cols = v.shape[1];
    let mut data = v.data;
    for (row, &gi) in data.chunks_mut(cols).zip(&g.data) {
        let norm = row
            .iter()
            .map(|x| (*x as f64) * (*x as f64))
            .sum::<f64>()
            .sqrt();
        for x in row {
            *x = (gi as f64 * *x as f64 / norm) as f32;
        }
    }
    HostTensor {
        shape: v.shape,
        data,
    }
}

/// Whether the trunk at `prefix` is a solo-learn model's: `…backbone.` beside solo-learn's online
/// `…classifier.weight`.
fn solo_learn_trunk(shapes: &BTreeMap<String, Vec<usize>>, prefix: &str) -> bool {
    prefix
        .strip_suffix("backbone.")
        .is_some_and(|p| shapes.contains_key(&format!("{p}classifier.weight")))
}

/// SHA-256 of a file, hex, read in blocks.
fn sha256(path: &Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads `path` as `forced`, or as the release its names say.
pub fn import(path: &Path, forced: Option<Release>) -> Result<Imported> {
    let mut src = Source::open(path)?;
    if src.native {
        bail!(
            "{}: already a protoclust checkpoint or backbone export (every command opens it as it is)",
            path.display()
        );
    }
    let (release, prefix) =
        release::detect(&src.shapes, forced).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let under: BTreeMap<String, Vec<usize>> = src
        .shapes
        .iter()
        .filter_map(|(k, s)| k.strip_prefix(&prefix).map(|r| (r.to_string(), s.clone())))
        .collect();
    let at = |e: &dyn std::fmt::Display| {
        anyhow!(
            "{}: layout {} (prefix `{prefix}`): {e}",
            path.display(),
            release.name()
        )
    };
    let mut t = tables(release, &Released { shapes: &under }).map_err(|e| at(&e))?;
    if release == Release::Backbone && solo_learn_trunk(&src.shapes, &prefix) {
        solo_learn_stem(&mut t.backbone);
    }
    // Every tensor of each trunk is consumed: a stray one means another architecture.
    let used: BTreeSet<&str> = t
        .model
        .iter()
        .chain(&t.state)
        .map(|e| e.official.as_str())
        .collect();
    let trunks: &[&str] = match release {
        Release::Slotcon => &["encoder_k.", "encoder_q."],
        r => &[r.trunk()],
    };
    for trunk in trunks {
        for name in under.keys() {
            let Some(rest) = name.strip_prefix(trunk) else {
                continue;
            };
            let part_of_trunk = rest.starts_with("conv1.")
                || rest.starts_with("bn1.")
                || (rest.starts_with("layer") && rest.as_bytes().get(6) == Some(&b'.'));
            if part_of_trunk && !used.contains(name.as_str()) {
                return Err(at(&format!(
                    "`{prefix}{name}` is not part of a ResNet-{} trunk",
                    t.backbone.depth
                )));
            }
        }
    }
    let mut take = |entries: &[Entry]| -> Result<BTreeMap<String, HostTensor>> {
        let mut out = BTreeMap::new();
        for e in entries {
            let found = &under[&e.official];
            if *found != e.shape {
                return Err(at(&format!(
                    "`{prefix}{}` has shape {found:?}, expected {:?}",
                    e.official, e.shape
                )));
            }
            let v = src.take(&format!("{prefix}{}", e.official))?;
            let v = match e.convert {
                Convert::Same => v,
                Convert::Transpose => transpose(v),
                Convert::WeightNorm => {
                    let g_key = e.convert.companion(&e.official).unwrap_or_default();
                    let expected = vec![e.shape[0], 1];
                    if under[&g_key] != expected {
                        return Err(at(&format!(
                            "`{prefix}{g_key}` has shape {:?}, expected {expected:?}",
                            under[&g_key]
                        )));
                    }
                    weight_norm(&src.take(&format!("{prefix}{g_key}"))?, v)
                }
            };
            out.insert(e.ours.clone(), v);
        }
        Ok(out)
    };
    // A missing entry is an error naming it.
    for e in t.model.iter().chain(&t.state) {
        let companion = e.convert.companion(&e.official);
        for key in std::iter::once(&e.official).chain(&companion) {
            if !under.contains_key(key) {
                return Err(at(&format!("missing tensor `{prefix}{key}`")));
            }
        }
    }
    let mut model = take(&t.model)?;
    let state = take(&t.state)?;
    for c in &t.constants {
        let n = c.shape.iter().product();
        model.insert(
            c.ours.clone(),
            HostTensor {
                shape: c.shape.clone(),
                data: vec![c.value; n],
            },
        );
    }
    let meta = std::fs::metadata(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let provenance = Provenance {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes: meta.len(),
        sha256: sha256(path)?,
        container: src.container.clone(),
        layout: release.name().into(),
        prefix: prefix.clone(),
    };
    Ok(Imported {
        release,
        config: t.config,
        backbone: t.backbone,
        model,
        state,
        provenance,
    })
}

impl Imported {
    /// The protoclust checkpoint of a release with a head (iteration 0, no optimiser state);
    /// a trunk alone is given back as it is.
    pub fn into_checkpoint(self) -> Result<std::result::Result<Checkpoint, Imported>> {
        let Some(cfg) = &self.config else {
            return Ok(Err(self));
        };
        Ok(Ok(Checkpoint {
            meta: CheckpointMeta {
                format: FORMAT.into(),
                method: cfg.method.clone(),
                epoch: 0,
                batch: 0,
                iteration: 0,
                config: toml::to_string(cfg)?,
                imported_from: Some(self.provenance),
            },
            model: self.model,
            optim: BTreeMap::new(),
            method: self.state,
        }))
    }

    /// Writes the import to `out` (atomically, streamed): a protoclust checkpoint, or for a
    /// trunk alone a torchvision-named backbone export.
    pub fn save(self, out: &Path) -> Result<()> {
        let trunk = match self.into_checkpoint()? {
            Ok(ck) => return Ok(ck.save(out)?),
            Err(trunk) => trunk,
        };
        let names = protoclust_eval::export::torchvision_refs(&trunk.model);
        let mut meta = HashMap::new();
        meta.insert(
            "protoclust_backbone".to_string(),
            serde_json::to_string(&trunk.backbone)?,
        );
        meta.insert(
            "protoclust_imported_from".to_string(),
            serde_json::to_string(&trunk.provenance)?,
        );
        io::save_refs(out, &names, meta)?;
        Ok(())
    }
}

/// The starting point `train.init` names: a protoclust checkpoint of the run's method, or a
/// release read as `import` reads it (a trunk alone fills every backbone of the method).
pub fn init_from(path: &Path, cfg: &RunConfig) -> Result<protoclust_train::InitFrom> {
    let at = |what: String| anyhow!("train.init: {}: {what}", path.display());
    let (model, state, method, backbone) = match io::load(path) {
        Ok((t, m)) if m.contains_key("protoclust") => {
            let ck = Checkpoint::from_parts(path, t, &m)?;
            (ck.model, ck.method, Some(ck.meta.method), None)
        }
        Ok((t, m)) if m.contains_key("protoclust_backbone") => {
            let b: ResNetConfig = serde_json::from_str(&m["protoclust_backbone"])
                .map_err(|e| at(format!("backbone metadata: {e}")))?;
            let model = protoclust_eval::export::from_torchvision(&t);
            (model, BTreeMap::new(), None, Some(b))
        }
        _ => {
            let i = import(path, None)?;
            let method = i.config.as_ref().map(|c| c.method.clone());
            (i.model, i.state, method, Some(i.backbone))
        }
    };
    if let Some(b) = backbone {
        let ours = cfg.backbone();
        if (b.depth, b.width, b.small_stem, b.stem())
            != (ours.depth, ours.width, ours.small_stem, ours.stem())
        {
            let describe = |c: &ResNetConfig| {
                let (k, _, pad) = c.stem();
                let usual = ResNetConfig {
                    stem_padding: None,
                    ..c.clone()
                }
                .stem()
                .2;
                format!(
                    "ResNet-{} of width {}{}{}",
                    c.depth,
                    c.width,
                    if c.small_stem { " (small stem)" } else { "" },
                    if pad != usual {
                        format!(" with a {k} × {k} stem padded by {pad} (backbone.stem_padding = {pad})")
                    } else {
                        String::new()
                    }
                )
            };
            return Err(at(format!(
                "the release is a {}, this run's {}.backbone a {}",
                describe(&b),
                cfg.method,
                describe(ours)
            )));
        }
    }
    let model = match &method {
        Some(m) if *m != cfg.method => {
            return Err(at(format!("a {m} model, this run is {}", cfg.method)))
        }
        Some(_) => {
            if cfg.method == "swav"
                && model.contains_key("prototypes.bias")
                && !cfg.swav.prototype_bias
            {
                return Err(at(
                    "the release's prototypes have a bias (lightly's SwaVPrototypes): set \
                     swav.prototype_bias = true"
                        .into(),
                ));
            }
            model
        }
        None => {
            let prefixes: &[&str] = match cfg.method.as_str() {
                "slotcon" => &["student.backbone.", "teacher.backbone."],
                _ => &["backbone."],
            };
            prefixes
                .iter()
                .flat_map(|p| {
                    model
                        .iter()
                        .map(move |(k, v)| (format!("{p}{k}"), v.clone()))
                })
                .collect()
        }
    };
    Ok(protoclust_train::InitFrom {
        path: path.to_path_buf(),
        model,
        state,
    })
}

/// Whether `path` is a file protoclust wrote (a checkpoint or a backbone export).
pub fn is_native(meta: &HashMap<String, String>) -> bool {
    meta.contains_key("protoclust") || meta.contains_key("protoclust_backbone")
}

/// Refuses an output path that is the input.
pub fn check_out(src: &Path, out: &Path) -> Result<()> {
    if src.canonicalize().ok() == out.canonicalize().ok() && out.exists() {
        bail!("{}: the output would overwrite the input", out.display());
    }
    Ok(())
}
