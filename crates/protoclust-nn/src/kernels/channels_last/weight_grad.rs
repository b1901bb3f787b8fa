//! The weight gradient: a register tile holds 32 output channels (two 16-lane vectors of one
//! pixel's dY) × 12 inputs broadcast from the padded image (4 channels at 3 taps of one kernel
//! row, or 12 channels of a kernel one tap wide), accumulated over every output pixel of the
//! chunk: `dW[o][c][kh][kw] = Σ_n Σ_(oh, ow) dY[n][oh][ow][o] · X[n][oh·sh + kh][ow·sw + kw][c]`.

use super::{applies, pack_grad, pack_image, slot, Layout, LANES};
use crate::kernels::geometry::ConvGeometry;
use crate::kernels::isa::VectorWidth;
use crate::kernels::partition::sum_groups;
use crate::kernels::scratch::with_scratch;

/// Inputs broadcast per register tile (× 2 vectors of output channels = 24 accumulators).
const BROADCASTS: usize = 12;

/// The pixel walk of one chunk, shared by every tile.
#[derive(Debug, Clone, Copy)]
struct Walk {
    images: usize,
    out_h: usize,
    out_w: usize,
    /// Floats between images of the channels-last input.
    x_image: usize,
    /// Floats between output rows, in the input (stride · pitch · C).
    x_row: usize,
    /// Floats between output pixels of a row, in the input (stride · C).
    x_col: usize,
    /// Input channels C: floats between neighbouring taps of a kernel row.
    c: usize,
    /// Output channels O: floats between pixels of the output gradient.
    o: usize,
    /// Kernel height and width.
    k: [usize; 2],
    /// Row pitch (in pixels) of the packed image.
    pitch: usize,
}

impl Walk {
    fn of(g: &ConvGeometry, lay: &Layout, images: usize) -> Self {
        Self {
            images,
            out_h: g.out_h,
            out_w: g.out_w,
            x_image: lay.image,
            x_row: lay.stride[0] * lay.pitch * g.in_c,
            x_col: lay.stride[1] * g.in_c,
            c: g.in_c,
            o: g.out_c,
            k: [g.k_h, g.k_w],
            pitch: lay.pitch,
        }
    }
}

/// `acc[slot(r, o)] += Σ_pixels dY[p][o] · X[p + tap][c]` (r = (kh·KW + kw)·C + c) over the chunk's
/// `images` channels-last images `xt` and gradients `dyt`.
fn products(
    g: &ConvGeometry,
    lay: &Layout,
    acc: &mut [f32],
    xt: &[f32],
    dyt: &[f32],
    images: usize,
) {
    assert!(
        acc.len() == g.patch_len() * g.out_c
            && xt.len() >= images * lay.image
            && dyt.len() >= images * lay.grad
            && applies(g),
        "channels_last: operands do not match the geometry"
    );
    let walk = Walk::of(g, lay, images);
    match VectorWidth::current() {
        // SAFETY: AVX-512F is present (`current` is never wider than the CPU); the lengths were
        // checked above, and every tap of every output pixel lies inside its padded image
        // ((OH − 1)·s + KH ≤ rows, (OW − 1)·s + KW ≤ pitch by the geometry).
        #[cfg(target_arch = "x86_64")]
        VectorWidth::Avx512 => unsafe { avx512::products(&walk, acc, xt, dyt) },
        _ => portable::products(&walk, acc, xt, dyt),
    }
}

/// `dw (O × C × KH × KW) = Σ_n dy[n] · patches(x[n])ᵀ` for a geometry this kernel [`applies`]
/// to, summed over a fixed partition of the batch (one partial sum per group, added in group
/// order: the result does not depend on scheduling).
pub fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let lay = Layout::of(g);
    let (o, k) = (g.out_c, g.patch_len());
    let groups = rayon::current_num_threads().min(g.batch).max(1);
    let per_group = g.batch.div_ceil(groups);
    let nb = lay.images_per_chunk(g, per_group);
    let mut sums = vec![0.0; k * o];
    sum_groups(groups, &mut sums, |grp, acc| {
        acc.fill(0.0);
        let end = ((grp + 1) * per_group).min(g.batch);
        for i0 in (grp * per_group..end).step_by(nb) {
            let count = nb.min(end - i0);
            with_scratch(count * (lay.image + lay.grad), |buf| {
                let (xt, dyt) = buf.split_at_mut(count * lay.image);
                for s in 0..count {
                    let n = i0 + s;
                    let xi = &x[n * g.in_len()..][..g.in_len()];
                    pack_image(g, &lay, xi, &mut xt[s * lay.image..][..lay.image]);
                    let dyi = &dy[n * g.out_len()..][..g.out_len()];
                    pack_grad(o, g.out_pixels(), dyi, &mut dyt[s * lay.grad..][..lay.grad]);
                }
                products(g, &lay, acc, xt, dyt, count);
            });
        }
    });
    // sums holds patch row (kh, kw, c) = t·C + c at `slot`; dw is O × (c, kh, kw).
    let taps = g.k_h * g.k_w;
    for (oc, row) in dw.chunks_exact_mut(k).enumerate() {
        for c in 0..g.in_c {
            for t in 0..taps {
                row[c * taps + t] = sums[slot(k, o, t * g.in_c + c, oc)];
            }
        }
    }
}

/// The same sums in plain Rust (any CPU).
mod portable {
    use super::super::BLOCK;
    use super::{slot, Walk};

    pub fn products(w: &Walk, acc: &mut [f32], xt: &[f32], dyt: &[f32]) {
        let (c, o, [kh_n, kw_n]) = (w.c, w.o, w.k);
        let k = c * kh_n * kw_n;
        for i in 0..w.images {
            for oh in 0..w.out_h {
                for ow in 0..w.out_w {
                    let d = &dyt[((i * w.out_h + oh) * w.out_w + ow) * o..][..o];
                    let x0 = i * w.x_image + oh * w.x_row + ow * w.x_col;
                    for kh in 0..kh_n {
                        for kw in 0..kw_n {
                            let xs = &xt[x0 + (kh * w.pitch + kw) * c..][..c];
                            let t = kh * kw_n + kw;
                            for (ch, xv) in xs.iter().enumerate() {
                                for o0 in (0..o).step_by(BLOCK) {
                                    let bw = BLOCK.min(o - o0);
                                    let a = &mut acc[slot(k, o, t * c + ch, o0)..][..bw];
                                    let d = &d[o0..o0 + bw];
                                    a.iter_mut().zip(d).for_each(|(s, dv)| *s += dv * xv);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{slot, Walk, BROADCASTS, LANES};
    use std::arch::x86_64::*;

    /// One register tile: `A` vectors of output channels from `acc`'s column, × `CB` channels
    /// at `TW` neighbouring taps of one kernel row, summed over every pixel of the walk.
    /// `acc` points at the tile's first sum ([`slot`]), `x` at its first input of pixel 0,
    /// `dy` at its first output channel of pixel 0.
    #[inline(always)]
    unsafe fn tile<const A: usize, const CB: usize, const TW: usize>(
        w: &Walk,
        acc: *mut f32,
        x: *const f32,
        dy: *const f32,
    ) {
        let at = |t: usize, j: usize, v: usize| acc.add((t * w.c + j) * A * LANES + v * LANES);
        let mut s: [[[__m512; A]; CB]; TW] = std::array::from_fn(|t| {
            std::array::from_fn(|j| std::array::from_fn(|v| _mm512_loadu_ps(at(t, j, v))))
        });
        let mut dp = dy;
        for i in 0..w.images {
            for oh in 0..w.out_h {
                let mut xp = x.add(i * w.x_image + oh * w.x_row);
                for _ in 0..w.out_w {
                    let d: [__m512; A] =
                        std::array::from_fn(|v| _mm512_loadu_ps(dp.add(v * LANES)));
                    for (t, st) in s.iter_mut().enumerate() {
                        let xr = xp.add(t * w.c);
                        for (j, sj) in st.iter_mut().enumerate() {
                            let b = _mm512_set1_ps(*xr.add(j));
                            for v in 0..A {
                                sj[v] = _mm512_fmadd_ps(d[v], b, sj[v]);
                            }
                        }
                    }
                    dp = dp.add(w.o);
                    xp = xp.add(w.x_col);
                }
            }
        }
        for (t, st) in s.iter().enumerate() {
            for (j, sj) in st.iter().enumerate() {
                for (v, sv) in sj.iter().enumerate() {
                    _mm512_storeu_ps(at(t, j, v), *sv);
                }
            }
        }
    }

    /// [`super::products`] on AVX-512F (bounds checked by the caller).
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn products(w: &Walk, acc: &mut [f32], xt: &[f32], dyt: &[f32]) {
        let (c, o, [kh_n, kw_n]) = (w.c, w.o, w.k);
        let k = c * kh_n * kw_n;
        // Three taps of a kernel row per tile where the row splits into threes.
        let tw = if kw_n.is_multiple_of(3) { 3 } else { 1 };
        let cb = BROADCASTS / tw;
        let (ap, xp, dp) = (acc.as_mut_ptr(), xt.as_ptr(), dyt.as_ptr());
        for o0 in (0..o).step_by(2 * LANES) {
            let two = o - o0 >= 2 * LANES;
            for kh in 0..kh_n {
                for kw0 in (0..kw_n).step_by(tw) {
                    let mut c0 = 0;
                    while c0 < c {
                        let a = ap.add(slot(k, o, (kh * kw_n + kw0) * c + c0, o0));
                        let x = xp.add((kh * w.pitch + kw0) * c + c0);
                        let d = dp.add(o0);
                        // Whole tiles, then tiles of 4 channels, then single channels.
                        let step = [cb, 4, 1].into_iter().find(|&n| c - c0 >= n).unwrap_or(1);
                        match (two, tw, step) {
                            (true, 3, 4) => tile::<2, 4, 3>(w, a, x, d),
                            (true, 3, _) => tile::<2, 1, 3>(w, a, x, d),
                            (true, _, 12) => tile::<2, 12, 1>(w, a, x, d),
                            (true, _, 4) => tile::<2, 4, 1>(w, a, x, d),
                            (true, _, _) => tile::<2, 1, 1>(w, a, x, d),
                            (false, 3, 4) => tile::<1, 4, 3>(w, a, x, d),
                            (false, 3, _) => tile::<1, 1, 3>(w, a, x, d),
                            (false, _, 12) => tile::<1, 12, 1>(w, a, x, d),
                            (false, _, 4) => tile::<1, 4, 1>(w, a, x, d),
                            (false, _, _) => tile::<1, 1, 1>(w, a, x, d),
                        }
                        c0 += step;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::reference::{self, assert_close, values};
    use super::super::cases::{assert_same, geometry, CASES};
    use super::*;

    #[test]
    fn matches_a_direct_weight_gradient() {
        for case in CASES {
            let (g, what) = geometry(case);
            assert!(applies(&g), "{what}");
            let x = values(g.batch * g.in_len(), 0.3);
            let dy = values(g.batch * g.out_len(), 2.9);
            let mut dw = vec![f32::NAN; g.out_c * g.patch_len()];
            weight_grad(&g, &x, &dy, &mut dw);
            assert_close(&what, &dw, &reference::weight_grad(&g, &x, &dy));
        }
    }

    #[test]
    fn the_dispatched_products_match_the_portable_ones() {
        for case in CASES {
            let (g, what) = geometry(case);
            let lay = Layout::of(&g);
            let n = g.batch;
            let x = values(n * g.in_len(), 0.7);
            let dy = values(n * g.out_len(), 1.3);
            let mut xt = vec![0.0; n * lay.image];
            let mut dyt = vec![0.0; n * lay.grad];
            for i in 0..n {
                pack_image(
                    &g,
                    &lay,
                    &x[i * g.in_len()..][..g.in_len()],
                    &mut xt[i * lay.image..][..lay.image],
                );
                pack_grad(
                    g.out_c,
                    g.out_pixels(),
                    &dy[i * g.out_len()..][..g.out_len()],
                    &mut dyt[i * lay.grad..][..lay.grad],
                );
            }
            let start = values(g.patch_len() * g.out_c, 5.0);
            let mut got = start.clone();
            products(&g, &lay, &mut got, &xt, &dyt, n);
            let mut want = start;
            portable::products(&Walk::of(&g, &lay, n), &mut want, &xt, &dyt);
            assert_same(&what, &got, &want);
        }
    }

    #[test]
    fn refuses_output_channels_that_are_not_whole_vectors() {
        let g = ConvGeometry::new([1, 4, 5, 5], [24, 4, 3, 3], [1, 1], [(1, 1), (1, 1)]).unwrap();
        assert!(!applies(&g));
    }
}
