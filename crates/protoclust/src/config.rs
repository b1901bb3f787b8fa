//! The run configuration: one typed TOML file, every field defaulted and validated.

use anyhow::{bail, Context, Result};
use protoclust_data::loader::LoaderConfig;
use protoclust_data::views::CenterView;
use protoclust_eval::LinearProbeConfig;
use protoclust_methods::deepcluster::DeepClusterConfig;
use protoclust_methods::deepclusterv2::DeepClusterV2Config;
use protoclust_methods::jigclu::JigCluConfig;
use protoclust_methods::odc::OdcConfig;
use protoclust_methods::slotcon::SlotConConfig;
use protoclust_methods::swav::SwavConfig;
use protoclust_nn::backbone::ResNetConfig;
use protoclust_nn::optim::{OptimConfig, ScheduleConfig};
use protoclust_nn::precision::Precision;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::data_spec::DataSpec;

/// Training-loop settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Total epochs.
    pub epochs: u64,
    /// Run directory (created; checkpoints/, metrics.jsonl, config.toml).
    pub run_dir: PathBuf,
    /// Keep a numbered checkpoint every this many epochs (0: only `last`).
    pub checkpoint_every_epochs: u64,
    /// Also refresh `last` every this many iterations (0: only at epoch ends).
    pub checkpoint_every_iterations: u64,
    /// A metrics line every this many iterations.
    pub log_every: u64,
    /// Iterations at ln(K) before the collapse warning.
    pub collapse_patience: u64,
    /// Stop (leaving a checkpoint) after this many iterations; for tests and time-boxed runs.
    pub stop_after_iterations: Option<u64>,
    /// Worker threads for augmentation and CPU kernels (0: all cores).
    pub threads: usize,
    /// Under MPI: BatchNorm statistics over every rank's part of the global batch
    /// (SyncBatchNorm, as the official SwAV), instead of each rank's own part.
    pub sync_batchnorm: bool,
    /// Under MPI: seconds a collective may wait for the other ranks before this process ends
    /// the job with an error (a rank died or hangs).
    pub collective_timeout_s: u64,
    /// Float type of the step's convolutions and matrix products: "f32", "bf16" or "f16"
    /// (losses, Sinkhorn, BatchNorm statistics, teachers and master weights stay f32).
    pub precision: Precision,
    /// Start from a released checkpoint (`protoclust import`'s sources or its output): trunk,
    /// heads, prototypes and method state (SlotCon's teacher and centre) loaded, optimiser and
    /// schedule fresh. `--resume` takes precedence.
    pub init: Option<PathBuf>,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 100,
            run_dir: PathBuf::from("runs/swav"),
            checkpoint_every_epochs: 10,
            checkpoint_every_iterations: 0,
            log_every: 10,
            collapse_patience: 200,
            stop_after_iterations: None,
            threads: 0,
            sync_batchnorm: true,
            collective_timeout_s: 600,
            precision: Precision::F32,
            init: None,
        }
    }
}

/// Online evaluation during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorSection {
    /// kNN every this many epochs (0: off).
    pub every_epochs: u64,
    /// Labelled memory-bank split.
    pub train: Option<DataSpec>,
    /// Labelled held-out split.
    pub test: Option<DataSpec>,
    /// (k, T) pairs evaluated together.
    pub knn: Vec<(usize, f64)>,
    /// Feature-extraction batch size.
    pub batch_size: usize,
}

impl Default for MonitorSection {
    fn default() -> Self {
        Self {
            every_epochs: 0,
            train: None,
            test: None,
            knn: vec![(200, 0.1), (20, 0.07)],
            batch_size: 256,
        }
    }
}

/// A whole run: method, data, optimisation and evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Method name: "swav", "odc", "deepcluster", "deepclusterv2", "jigclu" or "slotcon".
    pub method: String,
    /// Seed of model init and data order/augmentation.
    pub seed: u64,
    /// Training images.
    pub data: DataSpec,
    /// Batching.
    pub loader: LoaderConfig,
    /// SwAV settings (model, views, loss).
    pub swav: SwavConfig,
    /// ODC settings (used when method = "odc").
    pub odc: OdcConfig,
    /// DeepCluster settings (used when method = "deepcluster").
    pub deepcluster: DeepClusterConfig,
    /// DeepCluster-v2 settings (used when method = "deepclusterv2").
    pub deepclusterv2: DeepClusterV2Config,
    /// JigClu settings (used when method = "jigclu").
    pub jigclu: JigCluConfig,
    /// SlotCon settings (used when method = "slotcon").
    pub slotcon: SlotConConfig,
    /// Optimiser.
    pub optim: OptimConfig,
    /// Learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Loop settings.
    pub train: TrainSection,
    /// Online kNN monitor.
    pub monitor: MonitorSection,
    /// View used to extract features for evaluation.
    pub eval_view: CenterView,
    /// Linear probe settings.
    pub linear: LinearProbeConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            method: "swav".into(),
            seed: 0,
            data: DataSpec::default(),
            loader: LoaderConfig::default(),
            swav: SwavConfig::default(),
            odc: OdcConfig::default(),
            deepcluster: DeepClusterConfig::default(),
            deepclusterv2: DeepClusterV2Config::default(),
            jigclu: JigCluConfig::default(),
            slotcon: SlotConConfig::default(),
            optim: OptimConfig::default(),
            schedule: ScheduleConfig::default(),
            train: TrainSection::default(),
            monitor: MonitorSection::default(),
            eval_view: CenterView::default(),
            linear: LinearProbeConfig::default(),
        }
    }
}

/// The methods a config can name.
pub const METHODS: [&str; 6] = [
    "swav",
    "odc",
    "deepcluster",
    "deepclusterv2",
    "jigclu",
    "slotcon",
];

impl RunConfig {
    /// Path prefix of the evaluated backbone inside a checkpoint's model tensors.
    pub fn backbone_prefix(&self) -> &'static str {
        match self.method.as_str() {
            "slotcon" => "teacher.backbone.",
            _ => "backbone.",
        }
    }

    /// The backbone of the configured method.
    pub fn backbone(&self) -> &ResNetConfig {
        match self.method.as_str() {
            "odc" => &self.odc.backbone,
            "deepcluster" => &self.deepcluster.backbone,
            "deepclusterv2" => &self.deepclusterv2.backbone,
            "jigclu" => &self.jigclu.backbone,
            "slotcon" => &self.slotcon.backbone,
            _ => &self.swav.backbone,
        }
    }

    /// Legal but risky settings of the configured method, one sentence each.
    pub fn warnings(&self) -> Vec<String> {
        match self.method.as_str() {
            "swav" => self.swav.warnings(),
            _ => Vec::new(),
        }
    }
}

/// Sets `dotted.key` in a TOML table to `raw` (parsed as a TOML value, else taken as a string).
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .with_context(|| format!("--set {assignment}: expected section.key=value"))?;
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or(toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    set_value(table, key, value).map_err(|e| anyhow::anyhow!("--set {assignment}: {e}"))
}

/// Sets `dotted.key` in a TOML table to `value`, creating the sections on the way.
pub fn set_value(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("empty key segment");
    }
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .with_context(|| format!("`{p}` is not a section"))?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// Parses TOML text (plus overrides) into a config; errors are one line naming the field.
pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<RunConfig> {
    let mut table = parse_table(text, origin)?;
    for o in overrides {
        apply_override(&mut table, o)?;
    }
    from_table(table, origin)
}

/// TOML text as a table; a syntax error is one line naming `origin` and the line.
pub fn parse_table(text: &str, origin: &str) -> Result<toml::Table> {
    text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .unwrap_or(0);
        anyhow::anyhow!("{origin}:{line}: {}", e.message().trim())
    })
}

/// A config from a TOML table (a Python dict, say), with the same checks and one-line errors
/// as [`parse`].
pub fn from_table(mut table: toml::Table, origin: &str) -> Result<RunConfig> {
    upgrade_legacy(&mut table);
    let cfg: RunConfig =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let inner = inner.lines().next().unwrap_or("").trim().to_string();
            anyhow::anyhow!("{origin}: {path}: {inner}")
        })?;
    validate(&cfg).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    Ok(cfg)
}

/// Rewrites keys of configs embedded in older checkpoints: `linear.lr` (one rate) became the
/// grid `linear.lrs`, and the probe lost its weight decay (the protocol has none).
fn upgrade_legacy(table: &mut toml::Table) {
    if let Some(toml::Value::Table(linear)) = table.get_mut("linear") {
        if let Some(lr) = linear.remove("lr") {
            linear.insert("lrs".into(), toml::Value::Array(vec![lr]));
        }
        linear.remove("weight_decay");
    }
}

/// Reads and parses a config file.
pub fn load(path: &Path, overrides: &[String]) -> Result<RunConfig> {
    parse(&read(path)?, &path.display().to_string(), overrides)
}

/// The text of a config file.
pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))
}

/// Cross-field checks beyond what the types enforce.
pub fn validate(cfg: &RunConfig) -> Result<()> {
    let side = cfg.data.image_side();
    match cfg.method.as_str() {
        "swav" => cfg.swav.validate(side),
        "odc" => cfg.odc.validate(side, cfg.data.known_len()),
        "deepcluster" => cfg.deepcluster.validate(side, cfg.data.known_len()),
        "deepclusterv2" => cfg.deepclusterv2.validate(side),
        "jigclu" => cfg.jigclu.validate(side),
        "slotcon" => cfg.slotcon.validate(cfg.loader.batch_size),
        other => bail!("method = {other:?}: expected one of {}", METHODS.join(", ")),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    cfg.optim.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    if cfg.method == "swav" {
        let b = cfg.loader.batch_size.max(1);
        let q = cfg.swav.queue_length / b * b;
        let (k, n) = (cfg.swav.prototypes, b + q);
        if k > 8 * n {
            bail!(
                "swav.prototypes = {k} is far above the {n} samples one Sinkhorn step assigns \
                 (loader.batch_size {b} + queue {q}): at most {n} prototypes can win a step and \
                 most would never be assigned; use at most {} prototypes, or a queue",
                8 * n
            );
        }
    }
    if cfg.loader.batch_size < 2 {
        bail!(
            "loader.batch_size = {}: training needs at least 2 (BatchNorm)",
            cfg.loader.batch_size
        );
    }
    if cfg.train.epochs == 0 {
        bail!("train.epochs must be at least 1");
    }
    if cfg.eval_view.size == 0 || cfg.eval_view.size > cfg.eval_view.resize {
        bail!(
            "eval_view: size {} must be in 1..=resize ({})",
            cfg.eval_view.size,
            cfg.eval_view.resize
        );
    }
    if cfg.monitor.every_epochs > 0 && (cfg.monitor.train.is_none() || cfg.monitor.test.is_none()) {
        bail!("monitor.every_epochs > 0 needs monitor.train and monitor.test");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_and_wrong_type_are_one_line_errors_naming_the_field() {
        let e = parse("[swav]\nprotoypes = 10\n", "x.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.toml") && e.contains("protoypes") && !e.contains('\n'),
            "{e}"
        );
        let e = parse("[swav]\nprototypes = \"many\"\n", "x.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("swav.prototypes") && e.contains("invalid type") && !e.contains('\n'),
            "{e}"
        );
        let e = parse("[swav]\nprototypes = 1000000000\n", "x.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("swav.prototypes"), "{e}");
        let e = parse("[swav\n", "x.toml", &[]).unwrap_err().to_string();
        assert!(e.starts_with("x.toml:1"), "{e}");
    }

    #[test]
    fn jigclu_grid_and_patch_errors_name_their_field() {
        let e = parse(
            "method = \"jigclu\"\n[jigclu.views]\ngrid = 1\n",
            "j.toml",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("jigclu.views.grid"), "{e}");
        let e = parse(
            "method = \"jigclu\"\n[jigclu]\nupsample = 1\n",
            "j.toml",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("jigclu.upsample"), "{e}");
    }

    #[test]
    fn overrides_replace_values() {
        let c = parse(
            "[data]\nsize = 224\n[swav]\nprototypes = 10\n",
            "x.toml",
            &["swav.prototypes=30".into(), "train.run_dir=out/x".into()],
        )
        .unwrap();
        assert_eq!(c.swav.prototypes, 30);
        assert_eq!(c.train.run_dir, PathBuf::from("out/x"));
    }

    #[test]
    fn slotcon_teacher_centering_takes_a_name_or_a_mixed_share() {
        use protoclust_methods::slotcon::TeacherCentering;
        let centering = |v: &str| {
            parse(
                "method = \"slotcon\"\n",
                "s.toml",
                &[format!("slotcon.teacher_centering={v}")],
            )
            .map(|c| c.slotcon.teacher_centering)
        };
        assert_eq!(centering("\"mean\"").unwrap(), TeacherCentering::Mean);
        assert_eq!(centering("sinkhorn").unwrap(), TeacherCentering::Sinkhorn);
        assert_eq!(
            centering("{ mixed = 0.25 }").unwrap(),
            TeacherCentering::Mixed(0.25)
        );
        for bad in ["{ mixed = 1.0 }", "{ mixed = 0 }", "\"median\""] {
            let e = centering(bad).unwrap_err().to_string();
            assert!(
                e.contains("slotcon.teacher_centering") && !e.contains('\n'),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn shipped_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                load(&p, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
                n += 1;
            }
        }
        assert!(n >= 2);
    }
}
