//! DeepCluster's epoch order: the same number of draws from every non-empty cluster.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::SeedableRng;

/// An epoch of `labels.len()` indices drawing ⌊N/K⌋ + 1 samples per non-empty cluster (with
/// replacement only when the cluster is that small), shuffled and cut to N (OpenSelfSup's
/// `set_uniform_indices`).
pub fn uniform_over_clusters(labels: &[usize], k: usize, seed: u64) -> Vec<usize> {
    let n = labels.len();
    let per = n / k.max(1) + 1;
    let mut lists = vec![Vec::new(); k];
    for (i, &l) in labels.iter().enumerate() {
        if l < k {
            lists[l].push(i);
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(per * k);
    for l in lists.iter().filter(|l| !l.is_empty()) {
        if l.len() <= per {
            for _ in 0..per {
                out.push(*l.choose(&mut rng).expect("non-empty"));
            }
        } else {
            out.extend(l.choose_multiple(&mut rng, per).copied());
        }
    }
    out.shuffle(&mut rng);
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_clusters_are_drawn_equally_often() {
        // Cluster 0 has 90 members, cluster 1 has 10.
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i >= 90)).collect();
        let order = uniform_over_clusters(&labels, 2, 3);
        assert_eq!(order.len(), 100);
        let from_small = order.iter().filter(|&&i| i >= 90).count();
        assert!((45..=51).contains(&from_small), "{from_small}");
        let again = uniform_over_clusters(&labels, 2, 3);
        assert_eq!(order, again);
    }
}
