//! Where a run's images come from, as written in configs and on the command line.

use anyhow::{bail, Context, Result};
use protoclust_data::source::cifar::CifarKind;
use protoclust_data::source::{Cifar, FolderLayout, ImageFiles, Source, Stl10, Synthetic};
use protoclust_data::views::CenterView;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// Kind of data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    /// The built-in procedural shapes.
    #[default]
    Synthetic,
    /// CIFAR-10 binary batches.
    Cifar10,
    /// CIFAR-100 binary files.
    Cifar100,
    /// STL-10 binary: paths = [X file] or [X file, y file].
    Stl10,
    /// An image folder: class sub-folders (images at any depth below each), or flat.
    Folder,
    /// Every image anywhere under a folder, no labels.
    #[serde(rename = "folder-unlabelled")]
    FolderUnlabelled,
    /// A list file: one image path per line, optionally `path,label`.
    List,
}

/// A data set and how much of it to use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSpec {
    /// Kind of data set.
    pub kind: DataKind,
    /// Files (CIFAR batches, STL X/y) or the folder.
    pub paths: Vec<PathBuf>,
    /// Use only the first `limit` images (0: all).
    pub limit: usize,
    /// Synthetic: number of images.
    pub len: usize,
    /// Synthetic: image side in pixels.
    pub size: usize,
    /// Synthetic: seed of the drawing.
    pub seed: u64,
}

impl Default for DataSpec {
    fn default() -> Self {
        Self {
            kind: DataKind::Synthetic,
            paths: Vec::new(),
            limit: 0,
            len: 2000,
            size: 32,
            seed: 0,
        }
    }
}

/// True the first time `root` is asked about in this process (a folder's skipped files are
/// reported once, however often it is opened).
fn first_report(root: &std::path::Path) -> bool {
    static SEEN: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.iter().any(|p| p == root) {
        return false;
    }
    seen.push(root.to_path_buf());
    true
}

struct Limited {
    inner: Arc<dyn Source>,
    len: usize,
}

impl Source for Limited {
    fn len(&self) -> usize {
        self.len
    }
    fn get(&self, i: usize) -> Result<protoclust_data::Sample, protoclust_data::DataError> {
        if i >= self.len {
            return Err(protoclust_data::DataError::Index {
                index: i,
                len: self.len,
            });
        }
        self.inner.get(i)
    }
    fn num_classes(&self) -> Option<usize> {
        self.inner.num_classes()
    }
    fn label(&self, i: usize) -> Option<u32> {
        (i < self.len).then(|| self.inner.label(i)).flatten()
    }
    fn path(&self, i: usize) -> Option<&std::path::Path> {
        (i < self.len).then(|| self.inner.path(i)).flatten()
    }
}

impl DataSpec {
    /// Side of the images when known from the kind alone.
    pub fn image_side(&self) -> Option<usize> {
        match self.kind {
            DataKind::Synthetic => Some(self.size),
            DataKind::Cifar10 | DataKind::Cifar100 => Some(32),
            DataKind::Stl10 => Some(96),
            DataKind::Folder | DataKind::FolderUnlabelled | DataKind::List => None,
        }
    }

    /// Number of images when it is known without decoding (synthetic, CIFAR by file size).
    pub fn known_len(&self) -> Option<usize> {
        let n = match self.kind {
            DataKind::Synthetic => self.len,
            DataKind::Cifar10 | DataKind::Cifar100 => {
                let record = if self.kind == DataKind::Cifar10 {
                    3073
                } else {
                    3074
                };
                self.paths
                    .iter()
                    .map(|p| std::fs::metadata(p).map(|m| m.len() as usize / record))
                    .sum::<std::io::Result<usize>>()
                    .ok()?
            }
            _ => return None,
        };
        Some(if self.limit > 0 { n.min(self.limit) } else { n })
    }

    /// The evaluation view when no run config gives one: small images (up to 96 px, e.g. CIFAR,
    /// STL-10) are used whole; larger ones get the ImageNet resize-256 / centre-crop-224.
    pub fn default_eval_view(&self) -> CenterView {
        match self.image_side() {
            Some(side) if side <= 96 => CenterView {
                resize: side,
                size: side,
                ..Default::default()
            },
            _ => CenterView::default(),
        }
    }

    /// Parses `kind:path[,path...]` or `synthetic:LEN[:SIZE[:SEED]]` (command-line form).
    pub fn parse(s: &str) -> Result<Self> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        let kind = match kind {
            "synthetic" => DataKind::Synthetic,
            "cifar10" => DataKind::Cifar10,
            "cifar100" => DataKind::Cifar100,
            "stl10" => DataKind::Stl10,
            "folder" => DataKind::Folder,
            "folder-unlabelled" => DataKind::FolderUnlabelled,
            "list" => DataKind::List,
            other => bail!(
                "data `{s}`: unknown kind `{other}` (synthetic, cifar10, cifar100, stl10, \
                 folder, folder-unlabelled, list)"
            ),
        };
        let mut spec = DataSpec {
            kind,
            ..Default::default()
        };
        if kind == DataKind::Synthetic {
            let nums: Vec<&str> = rest.split(':').filter(|x| !x.is_empty()).collect();
            let num = |i: usize, d: u64| -> Result<u64> {
                nums.get(i)
                    .map(|v| {
                        v.parse::<u64>()
                            .with_context(|| format!("data `{s}`: `{v}` is not a number"))
                    })
                    .unwrap_or(Ok(d))
            };
            spec.len = num(0, 2000)? as usize;
            spec.size = num(1, 32)? as usize;
            spec.seed = num(2, 0)?;
        } else {
            spec.paths = rest
                .split(',')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect();
        }
        Ok(spec)
    }

    /// Opens the data set.
    pub fn open(&self) -> Result<Arc<dyn Source>> {
        let src: Arc<dyn Source> = match self.kind {
            DataKind::Synthetic => {
                if self.len == 0 || self.size < 8 {
                    bail!("data: synthetic needs len >= 1 and size >= 8");
                }
                Arc::new(Synthetic::new(self.len, self.size, self.seed))
            }
            DataKind::Cifar10 | DataKind::Cifar100 => {
                if self.paths.is_empty() {
                    bail!("data.paths: CIFAR needs at least one binary batch file");
                }
                let k = if self.kind == DataKind::Cifar10 {
                    CifarKind::Cifar10
                } else {
                    CifarKind::Cifar100
                };
                Arc::new(Cifar::open(k, &self.paths)?)
            }
            DataKind::Stl10 => match self.paths.as_slice() {
                [x] => Arc::new(Stl10::open(x, None)?),
                [x, y] => Arc::new(Stl10::open(x, Some(y))?),
                _ => bail!("data.paths: STL-10 needs [X file] or [X file, y file]"),
            },
            DataKind::Folder | DataKind::FolderUnlabelled => match self.paths.as_slice() {
                [root] => {
                    let layout = if self.kind == DataKind::Folder {
                        FolderLayout::Classes
                    } else {
                        FolderLayout::Unlabelled
                    };
                    let folder = ImageFiles::open_folder(root, layout)?;
                    if folder.skipped().count() > 0 && first_report(root) {
                        eprintln!("note: {}: skipped {}", root.display(), folder.skipped());
                    }
                    Arc::new(folder)
                }
                _ => bail!("data.paths: an image folder needs exactly one directory"),
            },
            DataKind::List => match self.paths.as_slice() {
                [list] => Arc::new(ImageFiles::open_list(list)?),
                _ => bail!("data.paths: a list needs exactly one list file"),
            },
        };
        if self.limit > 0 && self.limit < src.len() {
            return Ok(Arc::new(Limited {
                inner: src,
                len: self.limit,
            }));
        }
        Ok(src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_eval_view_uses_small_images_whole_and_crops_large_ones() {
        let cifar = DataSpec::parse("cifar10:x.bin")
            .unwrap()
            .default_eval_view();
        assert_eq!((cifar.resize, cifar.size), (32, 32));
        let folder = DataSpec::parse("folder:imgs").unwrap().default_eval_view();
        assert_eq!((folder.resize, folder.size), (256, 224));
    }
}
