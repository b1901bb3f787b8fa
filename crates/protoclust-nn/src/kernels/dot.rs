//! `dst (m × n) [+]= a (m × k) · bᵀ` with both operands row-major and k contiguous: the shape of
//! the convolution weight gradient (k = the batch's output pixels, long), where a packing
//! matrix product spends its time transposing. Register-blocked dot products, blocked for L2;
//! an AVX-512 (16 lanes, 4 × 4 tiles) or AVX2 + FMA (8 lanes, 3 × 4 tiles) build is chosen at
//! run time ([`VectorWidth`]), a portable one elsewhere.

use super::isa::VectorWidth;

/// f32 lanes of one accumulator.
const LANES: usize = 8;

/// Bytes of `b` rows one pass keeps hot (a quarter of a 1 MiB L2).
const L2_BLOCK: usize = 256 * 1024;

/// Rows of `a` per register tile.
const MI: usize = 3;

/// Rows of `b` per register tile.
const NJ: usize = 4;

/// Row-major operand: `rows` rows, row r at `data[r * stride..]`.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    /// Backing storage.
    pub data: &'a [f32],
    /// Row count.
    pub rows: usize,
    /// Distance between row starts.
    pub stride: usize,
}

/// Where a product goes: row-major `dst` with row stride `ld`, added to or overwritten.
pub struct Out<'a> {
    /// Destination storage.
    pub dst: &'a mut [f32],
    /// Row stride of `dst`.
    pub ld: usize,
    /// Add to the existing values instead of overwriting them.
    pub accumulate: bool,
}

impl Out<'_> {
    #[inline(always)]
    fn put(&mut self, i: usize, j: usize, v: f32) {
        let d = &mut self.dst[i * self.ld + j];
        *d = if self.accumulate { *d + v } else { v };
    }
}

/// One register tile: rows `i0..i0+R` of `a` against rows `j0..j0+C` of `b`.
type TileFn<'a> = &'a mut dyn FnMut(&mut Out<'_>, usize, usize, usize, usize);

/// Walks the (i, j) tiles of `mi` × `nj` (edges 1 wide), `b` in L2-sized passes;
/// `tile(out, i0, j0, rows, cols)`.
#[inline(always)]
fn walk(
    out: &mut Out<'_>,
    (m, n, k): (usize, usize, usize),
    (mi, nj): (usize, usize),
    tile: TileFn<'_>,
) {
    let mf = m / mi * mi;
    let jb = (L2_BLOCK / (k.max(1) * 4)).max(nj) / nj * nj;
    for j0 in (0..n).step_by(jb) {
        let j1 = (j0 + jb).min(n);
        let jf = j0 + (j1 - j0) / nj * nj;
        for i in (0..mf).step_by(mi) {
            for j in (j0..jf).step_by(nj) {
                tile(out, i, j, mi, nj);
            }
            for j in jf..j1 {
                tile(out, i, j, mi, 1);
            }
        }
        for i in mf..m {
            for j in (j0..jf).step_by(nj) {
                tile(out, i, j, 1, nj);
            }
            for j in jf..j1 {
                tile(out, i, j, 1, 1);
            }
        }
    }
}

/// Portable tile: the same blocking in plain Rust.
fn portable<const R: usize, const C: usize>(
    out: &mut Out<'_>,
    a: Rows<'_>,
    b: Rows<'_>,
    k: usize,
    i0: usize,
    j0: usize,
) {
    let ar: [&[f32]; R] =
        std::array::from_fn(|i| &a.data[(i0 + i) * a.stride..(i0 + i) * a.stride + k]);
    let br: [&[f32]; C] =
        std::array::from_fn(|j| &b.data[(j0 + j) * b.stride..(j0 + j) * b.stride + k]);
    let mut acc = [[[0f32; LANES]; C]; R];
    let full = k / LANES * LANES;
    for t in (0..full).step_by(LANES) {
        for (i, ai) in ar.iter().enumerate() {
            for (j, bj) in br.iter().enumerate() {
                for l in 0..LANES {
                    acc[i][j][l] = ai[t + l].mul_add(bj[t + l], acc[i][j][l]);
                }
            }
        }
    }
    for (i, ai) in ar.iter().enumerate() {
        for (j, bj) in br.iter().enumerate() {
            let s = (full..k).fold(acc[i][j].iter().sum::<f32>(), |s, u| {
                ai[u].mul_add(bj[u], s)
            });
            out.put(i0 + i, j0 + j, s);
        }
    }
}

fn portable_body(out: &mut Out<'_>, a: Rows<'_>, b: Rows<'_>, k: usize) {
    walk(
        out,
        (a.rows, b.rows, k),
        (MI, NJ),
        &mut |out, i, j, r, c| match (r, c) {
            (MI, NJ) => portable::<MI, NJ>(out, a, b, k, i, j),
            (MI, _) => portable::<MI, 1>(out, a, b, k, i, j),
            (_, NJ) => portable::<1, NJ>(out, a, b, k, i, j),
            _ => portable::<1, 1>(out, a, b, k, i, j),
        },
    );
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{walk, Out, Rows, MI, NJ};
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
    }

    #[inline(always)]
    unsafe fn tile<const R: usize, const C: usize>(
        out: &mut Out<'_>,
        a: Rows<'_>,
        b: Rows<'_>,
        k: usize,
        i0: usize,
        j0: usize,
    ) {
        let ap: [*const f32; R] = std::array::from_fn(|i| a.data.as_ptr().add((i0 + i) * a.stride));
        let bp: [*const f32; C] = std::array::from_fn(|j| b.data.as_ptr().add((j0 + j) * b.stride));
        let mut sum = [[_mm256_setzero_ps(); C]; R];
        let full = k / 8 * 8;
        let mut t = 0;
        while t < full {
            let av: [__m256; R] = std::array::from_fn(|i| _mm256_loadu_ps(ap[i].add(t)));
            for j in 0..C {
                let bv = _mm256_loadu_ps(bp[j].add(t));
                for i in 0..R {
                    sum[i][j] = _mm256_fmadd_ps(av[i], bv, sum[i][j]);
                }
            }
            t += 8;
        }
        for i in 0..R {
            for j in 0..C {
                let s = (full..k).fold(hsum(sum[i][j]), |s, u| {
                    (*ap[i].add(u)).mul_add(*bp[j].add(u), s)
                });
                out.put(i0 + i, j0 + j, s);
            }
        }
    }

    /// The blocked product on AVX2 + FMA (bounds checked by the caller).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn body(out: &mut Out<'_>, a: Rows<'_>, b: Rows<'_>, k: usize) {
        walk(
            out,
            (a.rows, b.rows, k),
            (MI, NJ),
            &mut |out, i, j, r, c| match (r, c) {
                (MI, NJ) => tile::<MI, NJ>(out, a, b, k, i, j),
                (MI, _) => tile::<MI, 1>(out, a, b, k, i, j),
                (_, NJ) => tile::<1, NJ>(out, a, b, k, i, j),
                _ => tile::<1, 1>(out, a, b, k, i, j),
            },
        );
    }
}

/// `out[i][j] (+)= Σ_t a[i][t] · b[j][t]` over the first `k` values of every row.
///
/// # Panics
/// When a row or the destination is too short (a caller bug).
pub fn matmul_nt(mut out: Out<'_>, a: Rows<'_>, b: Rows<'_>, k: usize) {
    assert!(
        a.rows == 0 || (a.rows - 1) * a.stride + k <= a.data.len(),
        "matmul_nt: a too short"
    );
    assert!(
        b.rows == 0 || (b.rows - 1) * b.stride + k <= b.data.len(),
        "matmul_nt: b too short"
    );
    assert!(
        a.rows == 0 || (a.rows - 1) * out.ld + b.rows <= out.dst.len(),
        "matmul_nt: dst too short"
    );
    // SAFETY: `VectorWidth::current` is never wider than the CPU's features; every row read
    // lies within the bounds checked above.
    match VectorWidth::current() {
        #[cfg(target_arch = "x86_64")]
        VectorWidth::Avx512 => unsafe { avx512::body(&mut out, a, b, k) },
        #[cfg(target_arch = "x86_64")]
        VectorWidth::Avx2 => unsafe { avx2::body(&mut out, a, b, k) },
        _ => portable_body(&mut out, a, b, k),
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{walk, Out, Rows};
    use std::arch::x86_64::*;

    /// Rows of `a` and of `b` per register tile (16 accumulators of the 32 registers).
    const MI: usize = 4;
    const NJ: usize = 4;

    #[inline(always)]
    unsafe fn tile<const R: usize, const C: usize>(
        out: &mut Out<'_>,
        a: Rows<'_>,
        b: Rows<'_>,
        k: usize,
        i0: usize,
        j0: usize,
    ) {
        let ap: [*const f32; R] = std::array::from_fn(|i| a.data.as_ptr().add((i0 + i) * a.stride));
        let bp: [*const f32; C] = std::array::from_fn(|j| b.data.as_ptr().add((j0 + j) * b.stride));
        let mut sum = [[_mm512_setzero_ps(); C]; R];
        let mut t = 0;
        while t < k {
            // The tail is one masked step: lanes past k are neither read nor summed.
            let mask: __mmask16 = if k - t >= 16 {
                0xffff
            } else {
                (1u16 << (k - t)) - 1
            };
            let av: [__m512; R] =
                std::array::from_fn(|i| _mm512_maskz_loadu_ps(mask, ap[i].add(t)));
            for j in 0..C {
                let bv = _mm512_maskz_loadu_ps(mask, bp[j].add(t));
                for i in 0..R {
                    sum[i][j] = _mm512_fmadd_ps(av[i], bv, sum[i][j]);
                }
            }
            t += 16;
        }
        for (i, row) in sum.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                out.put(i0 + i, j0 + j, _mm512_reduce_add_ps(*v));
            }
        }
    }

    /// The blocked product on AVX-512F (bounds checked by the caller).
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn body(out: &mut Out<'_>, a: Rows<'_>, b: Rows<'_>, k: usize) {
        walk(
            out,
            (a.rows, b.rows, k),
            (MI, NJ),
            &mut |out, i, j, r, c| match (r, c) {
                (MI, NJ) => tile::<MI, NJ>(out, a, b, k, i, j),
                (MI, _) => tile::<MI, 1>(out, a, b, k, i, j),
                (_, NJ) => tile::<1, NJ>(out, a, b, k, i, j),
                _ => tile::<1, 1>(out, a, b, k, i, j),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(m: usize, n: usize, k: usize, f: impl Fn(Out<'_>, Rows<'_>, Rows<'_>, usize)) {
        let a: Vec<f32> = (0..m * (k + 3)).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut dst = vec![0.5f32; m * n];
        let out = Out {
            dst: &mut dst,
            ld: n,
            accumulate: true,
        };
        f(
            out,
            Rows {
                data: &a,
                rows: m,
                stride: k + 3,
            },
            Rows {
                data: &b,
                rows: n,
                stride: k,
            },
            k,
        );
        for i in 0..m {
            for j in 0..n {
                let want: f64 = 0.5
                    + (0..k)
                        .map(|t| a[i * (k + 3) + t] as f64 * b[j * k + t] as f64)
                        .sum::<f64>();
                assert!(
                    (dst[i * n + j] as f64 - want).abs() < 1e-3 * (1.0 + want.abs()),
                    "{m}x{n}x{k} at {i},{j}"
                );
            }
        }
    }

    #[test]
    fn matches_a_naive_product_on_ragged_sizes() {
        for (m, n, k) in [
            (1, 1, 1),
            (3, 5, 13),
            (2, 4, 16),
            (5, 9, 37),
            (8, 72, 1088),
            (4, 70000, 5),
        ] {
            check(m, n, k, matmul_nt);
            check(m, n, k, |mut o, a, b, k| portable_body(&mut o, a, b, k));
            // The AVX2 build too where AVX-512 is what dispatch picks.
            #[cfg(target_arch = "x86_64")]
            if VectorWidth::detect() >= VectorWidth::Avx2 {
                // SAFETY: the CPU has the features; `check`'s operands fit their shapes.
                check(m, n, k, |mut o, a, b, k| unsafe {
                    avx2::body(&mut o, a, b, k)
                });
            }
        }
    }
}
