//! Checkpoints: model, optimiser, method state, and the run position, in one safetensors file.

use protoclust_nn::io::{self, IoError};
use protoclust_nn::named::HostTensor;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Version tag written into every checkpoint.
pub const FORMAT: &str = "protoclust-checkpoint-1";

/// Where the run stands when the checkpoint was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Always [`FORMAT`].
    pub format: String,
    /// Method name.
    pub method: String,
    /// Epoch to continue in.
    pub epoch: u64,
    /// Next batch of that epoch.
    pub batch: usize,
    /// Global iterations completed.
    pub iteration: u64,
    /// Resolved run configuration (TOML), so evaluation can rebuild the model.
    pub config: String,
    /// The released checkpoint this one was imported from (`protoclust import`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<Provenance>,
}

/// Where an imported checkpoint came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The source file's name.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its container (`zip`, `legacy`, `tar`, `pickle`, `safetensors`).
    pub container: String,
    /// The release layout it was read as.
    pub layout: String,
    /// The prefix its model's names were under.
    pub prefix: String,
}

/// Everything needed to continue a run exactly.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Position in the run.
    pub meta: CheckpointMeta,
    /// Model tensors (parameters and BatchNorm statistics) by path.
    pub model: BTreeMap<String, HostTensor>,
    /// Optimiser state by path.
    pub optim: BTreeMap<String, HostTensor>,
    /// Method state (queues, memories) by name.
    pub method: BTreeMap<String, HostTensor>,
}

const SECTIONS: [&str; 3] = ["model", "optim", "method"];

impl Checkpoint {
    /// Writes atomically (temporary file, then rename): an interrupted write never replaces
    /// the previous checkpoint.
    pub fn save(&self, path: &Path) -> Result<(), IoError> {
        let mut all = BTreeMap::new();
        for (section, map) in SECTIONS
            .iter()
            .zip([&self.model, &self.optim, &self.method])
        {
            for (k, v) in map {
                all.insert(format!("{section}/{k}"), io::OutRef::F32(v));
            }
        }
        let mut meta = HashMap::new();
        meta.insert(
            "protoclust".to_string(),
            serde_json::to_string(&self.meta).unwrap_or_default(),
        );
        io::save_refs(path, &all, meta)
    }

    /// Reads a checkpoint, checking its format tag.
    pub fn load(path: &Path) -> Result<Self, IoError> {
        let (all, meta) = io::load(path)?;
        Self::from_parts(path, all, &meta)
    }

    /// The checkpoint to resume from: `path`; or, when `path` is `last` (the file the run
    /// rewrites) and it is corrupt, the newest readable periodic checkpoint beside it
    /// (`epoch-NNNN.safetensors`), with a warning saying so. Never a corrupt file.
    pub fn load_for_resume(path: &Path) -> Result<(Self, Option<String>), IoError> {
        let err = match Self::load(path) {
            Ok(ck) => return Ok((ck, None)),
            Err(e @ IoError::Format { .. })
                if path.file_name() == Some("last.safetensors".as_ref()) =>
            {
                e
            }
            Err(e) => return Err(e),
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut periodic: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        name.starts_with("epoch-") && name.ends_with(".safetensors")
                    })
                    .collect()
            })
            .unwrap_or_default();
        periodic.sort();
        let mut skipped = Vec::new();
        for p in periodic.iter().rev() {
            match Self::load(p) {
                Ok(ck) => {
                    let mut warning = format!(
                        "{err}; resuming from {} (epoch {}, iteration {}) instead",
                        p.display(),
                        ck.meta.epoch,
                        ck.meta.iteration
                    );
                    if !skipped.is_empty() {
                        warning.push_str(&format!(" (also unreadable: {})", skipped.join(", ")));
                    }
                    return Ok((ck, Some(warning)));
                }
                Err(_) => skipped.push(p.display().to_string()),
            }
        }
        Err(IoError::Format {
            path: path.to_path_buf(),
            reason: format!(
                "{} and no readable periodic checkpoint (epoch-NNNN.safetensors) is beside it",
                match &err {
                    IoError::Format { reason, .. } => reason.as_str(),
                    IoError::Os { .. } => "unreadable",
                }
            ),
        })
    }

    /// Builds a checkpoint from tensors and metadata already read from `path` (named in errors).
    pub fn from_parts(
        path: &Path,
        all: io::NamedTensors,
        meta: &HashMap<String, String>,
    ) -> Result<Self, IoError> {
        let bad = |reason: String| IoError::Format {
            path: path.to_path_buf(),
            reason,
        };
        let json = meta
            .get("protoclust")
            .ok_or_else(|| bad("not a protoclust checkpoint (no `protoclust` metadata)".into()))?;
        let meta: CheckpointMeta =
            serde_json::from_str(json).map_err(|e| bad(format!("checkpoint metadata: {e}")))?;
        if meta.format != FORMAT {
            return Err(bad(format!(
                "format `{}`, expected `{FORMAT}`",
                meta.format
            )));
        }
        let mut ck = Checkpoint {
            meta,
            model: BTreeMap::new(),
            optim: BTreeMap::new(),
            method: BTreeMap::new(),
        };
        for (k, v) in all {
            match k.split_once('/') {
                Some(("model", rest)) => ck.model.insert(rest.to_string(), v),
                Some(("optim", rest)) => ck.optim.insert(rest.to_string(), v),
                Some(("method", rest)) => ck.method.insert(rest.to_string(), v),
                _ => return Err(bad(format!("unexpected tensor `{k}`"))),
            };
        }
        Ok(ck)
    }
}
