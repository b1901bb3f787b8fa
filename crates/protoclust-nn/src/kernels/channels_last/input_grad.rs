//! `dx` from `w` and `dy` on channels-last copies, any stride: for each tap, a register tile
//! of 12 output pixels × 32 input channels is summed over the output channels and added onto
//! the zero-padded channels-last input gradient at the pixels that tap reads.

use super::tile::{by_tile, next_tile};
use super::{
    applies_input_grad, pack_grad, pack_weights, slot, unpack_image, Blocks, Layout, BLOCK,
};
use crate::kernels::geometry::ConvGeometry;
use crate::kernels::isa::VectorWidth;
use crate::kernels::scratch::with_scratch;
use rayon::prelude::*;

/// `dx (N × C × H × W) = Σ_(o, tap) dy · w` for a geometry [`applies_input_grad`] accepts.
///
/// # Panics
/// When `g` does not apply or a slice does not match it (a caller bug).
pub fn input_grad(g: &ConvGeometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        applies_input_grad(g)
            && dx.len() == g.batch * g.in_len()
            && w.len() == g.out_c * g.patch_len()
            && dy.len() == g.batch * g.out_len(),
        "channels_last::input_grad: operands do not match the geometry"
    );
    let lay = Layout::padded(g);
    let packed = pack_weights(g, w, Blocks::Inputs);
    let spread = g.batch.div_ceil(rayon::current_num_threads());
    let nb = lay.images_per_chunk(g, spread);
    let (o, p) = (g.out_c, g.out_pixels());
    dx.par_chunks_mut(nb * g.in_len())
        .zip(dy.par_chunks(nb * g.out_len()))
        .for_each(|(dxc, dyc)| {
            let count = dxc.len() / g.in_len();
            with_scratch(count * (lay.image + lay.grad), |buf| {
                let (xt, dyt) = buf.split_at_mut(count * lay.image);
                xt.fill(0.0);
                for (dyi, dyti) in dyc
                    .chunks_exact(g.out_len())
                    .zip(dyt.chunks_exact_mut(lay.grad))
                {
                    pack_grad(o, p, dyi, dyti);
                }
                products(g, &lay, packed.as_slice(), xt, dyt, count);
                for (xti, dxi) in xt
                    .chunks_exact(lay.image)
                    .zip(dxc.chunks_exact_mut(g.in_len()))
                {
                    unpack_image(g, &lay, xti, dxi);
                }
            })
        });
}

/// `xt[q + tap][c] += Σ_o dY[q][o] · w[o][c][tap]` for every output pixel q of the chunk's
/// `images` channels-last output gradients `dyt`.
fn products(
    g: &ConvGeometry,
    lay: &Layout,
    packed: &[f32],
    xt: &mut [f32],
    dyt: &[f32],
    images: usize,
) {
    assert!(
        packed.len() >= g.patch_len() * g.out_c
            && xt.len() >= images * lay.image
            && dyt.len() >= images * lay.grad,
        "channels_last::input_grad: scratch does not match the geometry"
    );
    match VectorWidth::current() {
        // SAFETY: AVX-512F is present (`current` is never wider than the CPU); the lengths were
        // checked above, every tap of every output pixel lies inside its padded image
        // ((OH − 1)·s + KH ≤ rows, (OW − 1)·s + KW ≤ pitch by the geometry), and `packed`
        // holds blocks of whole vectors.
        #[cfg(target_arch = "x86_64")]
        VectorWidth::Avx512 => unsafe { avx512::products(g, lay, packed, xt, dyt, images) },
        _ => portable::products(g, lay, packed, xt, dyt, images),
    }
}

/// The same sums in plain Rust (any CPU), in the same order.
mod portable {
    use super::{slot, ConvGeometry, Layout};

    pub fn products(
        g: &ConvGeometry,
        lay: &Layout,
        packed: &[f32],
        xt: &mut [f32],
        dyt: &[f32],
        images: usize,
    ) {
        let (o, c, taps) = (g.out_c, g.in_c, g.k_h * g.k_w);
        let k = taps * o;
        let mut s = vec![0.0f32; c];
        for (q, d) in dyt
            .chunks_exact(o)
            .take(images * g.out_pixels())
            .enumerate()
        {
            let x0 = lay.pixel(g, q);
            for t in 0..taps {
                let (kh, kw) = (t / g.k_w, t % g.k_w);
                s.fill(0.0);
                for (oc, dv) in d.iter().enumerate() {
                    for (ch, sv) in s.iter_mut().enumerate() {
                        *sv = dv.mul_add(packed[slot(k, c, t * o + oc, ch)], *sv);
                    }
                }
                let xs = &mut xt[x0 + (kh * lay.pitch + kw) * c..][..c];
                xs.iter_mut().zip(&s).for_each(|(x, v)| *x += v);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::super::tile::avx512::{accumulate, Acc};
    use super::super::LANES;
    use super::{by_tile, next_tile, slot, ConvGeometry, Layout, BLOCK};
    use std::arch::x86_64::*;

    /// One register tile per tap: output pixels `q..q + N` × `A` vectors of input channels from
    /// `c0`, whose packed weights start at `w`; added onto `xt`.
    #[inline(always)]
    unsafe fn tile<const A: usize, const N: usize>(
        g: &ConvGeometry,
        lay: &Layout,
        xt: *mut f32,
        dyt: *const f32,
        q: usize,
        c0: usize,
        w: *const f32,
    ) {
        let (o, c) = (g.out_c, g.in_c);
        let d: [*const f32; N] = std::array::from_fn(|j| dyt.add((q + j) * o));
        let x0: [*mut f32; N] = std::array::from_fn(|j| xt.add(lay.pixel(g, q + j) + c0));
        for kh in 0..g.k_h {
            for kw in 0..g.k_w {
                let mut s: Acc<A, N> = [[_mm512_setzero_ps(); A]; N];
                accumulate(&mut s, &d, o, w.add((kh * g.k_w + kw) * o * A * LANES));
                let off = (kh * lay.pitch + kw) * c;
                for (sj, xj) in s.iter().zip(&x0) {
                    for (v, sv) in sj.iter().enumerate() {
                        let at = xj.add(off + v * LANES);
                        _mm512_storeu_ps(at, _mm512_add_ps(_mm512_loadu_ps(at), *sv));
                    }
                }
            }
        }
    }

    /// [`super::products`] on AVX-512F (bounds checked by the caller).
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn products(
        g: &ConvGeometry,
        lay: &Layout,
        packed: &[f32],
        xt: &mut [f32],
        dyt: &[f32],
        images: usize,
    ) {
        let (c, k) = (g.in_c, g.k_h * g.k_w * g.out_c);
        let pixels = images * g.out_pixels();
        let (xp, dp) = (xt.as_mut_ptr(), dyt.as_ptr());
        // One block of input channels at a time: its packed weights stay in L2 over the chunk.
        for c0 in (0..c).step_by(BLOCK) {
            let two = c - c0 >= BLOCK;
            let w = packed.as_ptr().add(slot(k, c, 0, c0));
            let mut q = 0;
            while q < pixels {
                let n = next_tile(pixels - q);
                by_tile!(tile, two, n; g, lay, xp, dp, q, c0, w);
                q += n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::reference::{self, assert_close, values};
    use super::super::cases::{assert_same, geometry, INPUT_GRAD_CASES};
    use super::super::pack_grad;
    use super::*;

    #[test]
    fn matches_a_direct_input_gradient() {
        for case in INPUT_GRAD_CASES {
            let (g, what) = geometry(case);
            assert!(applies_input_grad(&g), "{what}");
            let w = values(g.out_c * g.patch_len(), 0.3);
            let dy = values(g.batch * g.out_len(), 2.9);
            let mut dx = vec![f32::NAN; g.batch * g.in_len()];
            input_grad(&g, &w, &dy, &mut dx);
            assert_close(&what, &dx, &reference::input_grad(&g, &w, &dy));
        }
    }

    #[test]
    fn the_dispatched_products_match_the_portable_ones() {
        for case in INPUT_GRAD_CASES {
            let (g, what) = geometry(case);
            let lay = Layout::padded(&g);
            let n = g.batch;
            let dy = values(n * g.out_len(), 0.7);
            let w = values(g.out_c * g.patch_len(), 1.3);
            let packed = pack_weights(&g, &w, Blocks::Inputs);
            let mut dyt = vec![0.0; n * lay.grad];
            for (di, dti) in dy
                .chunks_exact(g.out_len())
                .zip(dyt.chunks_exact_mut(lay.grad))
            {
                pack_grad(g.out_c, g.out_pixels(), di, dti);
            }
            let start = values(n * lay.image, 5.0);
            let mut got = start.clone();
            products(&g, &lay, packed.as_slice(), &mut got, &dyt, n);
            let mut want = start;
            portable::products(&g, &lay, packed.as_slice(), &mut want, &dyt, n);
            assert_same(&what, &got, &want);
        }
    }

    #[test]
    fn refuses_input_channels_that_are_not_whole_vectors() {
        let g = ConvGeometry::new([1, 24, 5, 5], [16, 24, 3, 3], [1, 1], [(1, 1), (1, 1)]).unwrap();
        assert!(!applies_input_grad(&g));
    }
}
