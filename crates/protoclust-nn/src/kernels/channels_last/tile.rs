//! The inner product every channels-last tile shares: `N` pixels × `A` vectors of channels,
//! summed over a run of inputs that lie contiguously behind each pixel's pointer.

/// Pixels per register tile: 12 with two vectors of channels is 24 of AVX-512's 32 registers.
pub(super) const PIXELS: usize = 12;

/// The pixels of the next tile when `left` remain: a whole tile, else the largest of 8, 4, 2
/// and 1 that fits (the sizes [`by_tile!`] instantiates).
pub(super) fn next_tile(left: usize) -> usize {
    [PIXELS, 8, 4, 2, 1]
        .into_iter()
        .find(|&n| left >= n)
        .unwrap_or(1)
}

/// Calls `$f::<A, N>(args)` for `$two` (two vectors of channels, else one) and `$n` pixels
/// (one of [`next_tile`]'s sizes).
macro_rules! by_tile {
    ($f:ident, $two:expr, $n:expr; $($arg:expr),* $(,)?) => {
        match ($two, $n) {
            (true, 12) => $f::<2, 12>($($arg),*),
            (true, 8) => $f::<2, 8>($($arg),*),
            (true, 4) => $f::<2, 4>($($arg),*),
            (true, 2) => $f::<2, 2>($($arg),*),
            (true, _) => $f::<2, 1>($($arg),*),
            (false, 12) => $f::<1, 12>($($arg),*),
            (false, 8) => $f::<1, 8>($($arg),*),
            (false, 4) => $f::<1, 4>($($arg),*),
            (false, 2) => $f::<1, 2>($($arg),*),
            (false, _) => $f::<1, 1>($($arg),*),
        }
    };
}
pub(super) use by_tile;

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use super::super::LANES;
    use std::arch::x86_64::*;

    /// A register tile: `N` pixels × `A` vectors of channels.
    pub type Acc<const A: usize, const N: usize> = [[__m512; A]; N];

    /// `s[j][v] += Σ_k x[j][k] · w[k][v]` for `k < len`: pixel j's inputs at `x[j]`, and `len`
    /// rows of `A` vectors at `w` (unaligned loads: a 64-byte-aligned `w` only makes them
    /// cheaper).
    #[inline(always)]
    pub unsafe fn accumulate<const A: usize, const N: usize>(
        s: &mut Acc<A, N>,
        x: &[*const f32; N],
        len: usize,
        w: *const f32,
    ) {
        for k in 0..len {
            let row = w.add(k * A * LANES);
            let wv: [__m512; A] = std::array::from_fn(|v| _mm512_loadu_ps(row.add(v * LANES)));
            for (sj, xj) in s.iter_mut().zip(x) {
                let b = _mm512_set1_ps(*xj.add(k));
                for v in 0..A {
                    sj[v] = _mm512_fmadd_ps(wv[v], b, sj[v]);
                }
            }
        }
    }

    /// [`accumulate`] over bf16 pairs with `vdpbf16ps`: `s[j][v] += Σ_k x[j][k] · w[k][v]`
    /// for `k < len`, each x[j][k] and each lane of w[k][v] a pair of bf16 (two products
    /// added per lane).
    #[inline(always)]
    pub unsafe fn accumulate_pairs<const A: usize, const N: usize>(
        s: &mut Acc<A, N>,
        x: &[*const u32; N],
        len: usize,
        w: *const u32,
    ) {
        use crate::kernels::bf16_gemm::avx512::pairs;
        for k in 0..len {
            let row = w.add(k * A * LANES);
            let wv: [__m512bh; A] = std::array::from_fn(|v| {
                pairs(_mm512_loadu_si512(row.add(v * LANES) as *const __m512i))
            });
            for (sj, xj) in s.iter_mut().zip(x) {
                let b = pairs(_mm512_set1_epi32(*xj.add(k) as i32));
                for v in 0..A {
                    sj[v] = _mm512_dpbf16_ps(sj[v], b, wv[v]);
                }
            }
        }
    }
}
