//! `dx` from bf16 `w` and `dy` with f32 sums on channels-last copies, any stride: for each tap,
//! a register tile of 12 output pixels × 32 input channels sums the products of pairs of
//! neighbouring output channels (`vdpbf16ps`) and is added onto the zero-padded channels-last
//! input gradient (f32) at the pixels that tap reads. Strided layers take it; a stride-1
//! layer's input gradient is the forward of the flipped kernel ([`super::bf16_forward`]).
//! Needs AVX512-BF16 ([`bf16_gemm::supported`]).

use super::tile::{by_tile, next_tile};
use super::{pack_grad, pack_weight_pairs, unpack_image, Blocks, Layout, BLOCK, LANES};
use crate::kernels::bf16_gemm;
use crate::kernels::geometry::ConvGeometry;
use crate::kernels::scratch::with_scratch;
use rayon::prelude::*;

/// Whether [`input_grad`] computes `g`: input channels in whole vectors, output channels in
/// whole pairs.
pub fn applies_bf16(g: &ConvGeometry) -> bool {
    g.in_c > 0 && g.in_c.is_multiple_of(LANES) && g.out_c > 0 && g.out_c.is_multiple_of(2)
}

/// `dx (N × C × H × W) = Σ_(o, tap) bf16(dy) · bf16(w)` with f32 sums, for a geometry
/// [`applies_bf16`] accepts.
///
/// # Panics
/// When `g` does not apply, a slice does not match it, or the CPU lacks AVX512-BF16 (caller
/// bugs).
pub fn input_grad(g: &ConvGeometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        applies_bf16(g)
            && dx.len() == g.batch * g.in_len()
            && w.len() == g.out_c * g.patch_len()
            && dy.len() == g.batch * g.out_len(),
        "channels_last::bf16_input_grad: operands do not match the geometry"
    );
    assert!(bf16_gemm::supported(), "bf16: the CPU has no AVX512-BF16");
    let lay = Layout::padded(g);
    let packed = pack_weight_pairs(g, w, Blocks::Inputs);
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
                bf16_gemm::with_pairs(count * lay.grad / 2, |dp| {
                    bf16_gemm::to_pairs(dyt, dp);
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: AVX512-BF16 is present (asserted above); `dp` holds the chunk's
                    // output pixels' O/2 pairs each and `xt` its padded images (lengths by
                    // construction); every tap of every output pixel lies inside its padded
                    // image ((OH − 1)·s + KH ≤ rows, (OW − 1)·s + KW ≤ pitch by the geometry),
                    // and `packed` holds one row of pairs per (tap, output pair) for every
                    // block of input channels.
                    unsafe {
                        avx512::products(g, &lay, &packed, xt, dp, count)
                    };
                });
                for (xti, dxi) in xt
                    .chunks_exact(lay.image)
                    .zip(dxc.chunks_exact_mut(g.in_len()))
                {
                    unpack_image(g, &lay, xti, dxi);
                }
            })
        });
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::super::tile::avx512::{accumulate_pairs, Acc};
    use super::{by_tile, next_tile, ConvGeometry, Layout, BLOCK, LANES};
    use std::arch::x86_64::*;

    /// One register tile per tap: output pixels `q..q + N` × `A` vectors of input channels
    /// from `c0`, whose packed pairs start at `w`; added onto `xt`.
    #[inline(always)]
    unsafe fn tile<const A: usize, const N: usize>(
        g: &ConvGeometry,
        lay: &Layout,
        xt: *mut f32,
        dp: *const u32,
        q: usize,
        c0: usize,
        w: *const u32,
    ) {
        let (op, c) = (g.out_c / 2, g.in_c);
        let d: [*const u32; N] = std::array::from_fn(|j| dp.add((q + j) * op));
        let x0: [*mut f32; N] = std::array::from_fn(|j| xt.add(lay.pixel(g, q + j) + c0));
        for kh in 0..g.k_h {
            for kw in 0..g.k_w {
                let mut s: Acc<A, N> = [[_mm512_setzero_ps(); A]; N];
                accumulate_pairs(&mut s, &d, op, w.add((kh * g.k_w + kw) * op * A * LANES));
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

    /// `xt[q + tap][c] += Σ_o dY[q][o] · w[o][c][tap]` for every output pixel q of the
    /// chunk's `images` (bounds checked by the caller).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn products(
        g: &ConvGeometry,
        lay: &Layout,
        packed: &[u32],
        xt: &mut [f32],
        dp: &[u32],
        images: usize,
    ) {
        let (c, rows) = (g.in_c, g.k_h * g.k_w * g.out_c / 2);
        let pixels = images * g.out_pixels();
        let (xp, dpp) = (xt.as_mut_ptr(), dp.as_ptr());
        // One block of input channels at a time: its packed pairs stay in L2 over the chunk.
        for c0 in (0..c).step_by(BLOCK) {
            let two = c - c0 >= BLOCK;
            let w = packed.as_ptr().add(c0 * rows);
            let mut q = 0;
            while q < pixels {
                let n = next_tile(pixels - q);
                by_tile!(tile, two, n; g, lay, xp, dpp, q, c0, w);
                q += n;
            }
        }
    }
}
