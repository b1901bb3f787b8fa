//! A weight gradient summed over a fixed partition of the batch: one partial sum per group
//! (one group per thread), added in group order, so the result does not depend on scheduling.

use rayon::prelude::*;

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
