//! `cluster_memory`: spherical k-means of one memory-bank slot from given initial rows,
//! centroid sums and counts summed over the ranks, an empty cluster keeping its centroid.

use burn::tensor::{Tensor, TensorData};
use protoclust_nn::collective::{Collective, World};
use protoclust_nn::ops::host;

/// The target of an image that is in no rank's bank (PyTorch's ignore index).
pub const IGNORE: i64 = -100;

/// One head's clustering of a bank slot.
pub struct BankClustering {
    /// The final unit centroids (K × D): the head's prototypes.
    pub centroids: Tensor<2>,
    /// Each bank row's cluster (the last E step's argmax).
    pub assignments: Vec<usize>,
    /// The centroids every E step used, first to last (with `keep_trace`).
    pub trace: Vec<Tensor<2>>,
}

/// Rows scaled to unit length (norm floored at 1e-12, as `F.normalize`).
fn normalize_rows(v: &mut [f64], dim: usize) {
    for r in v.chunks_exact_mut(dim) {
        let n = r.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        r.iter_mut().for_each(|x| *x /= n);
    }
}

/// Spherical k-means of `bank` (S × D unit rows; `rows`: the same values on the host) from
/// `init` (K × D): `iterations` rounds of E step (argmax of dot products) and M step (member
/// mean over every rank, an empty cluster keeps its centroid, then unit length), and a last E
/// step for the assignments.
pub fn cluster_bank(
    bank: &Tensor<2>,
    rows: &[f32],
    init: Tensor<2>,
    iterations: usize,
    world: &World,
    keep_trace: bool,
) -> BankClustering {
    let [_, dim] = bank.dims();
    let [k, _] = init.dims();
    let device = bank.device();
    let mut centroids = init;
    let mut trace = Vec::new();
    let mut assignments = Vec::new();
    for it in 0..=iterations {
        if keep_trace {
            trace.push(centroids.clone());
        }
        assignments =
            host::to_indices(bank.clone().matmul(centroids.clone().transpose()).argmax(1));
        if it == iterations {
            break;
        }
        // counts then sums, one host all-reduce.
        let mut acc = vec![0f64; k + k * dim];
        for (r, &a) in rows.chunks_exact(dim).zip(&assignments) {
            acc[a] += 1.0;
            let s = &mut acc[k + a * dim..k + (a + 1) * dim];
            s.iter_mut().zip(r).for_each(|(s, &x)| *s += x as f64);
        }
        world.sum_host_f64(&mut acc);
        let old = host::to_f32(centroids);
        let mut next: Vec<f64> = old.iter().map(|&x| x as f64).collect();
        for c in 0..k {
            let n = acc[c];
            if n > 0.0 {
                for d in 0..dim {
                    next[c * dim + d] = acc[k + c * dim + d] / n;
                }
            }
        }
        normalize_rows(&mut next, dim);
        centroids = Tensor::from_data(
            TensorData::new(next.iter().map(|&x| x as f32).collect::<Vec<_>>(), [k, dim]),
            &device,
        );
    }
    BankClustering {
        centroids,
        assignments,
        trace,
    }
}

/// Every data-set image's target for one head: the cluster of its bank row on any rank
/// (`index`, `assignments`: this rank's rows; all ranks' are gathered), [`IGNORE`] for images
/// in no bank.
pub fn dataset_targets(
    dataset_len: usize,
    index: &[i64],
    assignments: &[usize],
    world: &World,
) -> Vec<i64> {
    let mut pairs: Vec<f32> = Vec::with_capacity(2 * index.len());
    for (&i, &a) in index.iter().zip(assignments) {
        pairs.push(i as f32);
        pairs.push(a as f32);
    }
    let all = world.all_gather_host(&pairs);
    let mut targets = vec![IGNORE; dataset_len];
    for p in all.chunks_exact(2) {
        if let Some(t) = targets.get_mut(p[0] as usize) {
            *t = p[1] as i64;
        }
    }
    targets
}
