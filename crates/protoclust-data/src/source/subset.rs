//! A view of some samples of another source, and class-balanced draws of such samples.

use super::{Sample, Source};
use crate::DataError;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::sync::Arc;

/// The samples `indices` of `inner`, renumbered 0..len (labels and class count unchanged).
pub struct Subset {
    inner: Arc<dyn Source>,
    indices: Vec<usize>,
}

impl Subset {
    /// Wraps `inner`; every index must be below `inner.len()`.
    pub fn new(inner: Arc<dyn Source>, indices: Vec<usize>) -> Result<Self, DataError> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= inner.len()) {
            return Err(DataError::Config {
                field: "subset".into(),
                reason: format!("index {bad} is outside the {} samples", inner.len()),
            });
        }
        Ok(Self { inner, indices })
    }

    /// Source index of each subset row.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
}

impl Source for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let i = *self.indices.get(index).ok_or(DataError::Config {
            field: "subset".into(),
            reason: format!(
                "index {index} is outside the {} samples",
                self.indices.len()
            ),
        })?;
        let mut s = self.inner.get(i)?;
        s.index = index;
        Ok(s)
    }

    fn num_classes(&self) -> Option<usize> {
        self.inner.num_classes()
    }

    fn label(&self, index: usize) -> Option<u32> {
        self.indices.get(index).and_then(|&i| self.inner.label(i))
    }
    fn path(&self, index: usize) -> Option<&std::path::Path> {
        self.indices.get(index).and_then(|&i| self.inner.path(i))
    }
}

/// Splits the labelled samples of `source` into (picked, rest): `fraction` of every class
/// (rounded, at least one per class) drawn with `seed`; both lists sorted.
pub fn balanced_split(
    source: &dyn Source,
    fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    let classes = source.num_classes().ok_or(DataError::Config {
        field: "labels".into(),
        reason: "a class-balanced subset needs a labelled source".into(),
    })?;
    let labels: Vec<Option<u32>> = (0..source.len()).map(|i| source.label(i)).collect();
    balanced_split_labels(&labels, classes, fraction, seed)
}

/// [`balanced_split`] of samples given by their labels alone (`None`: unlabelled, never
/// picked); labels at or above `classes` are left out of both lists.
pub fn balanced_split_labels(
    labels: &[Option<u32>],
    classes: usize,
    fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(DataError::Config {
            field: "fraction".into(),
            reason: format!("{fraction}: expected a value in (0, 1)"),
        });
    }
    let mut by_class = vec![Vec::new(); classes];
    for (i, l) in labels.iter().enumerate() {
        if let Some(l) = l {
            if let Some(v) = by_class.get_mut(*l as usize) {
                v.push(i);
            }
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut picked, mut rest) = (Vec::new(), Vec::new());
    for mut members in by_class.into_iter().filter(|m| !m.is_empty()) {
        members.shuffle(&mut rng);
        let take = ((members.len() as f64 * fraction).round() as usize).clamp(1, members.len());
        picked.extend_from_slice(&members[..take]);
        rest.extend_from_slice(&members[take..]);
    }
    picked.sort_unstable();
    rest.sort_unstable();
    Ok((picked, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Synthetic;

    #[test]
    fn balanced_split_takes_the_fraction_of_every_class_and_depends_on_the_seed() {
        let src = Synthetic::new(600, 8, 0);
        let classes = src.num_classes().unwrap();
        let (picked, rest) = balanced_split(&src, 0.1, 3).unwrap();
        assert_eq!(picked.len() + rest.len(), 600);
        let mut per_class = vec![0usize; classes];
        let mut totals = vec![0usize; classes];
        picked
            .iter()
            .for_each(|&i| per_class[src.label(i).unwrap() as usize] += 1);
        (0..600).for_each(|i| totals[src.label(i).unwrap() as usize] += 1);
        for c in 0..classes {
            let want = ((totals[c] as f64 * 0.1).round() as usize).max(1);
            assert_eq!(per_class[c], want, "class {c}");
        }
        assert_eq!(balanced_split(&src, 0.1, 3).unwrap().0, picked);
        assert_ne!(balanced_split(&src, 0.1, 4).unwrap().0, picked);
        assert!(balanced_split(&src, 1.5, 3).is_err());
        let sub = Subset::new(Arc::new(src), picked.clone()).unwrap();
        assert_eq!(sub.len(), picked.len());
        assert_eq!(sub.get(0).unwrap().index, 0);
    }
}
