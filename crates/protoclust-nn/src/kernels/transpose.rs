//! Matrix transposes into channels-last layouts, 16 × 16 blocks in registers where the CPU has
//! AVX-512.

use super::isa::VectorWidth;

/// Block side of the register transpose.
const BLOCK: usize = 16;

/// `dst[at(j) + i] = src[i·ld + j]` for `i < rows`, `j < cols`: column `j` of the row-major
/// `src` (row stride `ld`) becomes the `rows` floats at `dst[at(j)..]`.
///
/// # Panics
/// When `src` is shorter than the matrix or an output row reaches past `dst` (a caller bug).
pub fn transpose(
    src: &[f32],
    ld: usize,
    shape: (usize, usize),
    dst: &mut [f32],
    at: impl Fn(usize) -> usize,
) {
    let blocked = cfg!(target_arch = "x86_64") && VectorWidth::current() == VectorWidth::Avx512;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: only called where `blocked` holds (AVX-512F is present), on blocks `transposed`
    // has checked.
    let block = |i0, j0, dst: &mut [f32], at: &dyn Fn(usize) -> usize| unsafe {
        avx512::block(src, ld, (i0, j0), dst, at)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let block = |_, _, _: &mut [f32], _: &dyn Fn(usize) -> usize| {};
    transposed(src, ld, shape, dst, &at, blocked.then_some(block), |v| v);
}

/// [`transpose`] into bf16 (round to nearest even): `dst[at(j) + i] = bf16(src[i·ld + j])`.
///
/// # Panics
/// When `src` is shorter than the matrix or an output row reaches past `dst` (a caller bug).
pub fn transpose_bf16(
    src: &[f32],
    ld: usize,
    shape: (usize, usize),
    dst: &mut [u16],
    at: impl Fn(usize) -> usize,
) {
    let blocked = cfg!(target_arch = "x86_64") && super::bf16_gemm::supported();
    #[cfg(target_arch = "x86_64")]
    // SAFETY: only called where `blocked` holds (AVX512-BF16 is present), on blocks
    // `transposed` has checked.
    let block = |i0, j0, dst: &mut [u16], at: &dyn Fn(usize) -> usize| unsafe {
        avx512::block_bf16(src, ld, (i0, j0), dst, at)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let block = |_, _, _: &mut [u16], _: &dyn Fn(usize) -> usize| {};
    let round = super::bf16_gemm::bf16_bits;
    transposed(src, ld, shape, dst, &at, blocked.then_some(block), round);
}

/// The transpose of [`transpose`] with each value stored as `round(v)`: whole 16 × 16 blocks
/// by `block(i0, j0, dst, at)` where given, the rest one by one.
fn transposed<T>(
    src: &[f32],
    ld: usize,
    (rows, cols): (usize, usize),
    dst: &mut [T],
    at: &dyn Fn(usize) -> usize,
    block: Option<impl Fn(usize, usize, &mut [T], &dyn Fn(usize) -> usize)>,
    round: impl Fn(f32) -> T,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        (rows - 1) * ld + cols <= src.len() && (0..cols).all(|j| at(j) + rows <= dst.len()),
        "transpose: out of bounds"
    );
    // Whole 16 × 16 blocks: rows i0..i0+16 of columns j0..j0+16 lie in `src` and the 16
    // output rows at `at(j0 + j) + i0` in `dst` (checked above). (rows, columns) done.
    let done = match &block {
        Some(block) => {
            let done = (rows / BLOCK * BLOCK, cols / BLOCK * BLOCK);
            for i0 in (0..done.0).step_by(BLOCK) {
                for j0 in (0..done.1).step_by(BLOCK) {
                    block(i0, j0, dst, at);
                }
            }
            done
        }
        None => (0, 0),
    };
    // What the blocks left: the rows below them, and the columns right of them.
    for j in 0..cols {
        let first = if j < done.1 { done.0 } else { 0 };
        let out = &mut dst[at(j)..][..rows];
        for (i, d) in out.iter_mut().enumerate().skip(first) {
            *d = round(src[i * ld + j]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::BLOCK;
    use std::arch::x86_64::*;

    /// The 16 × 16 block at `s` (rows `ld` apart) transposed in registers: vector j holds
    /// column j.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn columns(s: *const f32, ld: usize) -> [__m512; BLOCK] {
        let r: [__m512; BLOCK] = std::array::from_fn(|i| _mm512_loadu_ps(s.add(i * ld)));
        // Pairs of rows interleaved: per 128-bit lane L, a[2k] holds columns 4L, 4L + 1 and
        // a[2k + 1] columns 4L + 2, 4L + 3 of rows 2k, 2k + 1.
        let a: [__m512; BLOCK] = std::array::from_fn(|n| {
            let (x, y) = (r[n / 2 * 2], r[n / 2 * 2 + 1]);
            if n % 2 == 0 {
                _mm512_unpacklo_ps(x, y)
            } else {
                _mm512_unpackhi_ps(x, y)
            }
        });
        // Quads: b[4m + q] holds, per lane L, column 4L + q of rows 4m .. 4m + 3.
        let b: [__m512; BLOCK] = std::array::from_fn(|n| {
            let (m, q) = (n / 4, n % 4);
            let (x, y) = (
                _mm512_castps_pd(a[4 * m + q / 2]),
                _mm512_castps_pd(a[4 * m + 2 + q / 2]),
            );
            _mm512_castpd_ps(if q % 2 == 0 {
                _mm512_unpacklo_pd(x, y)
            } else {
                _mm512_unpackhi_pd(x, y)
            })
        });
        // The 4 × 4 transpose of 128-bit lanes: column 4L + q gathers lane L of b[4m + q].
        let mut out = [_mm512_setzero_ps(); BLOCK];
        for q in 0..4 {
            let [b0, b1, b2, b3] = [b[q], b[4 + q], b[8 + q], b[12 + q]];
            let c0 = _mm512_shuffle_f32x4::<0x44>(b0, b1);
            let c1 = _mm512_shuffle_f32x4::<0xEE>(b0, b1);
            let c2 = _mm512_shuffle_f32x4::<0x44>(b2, b3);
            let c3 = _mm512_shuffle_f32x4::<0xEE>(b2, b3);
            out[q] = _mm512_shuffle_f32x4::<0x88>(c0, c2);
            out[4 + q] = _mm512_shuffle_f32x4::<0xDD>(c0, c2);
            out[8 + q] = _mm512_shuffle_f32x4::<0x88>(c1, c3);
            out[12 + q] = _mm512_shuffle_f32x4::<0xDD>(c1, c3);
        }
        out
    }

    /// The 16 × 16 block at (i0, j0) of `src`, transposed in registers.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn block(
        src: &[f32],
        ld: usize,
        (i0, j0): (usize, usize),
        dst: &mut [f32],
        at: &dyn Fn(usize) -> usize,
    ) {
        let cols = columns(src.as_ptr().add(i0 * ld + j0), ld);
        for (j, v) in cols.iter().enumerate() {
            _mm512_storeu_ps(dst.as_mut_ptr().add(at(j0 + j) + i0), *v);
        }
    }

    /// [`block`] with each output row rounded to bf16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn block_bf16(
        src: &[f32],
        ld: usize,
        (i0, j0): (usize, usize),
        dst: &mut [u16],
        at: &dyn Fn(usize) -> usize,
    ) {
        let cols = columns(src.as_ptr().add(i0 * ld + j0), ld);
        for (j, v) in cols.iter().enumerate() {
            let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(*v));
            _mm256_storeu_si256(dst.as_mut_ptr().add(at(j0 + j) + i0) as *mut __m256i, h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_scalar_transpose_on_blocks_and_edges() {
        for (rows, cols, ld) in [
            (16, 16, 16),
            (35, 50, 53),
            (3, 40, 40),
            (40, 3, 7),
            (1, 1, 1),
        ] {
            let src: Vec<f32> = (0..(rows - 1) * ld + cols).map(|v| v as f32).collect();
            // Output rows of `rows` floats, 5 apart beyond that, the last one reversed first.
            let at = |j: usize| (cols - 1 - j) * (rows + 5) + 2;
            let mut dst = vec![-1.0; cols * (rows + 5) + 2];
            transpose(&src, ld, (rows, cols), &mut dst, at);
            for j in 0..cols {
                for i in 0..rows {
                    assert_eq!(dst[at(j) + i], src[i * ld + j], "{rows}x{cols}: ({i}, {j})");
                }
                assert_eq!(dst[at(j) + rows], -1.0, "{rows}x{cols}: past row {j}");
            }
            let mut half = vec![u16::MAX; dst.len()];
            transpose_bf16(&src, ld, (rows, cols), &mut half, at);
            for j in 0..cols {
                for i in 0..rows {
                    let want = crate::kernels::bf16_gemm::bf16_bits(src[i * ld + j]);
                    assert_eq!(half[at(j) + i], want, "bf16 {rows}x{cols}: ({i}, {j})");
                }
                assert_eq!(
                    half[at(j) + rows],
                    u16::MAX,
                    "bf16 {rows}x{cols}: past row {j}"
                );
            }
        }
    }
}
