//! BatchNorm with batch statistics on f32 slices laid out N × C × S (S = spatial size, 1 for
//! a 2-d input): forward and backward in two passes each.
//!
//! Pass 1 reduces per channel (rayon over channels, f32 lanes summed into f64 per row: the
//! result does not depend on scheduling); pass 2 is elementwise (rayon over images).
//! SyncBatchNorm: given a [`World`], the per-channel sums (and the count) are summed over its
//! ranks between the two passes, so every rank normalises with the global batch's statistics.

use crate::collective::{Collective, World};
use rayon::prelude::*;

/// Batch layout: images, channels, elements per channel and image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// N.
    pub n: usize,
    /// C.
    pub c: usize,
    /// S.
    pub s: usize,
}

impl Layout {
    fn count(&self) -> f64 {
        (self.n * self.s) as f64
    }

    fn rows<'a>(&self, x: &'a [f32], ch: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (c, s) = (self.c, self.s);
        (0..self.n).map(move |i| &x[(i * c + ch) * s..(i * c + ch + 1) * s])
    }
}

/// Σ a and Σ (a − shift)·(b − shift2) over a row, in 8 f32 lanes.
fn row_sums(a: &[f32], b: &[f32], shift_a: f32, shift_b: f32) -> (f64, f64) {
    let mut sa = [0f32; 8];
    let mut sab = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for l in 0..8 {
            let u = xa[l] - shift_a;
            sa[l] += u;
            sab[l] += u * (xb[l] - shift_b);
        }
    }
    let mut ta: f64 = sa.iter().map(|v| *v as f64).sum();
    let mut tab: f64 = sab.iter().map(|v| *v as f64).sum();
    for (xa, xb) in ra.iter().zip(rb) {
        let u = xa - shift_a;
        ta += u as f64;
        tab += (u * (xb - shift_b)) as f64;
    }
    (ta, tab)
}

/// Per channel: (Σ (a − sa), Σ (a − sa)·(b − sb)) over the batch, with the shifts `shifts(ch)`,
/// channels in parallel, rows summed in order.
fn channel_sums(
    l: Layout,
    a: &[f32],
    b: &[f32],
    shifts: impl Fn(usize) -> (f32, f32) + Sync,
) -> Vec<(f64, f64)> {
    (0..l.c)
        .into_par_iter()
        .map(|ch| {
            let (sa, sb) = shifts(ch);
            l.rows(a, ch)
                .zip(l.rows(b, ch))
                .map(|(ra, rb)| row_sums(ra, rb, sa, sb))
                .fold((0.0, 0.0), |(u, v), (p, q)| (u + p, v + q))
        })
        .collect()
}

/// Coefficients of a second input: `out += k_c · (z − m_c)`.
struct Second<'a> {
    z: &'a [f32],
    k: &'a [f32],
    m: &'a [f32],
}

/// Applies `out = a_c · x + b_c` (plus the second input's term when given) per channel.
fn affine(l: Layout, x: &[f32], z: Option<Second<'_>>, a: &[f32], b: &[f32], out: &mut [f32]) {
    let per_image = l.c * l.s;
    out.par_chunks_mut(per_image)
        .enumerate()
        .for_each(|(i, oi)| {
            let xi = &x[i * per_image..(i + 1) * per_image];
            for ch in 0..l.c {
                let r = ch * l.s..(ch + 1) * l.s;
                let (ac, bc) = (a[ch], b[ch]);
                match &z {
                    None => oi[r.clone()]
                        .iter_mut()
                        .zip(&xi[r])
                        .for_each(|(o, v)| *o = ac * v + bc),
                    Some(sec) => {
                        let zi = &sec.z[i * per_image..(i + 1) * per_image];
                        let (kc, mc) = (sec.k[ch], sec.m[ch]);
                        oi[r.clone()]
                            .iter_mut()
                            .zip(&xi[r.clone()])
                            .zip(&zi[r])
                            .for_each(|((o, v), w)| *o = ac * v + kc * (w - mc) + bc);
                    }
                }
            }
        });
}

/// Per-channel pairs and the count, summed over `sync`'s ranks when given: (pairs, count).
fn global_sums(l: Layout, sums: Vec<(f64, f64)>, sync: Option<&World>) -> (Vec<(f64, f64)>, f64) {
    let Some(world) = sync else {
        return (sums, l.count());
    };
    let mut flat: Vec<f64> = sums.iter().flat_map(|&(a, b)| [a, b]).collect();
    flat.push(l.count());
    world.sum_host_f64(&mut flat);
    let count = flat[2 * l.c];
    (
        flat.chunks_exact(2)
            .take(l.c)
            .map(|p| (p[0], p[1]))
            .collect(),
        count,
    )
}

/// Normalises `x` with the per-channel mean and biased variance of its batch (of the global
/// batch over `sync`'s ranks when given), then scales by `gamma` and shifts by `beta`. Returns
/// (mean, biased variance) per channel.
pub fn forward(
    l: Layout,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    y: &mut [f32],
    sync: Option<&World>,
) -> (Vec<f32>, Vec<f32>) {
    // Shifted sums: each channel's first element keeps Σx² − (Σx)²/n well conditioned. Over
    // ranks, rank 0's first elements (the global batch's first image, as one process has).
    let mut shifts: Vec<f32> = (0..l.c)
        .map(|ch| {
            let first = l.rows(x, ch).next().and_then(|r| r.first().copied());
            first.unwrap_or(0.0)
        })
        .collect();
    if let Some(world) = sync {
        world.broadcast_host(&mut shifts, 0);
    }
    let shift = |ch: usize| shifts[ch];
    let (sums, count) = global_sums(l, channel_sums(l, x, x, |ch| (shift(ch), shift(ch))), sync);
    let stats: Vec<(f64, f64)> = sums
        .into_iter()
        .enumerate()
        .map(|(ch, (s, ss))| {
            let m = s / count;
            let var = (ss / count - m * m).max(0.0);
            (shift(ch) as f64 + m, var)
        })
        .collect();
    let mut a = vec![0f32; l.c];
    let mut b = vec![0f32; l.c];
    for ch in 0..l.c {
        let (m, v) = stats[ch];
        let inv = 1.0 / (v + epsilon).sqrt();
        a[ch] = (gamma[ch] as f64 * inv) as f32;
        b[ch] = (beta[ch] as f64 - m * gamma[ch] as f64 * inv) as f32;
    }
    affine(l, x, None, &a, &b, y);
    (
        stats.iter().map(|s| s.0 as f32).collect(),
        stats.iter().map(|s| s.1 as f32).collect(),
    )
}

/// Gradients of [`forward`] given the output gradient `dy` and the statistics it returned:
/// (dx into `dx`, dgamma, dbeta). With `sync`, dx uses the sums over all ranks (as the
/// statistics did); dgamma and dbeta stay this rank's, averaged with the other gradients.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    l: Layout,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
    dx: &mut [f32],
    sync: Option<&World>,
) -> (Vec<f32>, Vec<f32>) {
    let local = channel_sums(l, dy, x, |ch| (0.0, mean[ch]));
    let (sums, n) = global_sums(l, local.clone(), sync);
    let mut k1 = vec![0f32; l.c];
    let mut k2 = vec![0f32; l.c];
    let mut k3 = vec![0f32; l.c];
    let mut dgamma = vec![0f32; l.c];
    let mut dbeta = vec![0f32; l.c];
    for ch in 0..l.c {
        let (sdy, sdyx) = sums[ch];
        let (local_sdy, local_sdyx) = local[ch];
        let inv = 1.0 / (var[ch] as f64 + epsilon).sqrt();
        let g = gamma[ch] as f64;
        // dx = γ·inv·(dy − Σdy/n − (x − μ)·inv²·Σdy(x − μ)/n) = k1·dy + k2·(x − μ) + k3
        let c1 = g * inv;
        k1[ch] = c1 as f32;
        k2[ch] = (-g * inv * inv * inv * sdyx / n) as f32;
        k3[ch] = (-c1 * sdy / n) as f32;
        dgamma[ch] = (local_sdyx * inv) as f32;
        dbeta[ch] = local_sdy as f32;
    }
    let second = Second {
        z: x,
        k: &k2,
        m: mean,
    };
    affine(l, dy, Some(second), &k1, &k3, dx);
    (dgamma, dbeta)
}
