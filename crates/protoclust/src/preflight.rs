//! Configs that cannot work, refused once the training data is open and before the first step:
//! each message names the field and the numbers.

use crate::config::RunConfig;
use anyhow::{bail, Result};
use protoclust_data::loader::Loader;

/// A config refused against its data (the message names the field and the numbers).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Refuses settings that contradict the data set of `loader` (its size and batches per epoch).
pub fn check(cfg: &RunConfig, loader: &Loader) -> Result<()> {
    refusals(cfg, loader).map_err(|e| Refused(e.to_string()).into())
}

fn refusals(cfg: &RunConfig, loader: &Loader) -> Result<()> {
    let images = loader.source().len();
    let iterations = cfg
        .train
        .epochs
        .saturating_mul(loader.batches_per_epoch() as u64);
    match cfg.method.as_str() {
        "odc" => clusters("odc.clusters", cfg.odc.clusters, images),
        "deepcluster" => clusters("deepcluster.clusters", cfg.deepcluster.clusters, images),
        "swav" => {
            let s = &cfg.swav;
            let batch = cfg.loader.batch_size.max(1);
            let queue = s.queue_length / batch * batch;
            if queue > images {
                bail!(
                    "swav.queue_length = {} is longer than an epoch ({images} images): the \
                     queue would hold the same images several times; use at most {images}",
                    s.queue_length
                );
            }
            if iterations > 0 && !s.fixed_prototypes && s.freeze_prototypes_iterations >= iterations
            {
                bail!(
                    "swav.freeze_prototypes_iterations = {} covers the whole run ({iterations} \
                     iterations: {} epochs x {} batches): the prototypes would never be \
                     trained; freeze for about an epoch ({}), or set swav.fixed_prototypes = true",
                    s.freeze_prototypes_iterations,
                    cfg.train.epochs,
                    loader.batches_per_epoch(),
                    loader.batches_per_epoch()
                );
            }
            Ok(())
        }
        "deepclusterv2" => {
            // Rank 0's bank: one epoch's full batches.
            let b = cfg.loader.batch_size.max(1);
            let bank = images / b * b;
            match cfg.deepclusterv2.prototypes.iter().max() {
                Some(&k) if k > bank => bail!(
                    "deepclusterv2.prototypes: {k} clusters but the memory bank holds {bank} \
                     images (full batches of {b} from {images}): k-means starts from {k} \
                     distinct bank rows; use at most {bank}"
                ),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

fn clusters(field: &str, k: usize, images: usize) -> Result<()> {
    if k >= images {
        bail!(
            "{field} = {k} but the data set has {images} images: k-means needs fewer clusters \
             than images (every image its own cluster teaches nothing)"
        );
    }
    Ok(())
}
