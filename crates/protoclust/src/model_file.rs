//! A model file opened for evaluation: a training checkpoint of any method (backbone, the
//! method's head, its pseudo-labels), an exported backbone, or a released checkpoint of the
//! official code (read through `import`).

use crate::config::RunConfig;
use crate::runner::{with_method, WithMethod};
use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use protoclust_methods::{HeadOutputs, Method};
use protoclust_nn::backbone::{ResNet, ResNetConfig, ResNetOutput};
use protoclust_nn::infer::EvalTrunk;
use protoclust_nn::io::{self, NamedTensors};
use protoclust_nn::named::{load_named, HostTensor};
use protoclust_train::Checkpoint;
use std::path::{Path, PathBuf};

/// The method's head on the evaluated backbone's output for an inference batch.
pub type HeadFn = Box<dyn Fn(&ResNetOutput) -> HeadOutputs + Send + Sync>;

/// The method's per-pixel prototype scores (N × K × h × w) of the evaluated backbone's output.
pub type DenseFn = Box<dyn Fn(&ResNetOutput) -> Tensor<4> + Send + Sync>;

/// What evaluation can read from a model file.
pub struct ModelFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The evaluated backbone in inference mode.
    pub backbone: ResNet,
    /// The same backbone for inference passes (BatchNorm folded into the convolutions on the
    /// CPU).
    pub trunk: EvalTrunk,
    /// Its architecture.
    pub backbone_config: ResNetConfig,
    /// Its tensors under the backbone's own names.
    backbone_tensors: NamedTensors,
    /// The run config (training checkpoints only).
    pub config: Option<RunConfig>,
    /// The method's head (training checkpoints of methods with one).
    pub head: Option<HeadFn>,
    /// The method's per-pixel prototype scores (training checkpoints of methods with them).
    pub dense: Option<DenseFn>,
    /// The centre the method subtracts from those scores for its teacher's assignment (SlotCon).
    pub dense_center: Option<Tensor<1>>,
    /// The method's pseudo-label of every training image (ODC, DeepCluster).
    pub pseudo_labels: Option<Vec<usize>>,
    /// The method's prototype matrix, K × D (training checkpoints of methods with one).
    pub prototypes: Option<HostTensor>,
    /// Training iterations completed (training checkpoints only).
    pub iteration: Option<u64>,
}

/// The backbone tensors of a checkpoint's model (`prefix` removed).
fn backbone_tensors(model: &NamedTensors, prefix: &str) -> NamedTensors {
    model
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix)
                .map(|rest| (rest.to_string(), v.clone()))
        })
        .collect()
}

/// What a method's model gives evaluation besides the backbone file's tensors.
struct Parts {
    head: Option<HeadFn>,
    dense: Option<DenseFn>,
    dense_center: Option<Tensor<1>>,
    pseudo_labels: Option<Vec<usize>>,
    prototypes: Option<HostTensor>,
    /// The model's own evaluated backbone (inference mode).
    backbone: ResNet,
}

struct MethodParts<'a> {
    cfg: &'a RunConfig,
    /// The checkpoint to load; `None`: the model as initialised from the config's seed.
    ck: Option<&'a Checkpoint>,
    path: &'a Path,
    device: &'a Device,
}

impl WithMethod for MethodParts<'_> {
    type Out = Result<Parts>;
    fn call<M: Method>(self, mut method: M) -> Self::Out {
        let at = || format!("{}", self.path.display());
        let device = self.device.clone().without_autodiff();
        let mut model = method.init_model(self.cfg.seed, &device).with_context(at)?;
        if let Some(ck) = self.ck {
            model = load_named(model, &ck.model).with_context(at)?;
            method.load_state(&ck.method, &device).with_context(at)?;
        }
        let model = model.valid();
        let labels = method.pseudo_labels().map(<[usize]>::to_vec);
        let prototypes = M::prototypes(&model).map(|p| HostTensor {
            shape: p.dims().to_vec(),
            data: protoclust_nn::ops::host::to_f32(p),
        });
        let backbone = M::backbone(&model).clone();
        let trunk = backbone.forward(Tensor::zeros([1, 3, 8, 8], &device));
        let probe = M::head_outputs(&model, &trunk);
        let model = std::sync::Arc::new(model);
        let dense: Option<DenseFn> = M::dense_scores(&model, &trunk).map(|_| {
            let model = model.clone();
            Box::new(move |t: &ResNetOutput| {
                M::dense_scores(&model, t).expect("probed: the method has dense scores")
            }) as DenseFn
        });
        let head: Option<HeadFn> = (probe.embedding.is_some() || probe.scores.is_some())
            .then(|| Box::new(move |t: &ResNetOutput| M::head_outputs(&model, t)) as HeadFn);
        Ok(Parts {
            head,
            dense_center: dense.as_ref().and_then(|_| method.dense_center()),
            dense,
            pseudo_labels: labels,
            prototypes,
            backbone,
        })
    }
}

impl ModelFile {
    /// Opens a checkpoint (reading its backbone under `prefix`, default the method's evaluated
    /// one, e.g. SlotCon's `teacher.backbone.`) or an exported backbone. `with_head` also loads
    /// the method's head and state.
    pub fn open(
        path: &Path,
        prefix: Option<&str>,
        with_head: bool,
        device: &Device,
    ) -> Result<Self> {
        // A PyTorch file is read once, by the import (not first tried as safetensors).
        if crate::import::reader::looks_like_torch(path) {
            return Self::from_release(path, prefix, with_head, device);
        }
        let (tensors, meta) = io::load(path)?;
        if !crate::import::is_native(&meta) {
            return Self::from_release(path, prefix, with_head, device);
        }
        if meta.contains_key("protoclust") {
            let ck = Checkpoint::from_parts(path, tensors, &meta)?;
            return Self::from_checkpoint(&ck, path, prefix, with_head, device);
        }
        let json = &meta["protoclust_backbone"];
        let bcfg: ResNetConfig = serde_json::from_str(json)
            .with_context(|| format!("{}: backbone metadata", path.display()))?;
        let own = protoclust_eval::export::from_torchvision(&tensors);
        Self::from_backbone(bcfg, own, path, device)
    }

    /// [`ModelFile::open`] with the method's head `head` as the evaluated one (DeepCluster-v2's
    /// prototype heads; 0 is every method's own).
    pub fn open_head(path: &Path, head: usize, device: &Device) -> Result<Self> {
        if head == 0 {
            return Self::open(path, None, true, device);
        }
        let ck = match io::load(path) {
            Ok((t, m)) if m.contains_key("protoclust") => Checkpoint::from_parts(path, t, &m)?,
            _ => match crate::import::import(path, None)?.into_checkpoint()? {
                Ok(ck) => ck,
                Err(_) => anyhow::bail!("--head {head}: {} has no head", path.display()),
            },
        };
        let ck = head_first(ck, head).with_context(|| format!("{}", path.display()))?;
        Self::from_checkpoint(&ck, path, None, true, device)
    }

    /// A released checkpoint of the official code or a framework, read as `protoclust import`
    /// reads it.
    fn from_release(
        path: &Path,
        prefix: Option<&str>,
        with_head: bool,
        device: &Device,
    ) -> Result<Self> {
        match crate::import::import(path, None)?.into_checkpoint()? {
            Ok(ck) => Self::from_checkpoint(&ck, path, prefix, with_head, device),
            Err(trunk) => Self::from_backbone(trunk.backbone, trunk.model, path, device),
        }
    }

    fn from_checkpoint(
        ck: &Checkpoint,
        path: &Path,
        prefix: Option<&str>,
        with_head: bool,
        device: &Device,
    ) -> Result<Self> {
        let at = || format!("{}", path.display());
        let cfg = crate::config::parse(
            &ck.meta.config,
            &format!("{} (embedded config)", path.display()),
            &[],
        )?;
        let bcfg = cfg.backbone().clone();
        let own = backbone_tensors(&ck.model, prefix.unwrap_or(cfg.backbone_prefix()));
        let net = protoclust_nn::backbone::resnet(&bcfg, cfg.seed, device)?;
        let net = load_named(net, &own).with_context(at)?.valid();
        // The head belongs to the method's evaluated backbone; another backbone's features
        // (e.g. SlotCon's student) would not match it.
        let own_backbone = prefix.is_none_or(|p| p == cfg.backbone_prefix());
        let (head, dense, dense_center, pseudo_labels, prototypes) = if with_head && own_backbone {
            let parts = with_method(
                &cfg,
                MethodParts {
                    cfg: &cfg,
                    ck: Some(ck),
                    path,
                    device,
                },
            )?;
            (
                parts.head,
                parts.dense,
                parts.dense_center,
                parts.pseudo_labels,
                parts.prototypes,
            )
        } else {
            (None, None, None, None, None)
        };
        Ok(Self {
            path: path.to_path_buf(),
            trunk: EvalTrunk::new(&net),
            backbone: net,
            backbone_config: bcfg,
            backbone_tensors: own,
            iteration: Some(ck.meta.iteration),
            config: Some(cfg),
            head,
            dense,
            dense_center,
            pseudo_labels,
            prototypes,
        })
    }

    fn from_backbone(
        bcfg: ResNetConfig,
        own: NamedTensors,
        path: &Path,
        device: &Device,
    ) -> Result<Self> {
        let net = protoclust_nn::backbone::resnet(&bcfg, 0, device)?;
        let net = load_named(net, &own)
            .with_context(|| format!("{}", path.display()))?
            .valid();
        Ok(Self {
            path: path.to_path_buf(),
            trunk: EvalTrunk::new(&net),
            backbone: net,
            backbone_config: bcfg,
            backbone_tensors: own,
            config: None,
            head: None,
            dense: None,
            dense_center: None,
            pseudo_labels: None,
            prototypes: None,
            iteration: None,
        })
    }

    /// The method's model of the config at `path` as initialised from its seed (the random-init
    /// baseline): the evaluated backbone and the head.
    pub fn random_init(path: &Path, device: &Device) -> Result<Self> {
        let cfg = crate::config::load(path, &[])?;
        let parts = with_method(
            &cfg,
            MethodParts {
                cfg: &cfg,
                ck: None,
                path,
                device,
            },
        )?;
        let backbone_tensors = protoclust_nn::named::named_tensors(&parts.backbone);
        Ok(Self {
            path: path.to_path_buf(),
            trunk: EvalTrunk::new(&parts.backbone),
            backbone: parts.backbone,
            backbone_config: cfg.backbone().clone(),
            backbone_tensors,
            iteration: Some(0),
            config: Some(cfg),
            head: parts.head,
            dense: parts.dense,
            dense_center: parts.dense_center,
            pseudo_labels: parts.pseudo_labels,
            prototypes: parts.prototypes,
        })
    }

    /// The backbone rebuilt with gradients on `device`'s autodiff form, for fine-tuning.
    pub fn trainable_backbone(&self, device: &Device) -> Result<ResNet> {
        let ad = device.clone().without_autodiff().autodiff();
        let net = protoclust_nn::backbone::resnet(&self.backbone_config, 0, &ad)?;
        load_named(net, &self.backbone_tensors).with_context(|| format!("{}", self.path.display()))
    }
}

/// `ck` with DeepCluster-v2's prototype head `head` moved first (the one evaluation and
/// `assign` read), its prototype counts reordered to match.
fn head_first(mut ck: Checkpoint, head: usize) -> Result<Checkpoint> {
    let mut cfg = crate::config::parse(&ck.meta.config, "embedded config", &[])?;
    let heads = cfg.deepclusterv2.prototypes.len();
    if cfg.method != "deepclusterv2" {
        anyhow::bail!("--head {head}: a {} model has one head (0)", cfg.method);
    }
    if head >= heads {
        anyhow::bail!(
            "--head {head}: the model has {heads} prototype heads (0..={})",
            heads - 1
        );
    }
    let key = |h: usize| format!("prototypes.heads.{h}.weight");
    let (a, b) = (ck.model.remove(&key(0)), ck.model.remove(&key(head)));
    if let (Some(a), Some(b)) = (a, b) {
        ck.model.insert(key(0), b);
        ck.model.insert(key(head), a);
    }
    cfg.deepclusterv2.prototypes.swap(0, head);
    ck.meta.config = toml::to_string(&cfg)?;
    Ok(ck)
}

/// A backbone loaded from a training checkpoint or an exported safetensors file, with the
/// run config it came from when known.
pub fn load_backbone(path: &Path, device: &Device) -> Result<(ResNet, Option<RunConfig>)> {
    load_backbone_at(path, None, device)
}

/// [`load_backbone`], reading a checkpoint's backbone under `prefix` (e.g. SlotCon's
/// `student.backbone.`) instead of the method's evaluated one.
pub fn load_backbone_at(
    path: &Path,
    prefix: Option<&str>,
    device: &Device,
) -> Result<(ResNet, Option<RunConfig>)> {
    let m = ModelFile::open(path, prefix, false, device)?;
    Ok((m.backbone, m.config))
}
