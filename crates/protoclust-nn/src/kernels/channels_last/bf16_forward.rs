//! `y = conv(bf16(x), bf16(w))` with f32 sums on channels-last bf16 copies: a register tile is
//! 12 output pixels × 32 output channels, and each `vdpbf16ps` adds the products of one pair
//! of neighbouring input channels at one tap. A tap is an offset into the zero-padded
//! channels-last image, so no patch matrix is packed: each image is rounded to bf16 once
//! (an image's worth of writes, where the patch panels took one per tap). Needs AVX512-BF16
//! ([`bf16_gemm::supported`]).

use super::tile::{by_tile, next_tile};
use super::{applies, pack_image_bf16, pack_weight_pairs, Blocks, Layout, BLOCK, LANES};
use crate::kernels::bf16_gemm;
use crate::kernels::geometry::ConvGeometry;
use crate::kernels::scratch::with_scratch;
use crate::kernels::transpose::transpose;
use rayon::prelude::*;

/// Whether [`forward`] computes `g`: output channels in whole vectors, input channels in whole
/// pairs (a pair never straddles two pixels).
pub fn applies_bf16(g: &ConvGeometry) -> bool {
    applies(g) && g.in_c.is_multiple_of(2)
}

/// `y (N × O × OH × OW) = conv(bf16(x), bf16(w))` with f32 sums, for a geometry these kernels
/// [`applies_bf16`] to.
///
/// # Panics
/// When `g` does not apply, a slice does not match it, or the CPU lacks AVX512-BF16 (caller
/// bugs).
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    assert!(
        applies_bf16(g)
            && x.len() == g.batch * g.in_len()
            && w.len() == g.out_c * g.patch_len()
            && y.len() == g.batch * g.out_len(),
        "channels_last::bf16_forward: operands do not match the geometry"
    );
    assert!(bf16_gemm::supported(), "bf16: the CPU has no AVX512-BF16");
    let lay = Layout::of(g);
    let packed = pack_weight_pairs(g, w, Blocks::Outputs);
    let spread = g.batch.div_ceil(rayon::current_num_threads());
    let nb = lay.images_per_chunk(g, spread);
    let (o, p) = (g.out_c, g.out_pixels());
    y.par_chunks_mut(nb * g.out_len())
        .zip(x.par_chunks(nb * g.in_len()))
        .for_each(|(yc, xc)| {
            let count = yc.len() / g.out_len();
            with_scratch(count * lay.grad, |yt| {
                bf16_gemm::with_pairs(count * lay.image / 2, |xb| {
                    let halves = bf16_gemm::halves_mut(xb);
                    for (xi, xti) in xc
                        .chunks_exact(g.in_len())
                        .zip(halves.chunks_exact_mut(lay.image))
                    {
                        pack_image_bf16(g, &lay, xi, xti);
                    }
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: AVX512-BF16 is present (asserted above); `xb` holds the chunk's
                    // images as pairs and `yt` its outputs (lengths by construction), every tap
                    // of every output pixel lies inside its padded image ((OH − 1)·s + KH ≤
                    // rows, (OW − 1)·s + KW ≤ pitch by the geometry), and `packed` holds one
                    // row of pairs per (tap, input pair) for every block of output channels.
                    unsafe {
                        avx512::products(g, &lay, &packed, xb, yt, count)
                    };
                });
                for (yti, yi) in yt
                    .chunks_exact(lay.grad)
                    .zip(yc.chunks_exact_mut(g.out_len()))
                {
                    transpose(yti, o, (p, o), yi, |oc| oc * p);
                }
            })
        });
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::super::tile::avx512::{accumulate_pairs, Acc};
    use super::{by_tile, next_tile, ConvGeometry, Layout, BLOCK, LANES};
    use std::arch::x86_64::*;

    /// One register tile: output pixels `q..q + N` × `A` vectors of output channels, whose
    /// packed pairs start at `w`; stored at `y` (pixel stride O). `xb` is the chunk's padded
    /// channels-last images as pairs (a pixel's C channels are C/2 pairs).
    #[inline(always)]
    unsafe fn tile<const A: usize, const N: usize>(
        g: &ConvGeometry,
        lay: &Layout,
        xb: *const u32,
        q: usize,
        w: *const u32,
        y: *mut f32,
    ) {
        let cp = g.in_c / 2;
        // Pixel offsets in channels are even (C is): halved, they count pairs.
        let x0: [*const u32; N] = std::array::from_fn(|j| xb.add(lay.pixel(g, q + j) / 2));
        let mut s: Acc<A, N> = [[_mm512_setzero_ps(); A]; N];
        for kh in 0..g.k_h {
            for kw in 0..g.k_w {
                let off = (kh * lay.pitch + kw) * cp;
                let x = x0.map(|p| p.add(off));
                accumulate_pairs(&mut s, &x, cp, w.add((kh * g.k_w + kw) * cp * A * LANES));
            }
        }
        for (j, sj) in s.iter().enumerate() {
            for (v, sv) in sj.iter().enumerate() {
                _mm512_storeu_ps(y.add(j * g.out_c + v * LANES), *sv);
            }
        }
    }

    /// `yt[q][o] = Σ_(tap, c) X[q + tap][c] · w[o][c][tap]` for every output pixel q of the
    /// chunk's `images` (bounds checked by the caller).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn products(
        g: &ConvGeometry,
        lay: &Layout,
        packed: &[u32],
        xb: &[u32],
        yt: &mut [f32],
        images: usize,
    ) {
        let (o, rows) = (g.out_c, g.k_h * g.k_w * g.in_c / 2);
        let pixels = images * g.out_pixels();
        let (xp, yp) = (xb.as_ptr(), yt.as_mut_ptr());
        // One block of output channels at a time: its packed pairs stay in L2 over the chunk.
        for o0 in (0..o).step_by(BLOCK) {
            let two = o - o0 >= BLOCK;
            let w = packed.as_ptr().add(o0 * rows);
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
