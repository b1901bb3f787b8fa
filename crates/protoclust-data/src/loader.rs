//! Parallel, seeded batch loading with a bounded prefetch queue.
//!
//! Sample `i` of epoch `e` is augmented with a random stream derived from (seed, e, i), so a
//! batch's content does not depend on the number of threads, and a resumed run sees the same
//! batches as an uninterrupted one.

use crate::source::Source;
use crate::transform::Geometry;
use crate::views::ViewBuilder;
use crate::{mix_seed, DataError};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

/// One sample's index, label and views.
type Built = (usize, Option<u32>, Vec<crate::views::View>);

/// How batches are drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoaderConfig {
    /// Samples per batch.
    pub batch_size: usize,
    /// Shuffle the order every epoch.
    pub shuffle: bool,
    /// Draw indices with replacement (ODC's sampler) instead of a permutation.
    pub replacement: bool,
    /// Drop the last incomplete batch.
    pub drop_last: bool,
    /// Batches prepared ahead of the training step.
    pub prefetch: usize,
    /// Fail on an undecodable image (naming the file) instead of skipping and counting it.
    pub strict: bool,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            shuffle: true,
            replacement: false,
            drop_last: true,
            prefetch: 2,
            strict: false,
        }
    }
}

/// The views of one batch at one crop position: n × 3 × size × size values.
#[derive(Debug, Clone)]
pub struct ViewBatch {
    /// Side of the square view.
    pub size: usize,
    /// Row-major NCHW values.
    pub data: Vec<f32>,
}

/// A batch of samples, each with all of its views.
#[derive(Debug, Clone)]
pub struct Batch {
    /// One entry per view position (SwAV: crop 0, crop 1, ...).
    pub views: Vec<ViewBatch>,
    /// `geometry[v][b]`: geometry of view v of sample b.
    pub geometry: Vec<Vec<Geometry>>,
    /// Data-set index of each sample.
    pub indices: Vec<usize>,
    /// Label of each sample, when known.
    pub labels: Vec<Option<u32>>,
    /// Samples that could not be decoded and were left out: (index, reason).
    pub skipped: Vec<(usize, String)>,
}

impl Batch {
    /// Number of samples in the batch.
    pub fn len(&self) -> usize {
        self.indices.len()
    }
    /// True when the batch has no samples.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// This process's part of every global batch in data-parallel training: rank `rank` of
/// `ranks` takes the `rank`-th of `ranks` equal consecutive slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This process's rank.
    pub rank: usize,
    /// Number of processes.
    pub ranks: usize,
}

impl Shard {
    /// The whole batch (one process).
    pub const WHOLE: Shard = Shard { rank: 0, ranks: 1 };

    /// This shard's slice of a global batch.
    pub fn of<'a>(&self, batch: &'a [usize]) -> &'a [usize] {
        let n = batch.len();
        &batch[n * self.rank / self.ranks..n * (self.rank + 1) / self.ranks]
    }
}

/// Draws batches of views from a source.
#[derive(Clone)]
pub struct Loader {
    source: Arc<dyn Source>,
    views: Arc<dyn ViewBuilder>,
    config: LoaderConfig,
    seed: u64,
    shard: Shard,
}

impl Loader {
    /// A loader over `source` building `views` per sample, seeded by `seed`.
    pub fn new(
        source: Arc<dyn Source>,
        views: Arc<dyn ViewBuilder>,
        config: LoaderConfig,
        seed: u64,
    ) -> Result<Self, DataError> {
        if config.batch_size == 0 {
            return Err(DataError::Config {
                field: "loader.batch_size".into(),
                reason: "must be at least 1".into(),
            });
        }
        if config.drop_last && source.len() < config.batch_size {
            return Err(DataError::Config {
                field: "loader.batch_size".into(),
                reason: format!(
                    "{} is larger than the data set ({} images) with drop_last",
                    config.batch_size,
                    source.len()
                ),
            });
        }
        Ok(Self {
            source,
            views,
            config,
            seed,
            shard: Shard::WHOLE,
        })
    }

    /// The same loader yielding only `shard`'s part of every global batch (`loader.batch_size`
    /// stays the global batch, and must split into equal parts).
    pub fn sharded(mut self, shard: Shard) -> Result<Self, DataError> {
        if shard.ranks == 0 || shard.rank >= shard.ranks {
            return Err(DataError::Config {
                field: "loader".into(),
                reason: format!("rank {} of {} processes", shard.rank, shard.ranks),
            });
        }
        if !self.config.batch_size.is_multiple_of(shard.ranks) {
            return Err(DataError::Config {
                field: "loader.batch_size".into(),
                reason: format!(
                    "the global batch of {} does not split into {} equal parts (one per process)",
                    self.config.batch_size, shard.ranks
                ),
            });
        }
        self.shard = shard;
        Ok(self)
    }

    /// This process's part of every batch.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// The loader's configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The underlying source.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }

    /// Number of batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.source.len();
        let b = self.config.batch_size;
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Sample order of `epoch` (a permutation, or draws with replacement).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let n = self.source.len();
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[self.seed, epoch, u64::MAX]));
        if self.config.replacement {
            return (0..n).map(|_| rng.random_range(0..n)).collect();
        }
        let mut order: Vec<usize> = (0..n).collect();
        if self.config.shuffle {
            order.shuffle(&mut rng);
        }
        order
    }

    /// Builds the batch of the given sample indices for `epoch`.
    pub fn load(&self, epoch: u64, indices: &[usize]) -> Result<Batch, DataError> {
        let results: Vec<Result<Built, DataError>> = indices
            .par_iter()
            .map(|&i| {
                let sample = self.source.get(i)?;
                let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[self.seed, epoch, i as u64]));
                Ok((i, sample.label, self.views.build(&sample.image, &mut rng)))
            })
            .collect();
        let sizes = self.views.sizes();
        let mut batch = Batch {
            views: sizes
                .iter()
                .map(|&size| ViewBatch {
                    size,
                    data: Vec::with_capacity(indices.len() * 3 * size * size),
                })
                .collect(),
            geometry: vec![Vec::with_capacity(indices.len()); sizes.len()],
            indices: Vec::with_capacity(indices.len()),
            labels: Vec::with_capacity(indices.len()),
            skipped: Vec::new(),
        };
        for (r, &i) in results.into_iter().zip(indices) {
            match r {
                Ok((index, label, views)) => {
                    for (v, view) in views.into_iter().enumerate() {
                        batch.views[v].data.extend_from_slice(&view.image.data);
                        batch.geometry[v].push(view.geometry);
                    }
                    batch.indices.push(index);
                    batch.labels.push(label);
                }
                Err(e) if e.is_per_sample() && !self.config.strict => {
                    batch.skipped.push((i, e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(batch)
    }

    /// Batches of `epoch` from batch `start` on, prepared ahead on a background thread.
    pub fn epoch(&self, epoch: u64, start: usize) -> EpochIter {
        self.epoch_in_order(epoch, start, None)
    }

    /// Like [`Loader::epoch`], drawing samples in `order` when given (a method's own sampler;
    /// as many batches as the order fills).
    pub fn epoch_in_order(&self, epoch: u64, start: usize, order: Option<Vec<usize>>) -> EpochIter {
        let (tx, rx) = sync_channel(self.config.prefetch.max(1));
        let me = self.clone();
        std::thread::spawn(move || {
            let order = order.unwrap_or_else(|| me.order(epoch));
            let b = me.config.batch_size;
            let batches = if me.config.drop_last {
                order.len() / b
            } else {
                order.len().div_ceil(b)
            };
            for k in start..batches {
                let idx = me.shard.of(&order[k * b..((k + 1) * b).min(order.len())]);
                if tx.send(me.load(epoch, idx)).is_err() {
                    return;
                }
            }
        });
        EpochIter { rx }
    }
}

/// Iterator over one epoch's batches, fed by a prefetching thread.
pub struct EpochIter {
    rx: Receiver<Result<Batch, DataError>>,
}

impl Iterator for EpochIter {
    type Item = Result<Batch, DataError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Synthetic;
    use crate::views::MultiCrop;

    fn loader(threads: usize) -> (Loader, rayon::ThreadPool) {
        let mc = MultiCrop {
            crops: vec![crate::views::CropGroup {
                count: 2,
                size: 16,
                scale: [0.3, 1.0],
            }],
            ..Default::default()
        };
        let l = Loader::new(
            Arc::new(Synthetic::new(40, 24, 0)),
            Arc::new(mc),
            LoaderConfig {
                batch_size: 8,
                ..Default::default()
            },
            5,
        )
        .unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        (l, pool)
    }

    #[test]
    fn batches_do_not_depend_on_thread_count() {
        let (l1, p1) = loader(1);
        let (l4, p4) = loader(4);
        let a = p1.install(|| l1.load(3, &[1, 7, 9]).unwrap());
        let b = p4.install(|| l4.load(3, &[1, 7, 9]).unwrap());
        assert_eq!(a.views[1].data, b.views[1].data);
        assert_eq!(a.geometry, b.geometry);
        let c = l1.load(4, &[1, 7, 9]).unwrap();
        assert_ne!(
            a.views[0].data, c.views[0].data,
            "a new epoch draws new views"
        );
    }

    #[test]
    fn epoch_yields_every_index_once() {
        let (l, _) = loader(2);
        let mut seen: Vec<usize> = l.epoch(0, 0).flat_map(|b| b.unwrap().indices).collect();
        assert_eq!(seen.len(), 40);
        seen.sort();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        let tail: Vec<usize> = l.epoch(0, 3).flat_map(|b| b.unwrap().indices).collect();
        assert_eq!(tail, l.order(0)[24..40].to_vec());
    }
}
