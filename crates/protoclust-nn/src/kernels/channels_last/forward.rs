//! `y = conv(x, w)` on channels-last copies: a register tile is 12 output pixels × 32 output
//! channels, summed over every (tap, input channel) with the weights packed per block of 32
//! output channels.

use super::tile::{by_tile, next_tile};
use super::{applies, pack_image, pack_weights, slot, Blocks, Layout, BLOCK};
use crate::kernels::geometry::ConvGeometry;
use crate::kernels::isa::VectorWidth;
use crate::kernels::scratch::with_scratch;
use crate::kernels::transpose::transpose;
use rayon::prelude::*;

/// `y (N × O × OH × OW) = conv(x (N × C × H × W), w (O × C × KH × KW))` for a geometry these
/// kernels [`applies`] to.
///
/// # Panics
/// When `g` does not apply or a slice does not match it (a caller bug).
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    assert!(
        applies(g)
            && x.len() == g.batch * g.in_len()
            && w.len() == g.out_c * g.patch_len()
            && y.len() == g.batch * g.out_len(),
        "channels_last::forward: operands do not match the geometry"
    );
    let lay = Layout::of(g);
    let packed = pack_weights(g, w, Blocks::Outputs);
    let spread = g.batch.div_ceil(rayon::current_num_threads());
    let nb = lay.images_per_chunk(g, spread);
    let (o, p) = (g.out_c, g.out_pixels());
    y.par_chunks_mut(nb * g.out_len())
        .zip(x.par_chunks(nb * g.in_len()))
        .for_each(|(yc, xc)| {
            let count = yc.len() / g.out_len();
            with_scratch(count * (lay.image + lay.grad), |buf| {
                let (xt, yt) = buf.split_at_mut(count * lay.image);
                for (xi, xti) in xc
                    .chunks_exact(g.in_len())
                    .zip(xt.chunks_exact_mut(lay.image))
                {
                    pack_image(g, &lay, xi, xti);
                }
                products(g, &lay, packed.as_slice(), xt, yt, count);
                for (yti, yi) in yt
                    .chunks_exact(lay.grad)
                    .zip(yc.chunks_exact_mut(g.out_len()))
                {
                    transpose(yti, o, (p, o), yi, |oc| oc * p);
                }
            })
        });
}

/// `yt[q][o] = Σ_(tap, c) X[q + tap][c] · w[o][c][tap]` for every output pixel q of the chunk's
/// `images` channels-last images `xt`.
fn products(
    g: &ConvGeometry,
    lay: &Layout,
    packed: &[f32],
    xt: &[f32],
    yt: &mut [f32],
    images: usize,
) {
    assert!(
        packed.len() >= g.patch_len() * g.out_c
            && xt.len() >= images * lay.image
            && yt.len() >= images * lay.grad,
        "channels_last::forward: scratch does not match the geometry"
    );
    match VectorWidth::current() {
        // SAFETY: AVX-512F is present (`current` is never wider than the CPU); the lengths were
        // checked above, every tap of every output pixel lies inside its padded image
        // ((OH − 1)·s + KH ≤ rows, (OW − 1)·s + KW ≤ pitch by the geometry), and `packed`
        // holds blocks of whole vectors.
        #[cfg(target_arch = "x86_64")]
        VectorWidth::Avx512 => unsafe { avx512::products(g, lay, packed, xt, yt, images) },
        _ => portable::products(g, lay, packed, xt, yt, images),
    }
}

/// The same sums in plain Rust (any CPU), in the same order.
mod portable {
    use super::{slot, ConvGeometry, Layout};

    pub fn products(
        g: &ConvGeometry,
        lay: &Layout,
        packed: &[f32],
        xt: &[f32],
        yt: &mut [f32],
        images: usize,
    ) {
        let (o, k, c) = (g.out_c, g.patch_len(), g.in_c);
        for (q, yq) in yt
            .chunks_exact_mut(o)
            .take(images * g.out_pixels())
            .enumerate()
        {
            yq.fill(0.0);
            let x0 = lay.pixel(g, q);
            for t in 0..g.k_h * g.k_w {
                let (kh, kw) = (t / g.k_w, t % g.k_w);
                let xs = &xt[x0 + (kh * lay.pitch + kw) * c..][..c];
                for (ch, xv) in xs.iter().enumerate() {
                    for (oc, s) in yq.iter_mut().enumerate() {
                        *s = xv.mul_add(packed[slot(k, o, t * c + ch, oc)], *s);
                    }
                }
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

    /// One register tile: output pixels `q..q + N` × `A` vectors of output channels, whose
    /// packed weights start at `w`; stored at `y` (pixel stride O).
    #[inline(always)]
    unsafe fn tile<const A: usize, const N: usize>(
        g: &ConvGeometry,
        lay: &Layout,
        xt: *const f32,
        q: usize,
        w: *const f32,
        y: *mut f32,
    ) {
        let c = g.in_c;
        let x0: [*const f32; N] = std::array::from_fn(|j| xt.add(lay.pixel(g, q + j)));
        let mut s: Acc<A, N> = [[_mm512_setzero_ps(); A]; N];
        for kh in 0..g.k_h {
            for kw in 0..g.k_w {
                let off = (kh * lay.pitch + kw) * c;
                let x = x0.map(|p| p.add(off));
                accumulate(&mut s, &x, c, w.add((kh * g.k_w + kw) * c * A * LANES));
            }
        }
        for (j, sj) in s.iter().enumerate() {
            for (v, sv) in sj.iter().enumerate() {
                _mm512_storeu_ps(y.add(j * g.out_c + v * LANES), *sv);
            }
        }
    }

    /// [`super::products`] on AVX-512F (bounds checked by the caller).
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn products(
        g: &ConvGeometry,
        lay: &Layout,
        packed: &[f32],
        xt: &[f32],
        yt: &mut [f32],
        images: usize,
    ) {
        let (o, k) = (g.out_c, g.patch_len());
        let pixels = images * g.out_pixels();
        let (xp, yp) = (xt.as_ptr(), yt.as_mut_ptr());
        // One block of output channels at a time: its packed weights stay in L2 over the chunk.
        for o0 in (0..o).step_by(BLOCK) {
            let two = o - o0 >= BLOCK;
            let w = packed.as_ptr().add(slot(k, o, 0, o0));
            let mut q = 0;
            while q < pixels {
                let n = next_tile(pixels - q);
                let y = yp.add(q * o + o0);
                by_tile!(tile, two, n; g, lay, xp, q, w, y);
                q += n;
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
    fn matches_a_direct_forward() {
        for case in CASES {
            let (g, what) = geometry(case);
            let x = values(g.batch * g.in_len(), 0.3);
            let w = values(g.out_c * g.patch_len(), 2.9);
            let mut y = vec![f32::NAN; g.batch * g.out_len()];
            forward(&g, &x, &w, &mut y);
            assert_close(&what, &y, &reference::forward(&g, &x, &w));
        }
    }

    #[test]
    fn the_dispatched_products_match_the_portable_ones() {
        for case in CASES {
            let (g, what) = geometry(case);
            let lay = Layout::of(&g);
            let n = g.batch;
            let x = values(n * g.in_len(), 0.7);
            let w = values(g.out_c * g.patch_len(), 1.3);
            let packed = pack_weights(&g, &w, Blocks::Outputs);
            let mut xt = vec![0.0; n * lay.image];
            for (xi, xti) in x
                .chunks_exact(g.in_len())
                .zip(xt.chunks_exact_mut(lay.image))
            {
                pack_image(&g, &lay, xi, xti);
            }
            let mut got = vec![f32::NAN; n * lay.grad];
            products(&g, &lay, packed.as_slice(), &xt, &mut got, n);
            let mut want = vec![f32::NAN; n * lay.grad];
            portable::products(&g, &lay, packed.as_slice(), &xt, &mut want, n);
            assert_same(&what, &got, &want);
        }
    }
}
