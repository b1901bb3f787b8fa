//! A weight gradient summed over a fixed partition of the batch: one partial sum per group
//! (one group per thread), added in group order, so the result does not depend on scheduling.

use rayon::prelude::*;

/// A batch cut into chunks of `nb` images, and the chunks into at most `threads` groups of
/// consecutive chunks: the fixed partition a weight gradient sums over.
#[derive(Debug, Clone, Copy)]
pub struct ChunkGroups {
    batch: usize,
    nb: usize,
    chunks: usize,
    per_group: usize,
    /// Number of groups.
    pub groups: usize,
}

impl ChunkGroups {
    /// `batch` images in chunks of `nb` (≥ 1), over `threads` groups at the most.
    pub fn new(batch: usize, nb: usize, threads: usize) -> Self {
        let chunks = batch.div_ceil(nb);
        let groups = threads.min(chunks).max(1);
        Self {
            batch,
            nb,
            chunks,
            per_group: chunks.div_ceil(groups),
            groups,
        }
    }

    /// The chunks of group `grp` in order, each as (first image, images).
    pub fn chunks(&self, grp: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        (grp * self.per_group..((grp + 1) * self.per_group).min(self.chunks)).map(|c| {
            let i0 = c * self.nb;
            (i0, self.nb.min(self.batch - i0))
        })
    }
}

/// `out = Σ_grp partial(grp)` over groups `0..groups`, added in group order.
/// `partial(grp, acc)` overwrites `acc` (as long as `out`) with group `grp`'s sum; group 0
/// writes straight into `out` while the others fill their own buffers in parallel.
pub fn sum_groups(groups: usize, out: &mut [f32], partial: impl Fn(usize, &mut [f32]) + Sync) {
    if groups <= 1 {
        return partial(0, out);
    }
    let len = out.len();
    let ((), rest) = rayon::join(
        || partial(0, out),
        || {
            (1..groups)
                .into_par_iter()
                .map(|grp| {
                    let mut acc = vec![0.0; len];
                    partial(grp, &mut acc);
                    acc
                })
                .collect::<Vec<_>>()
        },
    );
    for s in &rest {
        out.iter_mut().zip(s).for_each(|(d, v)| *d += *v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_added_in_order_whatever_the_count() {
        for groups in [1, 2, 3, 7] {
            let mut out = vec![f32::NAN; 4];
            sum_groups(groups, &mut out, |g, acc| {
                acc.iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v = (g * 10 + i) as f32)
            });
            let want: Vec<f32> = (0..4)
                .map(|i| (0..groups).map(|g| (g * 10 + i) as f32).sum())
                .collect();
            assert_eq!(out, want, "{groups} groups");
        }
    }
}
