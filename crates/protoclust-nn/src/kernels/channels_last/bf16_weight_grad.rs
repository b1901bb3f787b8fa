//! The weight gradient with bf16 products and f32 sums,
//! `dW[o][c][kh][kw] = Σ_n Σ_(oh, ow) dY[n][o][oh][ow] · X[n][oh·sh + kh][ow·sw + kw][c]`: a
//! register tile holds 12 output channels (broadcast pairs of two output pixels' dY) × 32
//! input channels at one tap (two vectors of the same two pixels' inputs), and each
//! `vdpbf16ps` adds the products of a pair of output pixels, paired along each output row (an
//! odd row's last pixel with a zero gradient). There is no patch matrix: each image is
//! rounded once into pairs of neighbouring pixels (`X[p]`, `X[p + sw]`) channels-last, and
//! each output-channel row of dY into pairs along its rows. Needs AVX512-BF16
//! ([`bf16_gemm::supported`]).

use super::tile::{by_tile, next_tile};
use super::{pack_image_bf16, Layout, BLOCK, LANES};
use crate::kernels::bf16_gemm::{self, rows_to_pairs, zip_halves};
use crate::kernels::geometry::ConvGeometry;
use crate::kernels::partition::{sum_groups, ChunkGroups};

/// Whether [`weight_grad`] computes `g`: input channels in whole vectors.
pub fn applies_bf16(g: &ConvGeometry) -> bool {
    g.in_c > 0 && g.in_c.is_multiple_of(LANES) && g.out_c > 0
}

/// The pixel walk of one chunk, shared by every tile (offsets in channels).
#[derive(Debug, Clone, Copy)]
struct Walk {
    images: usize,
    out_h: usize,
    /// Pixel pairs per output row.
    pairs: usize,
    /// Pixel pairs of the chunk: the output gradient's row length.
    len: usize,
    /// Channels between images of the paired input.
    x_image: usize,
    /// Channels between output rows, in the input (stride · pitch · C).
    x_row: usize,
    /// Channels between output pixels of a row, in the input (stride · C).
    x_col: usize,
}

impl Walk {
    fn of(g: &ConvGeometry, lay: &Layout, images: usize) -> Self {
        let pairs = g.out_w.div_ceil(2);
        Self {
            images,
            out_h: g.out_h,
            pairs,
            len: images * g.out_h * pairs,
            x_image: lay.image,
            x_row: lay.stride[0] * lay.pitch * g.in_c,
            x_col: lay.stride[1] * g.in_c,
        }
    }
}

/// `dw (O × C × KH × KW) = Σ_n bf16(dy[n]) · bf16(patches(x[n]))ᵀ` with f32 sums, for a
/// geometry this kernel [`applies_bf16`] to, summed over a fixed partition of the batch (one
/// partial sum per group, added in group order: the result does not depend on scheduling).
///
/// # Panics
/// When `g` does not apply, a slice does not match it, or the CPU lacks AVX512-BF16 (caller
/// bugs).
pub fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    assert!(
        applies_bf16(g)
            && x.len() == g.batch * g.in_len()
            && dy.len() == g.batch * g.out_len()
            && dw.len() == g.out_c * g.patch_len(),
        "channels_last::bf16_weight_grad: operands do not match the geometry"
    );
    assert!(bf16_gemm::supported(), "bf16: the CPU has no AVX512-BF16");
    let lay = Layout::of(g);
    let (o, k, taps) = (g.out_c, g.patch_len(), g.k_h * g.k_w);
    let threads = rayon::current_num_threads();
    let nb = lay.images_per_chunk(g, g.batch.div_ceil(threads));
    let parts = ChunkGroups::new(g.batch, nb, threads);
    // sums[o][tap·C + c]
    let mut sums = vec![0.0; k * o];
    sum_groups(parts.groups, &mut sums, |grp, acc| {
        acc.fill(0.0);
        for (i0, count) in parts.chunks(grp) {
            let walk = Walk::of(g, &lay, count);
            let xc = &x[i0 * g.in_len()..(i0 + count) * g.in_len()];
            let dyc = &dy[i0 * g.out_len()..(i0 + count) * g.out_len()];
            bf16_gemm::with_pairs(count * lay.image + o * walk.len, |buf| {
                let (xp, dp) = buf.split_at_mut(count * lay.image);
                pair_inputs(g, &lay, xc, xp);
                pair_gradients(g, &walk, dyc, dp);
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX512-BF16 is present (asserted above); `xp` holds the chunk's
                // paired images and `dp` its O rows of `walk.len` pairs (lengths by
                // construction); each pair is read at its first pixel, and every tap of
                // every output pixel lies inside its padded image ((OH − 1)·s + KH ≤ rows,
                // (OW − 1)·s + KW ≤ pitch by the geometry); `acc` is O × K.
                unsafe {
                    avx512::products(g, &lay, &walk, acc, xp, dp)
                };
            });
        }
    });
    for (oc, row) in dw.chunks_exact_mut(k).enumerate() {
        for c in 0..g.in_c {
            for t in 0..taps {
                row[c * taps + t] = sums[oc * k + t * g.in_c + c];
            }
        }
    }
}

/// The chunk's images `xc`, padded channels-last in bf16, as pairs of neighbouring output
/// pixels' inputs: `xp[e] = (X[e], X[e + x_col])`, zero past each image.
fn pair_inputs(g: &ConvGeometry, lay: &Layout, xc: &[f32], xp: &mut [u32]) {
    let step = lay.stride[1] * g.in_c;
    bf16_gemm::with_panels(lay.image.div_ceil(2), |buf| {
        let xt = &mut bf16_gemm::halves_mut(buf)[..lay.image];
        for (xi, xpi) in xc
            .chunks_exact(g.in_len())
            .zip(xp.chunks_exact_mut(lay.image))
        {
            pack_image_bf16(g, lay, xi, xt);
            let n = lay.image.saturating_sub(step);
            zip_halves(&xt[..n], &xt[step..], &mut xpi[..n]);
            for (d, s) in xpi[n..].iter_mut().zip(&xt[n..]) {
                *d = *s as u32;
            }
        }
    })
}

/// The chunk's output gradients `dyc` as O rows of pixel pairs along each output row (image
/// by image, an odd row's last pair with a zero high half).
fn pair_gradients(g: &ConvGeometry, walk: &Walk, dyc: &[f32], dp: &mut [u32]) {
    let (p, per_image) = (g.out_pixels(), g.out_h * walk.pairs);
    for (i, dyi) in dyc.chunks_exact(g.out_len()).enumerate() {
        for (oc, plane) in dyi.chunks_exact(p).enumerate() {
            let out = &mut dp[oc * walk.len + i * per_image..][..per_image];
            rows_to_pairs(plane, g.out_w, g.out_h, g.out_w, out);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{by_tile, next_tile, ConvGeometry, Layout, Walk, BLOCK, LANES};
    use crate::kernels::bf16_gemm::avx512::pairs;
    use std::arch::x86_64::*;

    /// One register tile: `N` output channels (their pair rows from `d`, `w.len` apart) × `A`
    /// vectors of input channels at one tap (from `x`, the tap's first input of pixel 0),
    /// added onto the sums at `acc` (rows `ld` apart) over every pixel pair of the walk.
    #[inline(always)]
    unsafe fn tile<const A: usize, const N: usize>(
        w: &Walk,
        acc: *mut f32,
        ld: usize,
        x: *const u32,
        d: *const u32,
    ) {
        let mut s: [[__m512; A]; N] = std::array::from_fn(|r| {
            std::array::from_fn(|v| _mm512_loadu_ps(acc.add(r * ld + v * LANES)))
        });
        let mut q = 0;
        for i in 0..w.images {
            for oh in 0..w.out_h {
                let mut xp = x.add(i * w.x_image + oh * w.x_row);
                for _ in 0..w.pairs {
                    let xv: [__m512bh; A] = std::array::from_fn(|v| {
                        pairs(_mm512_loadu_si512(xp.add(v * LANES) as *const __m512i))
                    });
                    for (r, sr) in s.iter_mut().enumerate() {
                        let b = pairs(_mm512_set1_epi32(*d.add(r * w.len + q) as i32));
                        for v in 0..A {
                            sr[v] = _mm512_dpbf16_ps(sr[v], b, xv[v]);
                        }
                    }
                    xp = xp.add(2 * w.x_col);
                    q += 1;
                }
            }
        }
        for (r, sr) in s.iter().enumerate() {
            for (v, sv) in sr.iter().enumerate() {
                _mm512_storeu_ps(acc.add(r * ld + v * LANES), *sv);
            }
        }
    }

    /// `acc[o][tap·C + c] += Σ_pairs dY · X` over the chunk (bounds checked by the caller).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn products(
        g: &ConvGeometry,
        lay: &Layout,
        w: &Walk,
        acc: &mut [f32],
        xp: &[u32],
        dp: &[u32],
    ) {
        let (o, c) = (g.out_c, g.in_c);
        let ld = g.patch_len();
        let (ap, xb, db) = (acc.as_mut_ptr(), xp.as_ptr(), dp.as_ptr());
        let mut o0 = 0;
        while o0 < o {
            let n = next_tile(o - o0);
            let d = db.add(o0 * w.len);
            for kh in 0..g.k_h {
                for kw in 0..g.k_w {
                    let t = kh * g.k_w + kw;
                    let x = xb.add((kh * lay.pitch + kw) * c);
                    for c0 in (0..c).step_by(BLOCK) {
                        let two = c - c0 >= BLOCK;
                        let a = ap.add(o0 * ld + t * c + c0);
                        by_tile!(tile, two, n; w, a, ld, x.add(c0), d);
                    }
                }
            }
            o0 += n;
        }
    }
}
