//! bfloat16 matrix products with float32 accumulation, as PyTorch's bf16 autocast computes a
//! convolution or linear layer: both operands rounded to bf16 (round to nearest even), every
//! product summed in f32. On a CPU with AVX512-BF16 each `vdpbf16ps` multiplies 16 column pairs
//! of bf16 and adds them into f32 lanes; the weights are packed once (per model for inference),
//! the activations converted in a packing pass per product.
//!
//! Layouts: a pair is one `u32` holding two bf16 that are neighbours along K (element `2p` in
//! the low half, `2p + 1` in the high half, zero past K). The weights are `NR`-column panels,
//! pair-major: `[n / NR][K / 2][NR]`; the activations row-major pairs `[m][K / 2]`.

/// Columns of one packed weight panel (two AVX-512 vectors).
pub const NR: usize = 32;
/// Rows of one register tile.
const MR: usize = 12;

/// Whether this CPU runs the bf16 kernels (AVX512-BF16 with AVX-512F and BW, as every CPU with
/// AVX512-BF16 has), and the kernels' vector width is AVX-512 (`PROTOCLUST_VECTORS=avx2` turns
/// them off with the other AVX-512 kernels).
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static CPU: OnceLock<bool> = OnceLock::new();
        let cpu = *CPU.get_or_init(|| {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512bf16")
        });
        cpu && super::isa::VectorWidth::current() == super::isa::VectorWidth::Avx512
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` rounded to the nearest bf16 (ties to even), as its 16 bits; NaN stays NaN.
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// The f32 value of bf16 bits.
pub fn bf16_value(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// A K × N float32 matrix rounded to bf16 and packed for [`matmul`].
#[derive(Debug, Clone)]
pub struct PackedWeights {
    k: usize,
    n: usize,
    /// `[ceil(n / NR)][ceil(k / 2)][NR]` pairs.
    panels: Vec<u32>,
}

impl PackedWeights {
    /// Packs the row-major `k × n` matrix `w`.
    ///
    /// # Panics
    /// When `w` is not `k × n` (a caller bug).
    pub fn new(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n, "PackedWeights: shape");
        let mut panels = vec![0u32; panels_len(k, n)];
        pack_rows(w, n, k, n, &mut panels);
        Self { k, n, panels }
    }

    /// The packed matrix, as [`matmul`] takes it.
    pub fn panels(&self) -> Panels<'_> {
        Panels {
            k: self.k,
            n: self.n,
            data: &self.panels,
        }
    }
}

/// A borrowed K × N matrix of bf16 pairs in `NR`-column panels (see the module's layouts):
/// a [`PackedWeights`], or a product's operand packed per call by [`pack_rows`].
#[derive(Debug, Clone, Copy)]
pub struct Panels<'a> {
    k: usize,
    n: usize,
    data: &'a [u32],
}

impl<'a> Panels<'a> {
    /// The `k × n` matrix whose panels `data` holds, e.g. several packed side by side, each
    /// a whole number of panels.
    ///
    /// # Panics
    /// When `data` is not [`panels_len`]`(k, n)` long.
    pub fn new(k: usize, n: usize, data: &'a [u32]) -> Self {
        assert_eq!(data.len(), panels_len(k, n), "Panels: length");
        Self { k, n, data }
    }
}

/// Pairs a packed `k × n` matrix takes.
pub fn panels_len(k: usize, n: usize) -> usize {
    n.div_ceil(NR) * k.div_ceil(2) * NR
}

/// Packs the `k × n` matrix whose row `r` is `src[r·ld..][..n]`, rounded to bf16, into `out`
/// ([`panels_len`] long; columns past `n` and the pair after an odd `k` are zero).
///
/// # Panics
/// When `src` or `out` is too short (a caller bug).
pub fn pack_rows<'a>(src: &[f32], ld: usize, k: usize, n: usize, out: &'a mut [u32]) -> Panels<'a> {
    assert!(
        k == 0 || n == 0 || (k - 1) * ld + n <= src.len(),
        "pack_rows: source too short"
    );
    pack_row_slices(k, n, |r| &src[r * ld..r * ld + n], out)
}

/// Packs the `k × n` matrix whose row `r` is `row(r)` (`n` long), rounded to bf16, into `out`
/// ([`panels_len`] long; columns past `n` and the pair after an odd `k` are zero).
///
/// # Panics
/// When a row is not `n` long or `out` is too short (a caller bug).
pub fn pack_row_slices<'s, 'a>(
    k: usize,
    n: usize,
    row: impl Fn(usize) -> &'s [f32],
    out: &'a mut [u32],
) -> Panels<'a> {
    let len = panels_len(k, n);
    assert!(out.len() >= len, "pack_rows: output too short");
    let out = &mut out[..len];
    let kp = k.div_ceil(2);
    let whole = n / NR;
    let vector = supported() && k >= 2 && whole > 0;
    for p in 0..kp {
        let r0 = row(2 * p);
        let r1 = (2 * p + 1 < k).then(|| row(2 * p + 1));
        assert!(
            r0.len() == n && r1.is_none_or(|r| r.len() == n),
            "pack_rows: a row is not n long"
        );
        // Whole panels of whole pairs in registers; the rest one by one.
        let first = match r1 {
            #[cfg(target_arch = "x86_64")]
            Some(r1) if vector => {
                // SAFETY: `supported()` holds; both rows hold `whole` panels of NR columns, and
                // pair p of each of those panels lies in `out`.
                unsafe { avx512::pack_pair(r0, r1, whole, kp, p, out) };
                whole
            }
            _ => 0,
        };
        for j in first..n.div_ceil(NR) {
            for c in 0..NR {
                let col = j * NR + c;
                out[(j * kp + p) * NR + c] = if col >= n {
                    0
                } else {
                    let lo = bf16_bits(r0[col]) as u32;
                    let hi = r1.map_or(0, |r| bf16_bits(r[col]) as u32);
                    lo | (hi << 16)
                };
            }
        }
    }
    Panels { k, n, data: out }
}

/// Packs the transpose of the `n × k` matrix whose row `c` is `src[c·ld..][..k]` (a `k × n`
/// matrix), rounded to bf16, into `out` ([`panels_len`]`(k, n)` long), through an f32
/// transpose in `scratch` (`k · n` long).
///
/// # Panics
/// When a slice is too short (a caller bug).
pub fn pack_columns<'a>(
    src: &[f32],
    ld: usize,
    k: usize,
    n: usize,
    scratch: &mut [f32],
    out: &'a mut [u32],
) -> Panels<'a> {
    let t = &mut scratch[..k * n];
    super::transpose::transpose(src, ld, (n, k), t, |j| j * n);
    pack_rows(t, n, k, n, out)
}

thread_local! {
    static PAIRS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
    static PANELS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's pair buffer of at least `len` elements (contents arbitrary); a
/// nested call gets a fresh buffer.
pub fn with_pairs<R>(len: usize, f: impl FnOnce(&mut [u32]) -> R) -> R {
    super::scratch::with_buffer(&PAIRS, len, f)
}

/// Runs `f` on this thread's panel buffer of at least `len` elements (contents arbitrary),
/// for operands packed per product; a nested call gets a fresh buffer.
pub fn with_panels<R>(len: usize, f: impl FnOnce(&mut [u32]) -> R) -> R {
    super::scratch::with_buffer(&PANELS, len, f)
}

/// `src` (an even count, or odd with a zero high half last) as bf16 pairs in `dst`.
///
/// # Panics
/// When `dst` is not `ceil(src.len() / 2)` long, or the CPU lacks AVX512-BF16.
pub fn to_pairs(src: &[f32], dst: &mut [u32]) {
    assert_eq!(dst.len(), src.len().div_ceil(2), "to_pairs: lengths");
    assert!(supported(), "bf16: the CPU has no AVX512-BF16");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `supported()` holds; the lengths are checked above.
    unsafe {
        avx512::to_pairs(src, dst)
    }
}

/// The bf16 halves of `pairs`, in memory order: element 2p is pair p's low half on the
/// little-endian CPUs these kernels run on, so a row of bf16 written here reads back as pairs
/// of neighbours.
pub fn halves_mut(pairs: &mut [u32]) -> &mut [u16] {
    const {
        assert!(
            cfg!(target_endian = "little"),
            "bf16 pairs assume little-endian"
        )
    };
    // SAFETY: two u16 occupy exactly one u32, whose alignment is stricter; the borrow of
    // `pairs` is moved into the result.
    unsafe { std::slice::from_raw_parts_mut(pairs.as_mut_ptr() as *mut u16, pairs.len() * 2) }
}

/// `out[i]` = the pair (`lo[i]`, `hi[i]`) of bf16 already rounded.
///
/// # Panics
/// When `lo` or `hi` is not as long as `out`.
pub fn zip_halves(lo: &[u16], hi: &[u16], out: &mut [u32]) {
    assert!(
        lo.len() == out.len() && hi.len() == out.len(),
        "zip_halves: lengths"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512BW is present where `supported()` holds; the lengths are checked above.
    let done = if supported() {
        unsafe { avx512::zip_halves(lo, hi, out) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for i in done..out.len() {
        out[i] = lo[i] as u32 | ((hi[i] as u32) << 16);
    }
}

/// `dst (m × n, row-major) = epilogue(bf16(a) · w)` with f32 accumulation, for the row-major
/// `m × k` float32 `a`, on this thread.
///
/// # Panics
/// When the shapes disagree, or the CPU lacks AVX512-BF16 (callers check [`supported`]).
pub fn matmul(dst: &mut [f32], a: &[f32], m: usize, w: Panels, epi: Epilogue) {
    let k = w.k;
    assert_eq!(a.len(), m * k, "bf16 matmul: a is not m × k");
    let kp = k.div_ceil(2);
    with_pairs(m * kp, |pairs| {
        rows_to_pairs(a, k, m, k, pairs);
        matmul_pairs(dst, pairs, m, w, epi);
    });
}

/// The `rows × len` matrix whose row `r` is `src[r·ld..][..len]` as bf16 pairs, row by row
/// (`ceil(len / 2)` each, a zero high half after an odd `len`), into `out`.
///
/// # Panics
/// When a slice is too short, or the CPU lacks AVX512-BF16.
pub fn rows_to_pairs(src: &[f32], ld: usize, rows: usize, len: usize, out: &mut [u32]) {
    let lp = len.div_ceil(2);
    for r in 0..rows {
        to_pairs(&src[r * ld..r * ld + len], &mut out[r * lp..(r + 1) * lp]);
    }
}

/// What the product's output pass adds and clips: `relu?(a·w + bias [+ residual])`, all f32,
/// or with `accumulate` `dst + a·w` (then nothing else).
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// The product is added onto `dst` (its previous contents), not written over it.
    pub accumulate: bool,
    /// Added to every row (n).
    pub bias: Option<&'a [f32]>,
    /// Added element-wise (m × n, the output's layout).
    pub residual: Option<&'a [f32]>,
    /// Negative values to zero.
    pub relu: bool,
}

/// `dst (m × n, row-major) = epilogue(a · w)` with f32 accumulation, for `a` given as bf16
/// pairs, row-major `m × ceil(k / 2)`, on this thread.
///
/// # Panics
/// When the shapes disagree, or the CPU lacks AVX512-BF16 (callers check [`supported`]).
pub fn matmul_pairs(dst: &mut [f32], pairs: &[u32], m: usize, w: Panels, epi: Epilogue) {
    let (k, n) = (w.k, w.n);
    let kp = k.div_ceil(2);
    assert_eq!(pairs.len(), m * kp, "bf16 matmul: a is not m × k/2 pairs");
    assert_eq!(dst.len(), m * n, "bf16 matmul: dst is not m × n");
    assert!(
        epi.bias.is_none_or(|b| b.len() == n),
        "bf16 matmul: bias length"
    );
    assert!(
        epi.residual.is_none_or(|r| r.len() == m * n),
        "bf16 matmul: residual shape"
    );
    assert!(
        !epi.accumulate || (epi.bias.is_none() && epi.residual.is_none() && !epi.relu),
        "bf16 matmul: an accumulating product has no other output pass"
    );
    assert_eq!(w.data.len(), panels_len(k, n), "bf16 matmul: panels");
    assert!(supported(), "bf16 matmul: the CPU has no AVX512-BF16");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `supported()` holds (asserted above); every index is within the slices.
    unsafe {
        avx512::product(dst, pairs, m, n, kp, w.data, epi);
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// 32 bf16 seen as 16 integer lanes (the same 512 bits).
    #[inline(always)]
    fn bits(v: __m512bh) -> __m512i {
        // SAFETY: both are 512-bit vectors of plain bits.
        unsafe { std::mem::transmute(v) }
    }

    /// 16 integer lanes seen as 32 bf16 (the same 512 bits).
    #[inline(always)]
    pub(in crate::kernels) fn pairs(v: __m512i) -> __m512bh {
        // SAFETY: both are 512-bit vectors of plain bits.
        unsafe { std::mem::transmute(v) }
    }

    /// `src` as bf16 pairs (a zero high half after an odd count).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn to_pairs(src: &[f32], dst: &mut [u32]) {
        let k = src.len();
        let mut i = 0;
        // 32 floats → 16 pairs per step.
        while i + 32 <= k {
            let lo = _mm512_loadu_ps(src.as_ptr().add(i));
            let hi = _mm512_loadu_ps(src.as_ptr().add(i + 16));
            let v = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512(dst.as_mut_ptr().add(i / 2) as *mut __m512i, bits(v));
            i += 32;
        }
        while i < k {
            let lo = super::bf16_bits(src[i]) as u32;
            let hi = if i + 1 < k {
                super::bf16_bits(src[i + 1]) as u32
            } else {
                0
            };
            dst[i / 2] = lo | (hi << 16);
            i += 2;
        }
    }

    /// Pair `p` of the first `panels` whole panels: the rows `r0` (2p) and `r1` (2p + 1),
    /// rounded and interleaved into `out[(j·kp + p)·NR..][..NR]` for each panel j.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn pack_pair(
        r0: &[f32],
        r1: &[f32],
        panels: usize,
        kp: usize,
        p: usize,
        out: &mut [u32],
    ) {
        // Lane 2i takes element i of the low half (row 2p), lane 2i + 1 element i of the high
        // half (row 2p + 1).
        let mut index = [0i16; 32];
        for i in 0..16 {
            index[2 * i] = i as i16;
            index[2 * i + 1] = 16 + i as i16;
        }
        let index = _mm512_loadu_si512(index.as_ptr() as *const __m512i);
        let (a, b) = (r0.as_ptr(), r1.as_ptr());
        let o = out.as_mut_ptr();
        for j in 0..panels {
            for h in 0..2 {
                let c = j * NR + 16 * h;
                let v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(b.add(c)), _mm512_loadu_ps(a.add(c)));
                let v = _mm512_permutexvar_epi16(index, bits(v));
                _mm512_storeu_si512(o.add((j * kp + p) * NR + 16 * h) as *mut __m512i, v);
            }
        }
    }

    /// `out[i] = (lo[i], hi[i])` for whole vectors of 32; returns how many were done.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn zip_halves(lo: &[u16], hi: &[u16], out: &mut [u32]) -> usize {
        // Lane 2i of the first 16 pairs takes lo[i], lane 2i + 1 hi[i] (index 32 + i); the
        // second 16 pairs the same from element 16.
        let mut first = [0i16; 32];
        for i in 0..16 {
            first[2 * i] = i as i16;
            first[2 * i + 1] = 32 + i as i16;
        }
        let second = first.map(|v| v + 16);
        let first = _mm512_loadu_si512(first.as_ptr() as *const __m512i);
        let second = _mm512_loadu_si512(second.as_ptr() as *const __m512i);
        let n = out.len() / 32 * 32;
        for i in (0..n).step_by(32) {
            let a = _mm512_loadu_si512(lo.as_ptr().add(i) as *const __m512i);
            let b = _mm512_loadu_si512(hi.as_ptr().add(i) as *const __m512i);
            let o = out.as_mut_ptr().add(i);
            _mm512_storeu_si512(o as *mut __m512i, _mm512_permutex2var_epi16(a, first, b));
            _mm512_storeu_si512(
                o.add(16) as *mut __m512i,
                _mm512_permutex2var_epi16(a, second, b),
            );
        }
        n
    }

    /// `dst = epilogue(A · W)` tile by tile: for each weight panel, every MR-row block of A.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn product(
        dst: &mut [f32],
        pairs: &[u32],
        m: usize,
        n: usize,
        kp: usize,
        panels: &[u32],
        epi: super::Epilogue,
    ) {
        let mut tile = [0f32; MR * NR];
        // The last block's rows, padded with zero rows to MR.
        let full = m / MR * MR;
        let mut last = vec![0u32; if full < m { MR * kp } else { 0 }];
        last[..(m - full) * kp].copy_from_slice(&pairs[full * kp..]);
        for j in 0..n.div_ceil(NR) {
            let panel = panels.as_ptr().add(j * kp * NR);
            let cols = (n - j * NR).min(NR);
            for i in (0..m).step_by(MR) {
                let rows = (m - i).min(MR);
                let a = if rows == MR {
                    pairs.as_ptr().add(i * kp)
                } else {
                    last.as_ptr()
                };
                if cols == NR && rows == MR {
                    let at = i * n + j * NR;
                    let fused = Fused {
                        bias: epi
                            .bias
                            .map_or(std::ptr::null(), |b| b.as_ptr().add(j * NR)),
                        residual: epi
                            .residual
                            .map_or(std::ptr::null(), |r| r.as_ptr().add(at)),
                        relu: epi.relu,
                        accumulate: epi.accumulate,
                    };
                    kernel::<MR>(a, kp, panel, dst.as_mut_ptr().add(at), n, fused);
                } else {
                    // The last rows in a tile of 4 or 8 where they fit (no products of the
                    // zero rows: 64 rows are 5 tiles of 12 and one of 4).
                    let out = tile.as_mut_ptr();
                    match rows {
                        1..=4 => kernel::<4>(a, kp, panel, out, NR, Fused::NONE),
                        5..=8 => kernel::<8>(a, kp, panel, out, NR, Fused::NONE),
                        _ => kernel::<MR>(a, kp, panel, out, NR, Fused::NONE),
                    }
                    for r in 0..rows {
                        let at = (i + r) * n + j * NR;
                        for c in 0..cols {
                            let mut v = tile[r * NR + c];
                            if epi.accumulate {
                                v += dst[at + c];
                            }
                            if let Some(b) = epi.bias {
                                v += b[j * NR + c];
                            }
                            if let Some(res) = epi.residual {
                                v += res[at + c];
                            }
                            dst[at + c] = if epi.relu { v.max(0.0) } else { v };
                        }
                    }
                }
            }
        }
    }

    /// The output pass of a full tile: bias at the tile's first column, residual at its first
    /// element (rows `ld` apart, as the output), each null when absent; or the output's own
    /// values added (`accumulate`).
    #[derive(Clone, Copy)]
    struct Fused {
        bias: *const f32,
        residual: *const f32,
        relu: bool,
        accumulate: bool,
    }

    impl Fused {
        const NONE: Fused = Fused {
            bias: std::ptr::null(),
            residual: std::ptr::null(),
            relu: false,
            accumulate: false,
        };
    }

    /// One R × NR tile (R ≤ MR rows) over all `kp` pairs, stored at `out` (rows `ld` apart) through `fused`:
    /// `a` the block's first row (rows `kp` apart).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn kernel<const R: usize>(
        a: *const u32,
        kp: usize,
        b: *const u32,
        out: *mut f32,
        ld: usize,
        fused: Fused,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        for p in 0..kp {
            let b0 = pairs(_mm512_loadu_si512(b.add(p * NR) as *const __m512i));
            let b1 = pairs(_mm512_loadu_si512(b.add(p * NR + 16) as *const __m512i));
            for (r, [lo, hi]) in acc.iter_mut().enumerate() {
                let x = pairs(_mm512_set1_epi32(*a.add(r * kp + p) as i32));
                *lo = _mm512_dpbf16_ps(*lo, x, b0);
                *hi = _mm512_dpbf16_ps(*hi, x, b1);
            }
        }
        if !fused.bias.is_null() {
            let (c0, c1) = (
                _mm512_loadu_ps(fused.bias),
                _mm512_loadu_ps(fused.bias.add(16)),
            );
            for [lo, hi] in &mut acc {
                *lo = _mm512_add_ps(*lo, c0);
                *hi = _mm512_add_ps(*hi, c1);
            }
        }
        if !fused.residual.is_null() {
            for (r, [lo, hi]) in acc.iter_mut().enumerate() {
                let res = fused.residual.add(r * ld);
                *lo = _mm512_add_ps(*lo, _mm512_loadu_ps(res));
                *hi = _mm512_add_ps(*hi, _mm512_loadu_ps(res.add(16)));
            }
        }
        if fused.accumulate {
            for (r, [lo, hi]) in acc.iter_mut().enumerate() {
                let o = out.add(r * ld);
                *lo = _mm512_add_ps(*lo, _mm512_loadu_ps(o));
                *hi = _mm512_add_ps(*hi, _mm512_loadu_ps(o.add(16)));
            }
        }
        if fused.relu {
            let zero = _mm512_setzero_ps();
            for v in acc.iter_mut().flatten() {
                *v = _mm512_max_ps(*v, zero);
            }
        }
        for (r, [lo, hi]) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(r * ld), *lo);
            _mm512_storeu_ps(out.add(r * ld + 16), *hi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16(x: f32) -> f64 {
        bf16_value(bf16_bits(x)) as f64
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even 1.
        assert_eq!(bf16_value(bf16_bits(1.0 + 1.0 / 256.0)), 1.0);
        assert_eq!(bf16_value(bf16_bits(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert!(bf16_value(bf16_bits(f32::NAN)).is_nan());
        assert_eq!(bf16_value(bf16_bits(f32::INFINITY)), f32::INFINITY);
    }

    #[test]
    fn products_equal_the_bf16_rounded_reference_on_odd_shapes() {
        if !supported() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let mut seed = 7u64;
        let mut rand = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        };
        for (m, k, n) in [
            (1, 1, 1),
            (13, 7, 33),
            (25, 64, 64),
            (12, 147, 32),
            (37, 577, 70),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rand()).collect();
            let w: Vec<f32> = (0..k * n).map(|_| rand()).collect();
            let packed = PackedWeights::new(&w, k, n);
            let mut got = vec![f32::NAN; m * n];
            matmul(&mut got, &a, m, packed.panels(), Epilogue::default());
            for i in 0..m {
                for j in 0..n {
                    let exact: f64 = (0..k)
                        .map(|p| bf16(a[i * k + p]) * bf16(w[p * n + j]))
                        .sum();
                    let mag: f64 = (0..k)
                        .map(|p| (bf16(a[i * k + p]) * bf16(w[p * n + j])).abs())
                        .sum();
                    // f32 accumulation of k exact bf16 products.
                    let tol = (k as f64) * f32::EPSILON as f64 * mag + 1e-30;
                    let err = (got[i * n + j] as f64 - exact).abs();
                    assert!(err <= tol, "{m}×{k}×{n} ({i},{j}): {err:e} > {tol:e}");
                }
            }
            // The output pass: relu(a·w + bias + residual), added in that order.
            let bias: Vec<f32> = (0..n).map(|_| rand()).collect();
            let residual: Vec<f32> = (0..m * n).map(|_| rand()).collect();
            let mut fused = vec![f32::NAN; m * n];
            let epi = Epilogue {
                bias: Some(&bias),
                residual: Some(&residual),
                relu: true,
                accumulate: false,
            };
            matmul(&mut fused, &a, m, packed.panels(), epi);
            for (i, (f, g)) in fused.iter().zip(&got).enumerate() {
                let want = (g + bias[i % n] + residual[i]).max(0.0);
                assert_eq!(f.to_bits(), want.to_bits(), "{m}×{k}×{n} element {i}");
            }
        }
    }

    #[test]
    fn packing_follows_the_layout_and_products_accumulate() {
        // Rows `ld` apart, k odd, n past whole panels: pair p of column c is the rounded rows
        // 2p and 2p + 1 of that column (zero past k and n), whatever path packed it.
        let (k, n, ld) = (7, 70, 75);
        let src: Vec<f32> = (0..k * ld).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut out = vec![u32::MAX; panels_len(k, n)];
        pack_rows(&src, ld, k, n, &mut out);
        let kp = k.div_ceil(2);
        for j in 0..n.div_ceil(NR) {
            for p in 0..kp {
                for c in 0..NR {
                    let col = j * NR + c;
                    let at = |r: usize| {
                        if r < k && col < n {
                            bf16_bits(src[r * ld + col]) as u32
                        } else {
                            0
                        }
                    };
                    let want = at(2 * p) | (at(2 * p + 1) << 16);
                    assert_eq!(
                        out[(j * kp + p) * NR + c],
                        want,
                        "panel {j} pair {p} col {c}"
                    );
                }
            }
        }
        // The transposed packing equals packing the transpose.
        let t: Vec<f32> = (0..n * k).map(|i| src[(i % k) * ld + i / k]).collect();
        let (mut scratch, mut cols) = (vec![0.0; k * n], vec![0; panels_len(k, n)]);
        pack_columns(&t, k, k, n, &mut scratch, &mut cols);
        assert_eq!(cols, out);
        if !supported() {
            eprintln!("skipped the products: this CPU has no AVX512-BF16");
            return;
        }
        // Zipped halves: whole vectors and a tail.
        let lo: Vec<u16> = (0..77).map(|i| i as u16 * 3).collect();
        let hi: Vec<u16> = (0..77).map(|i| 1000 + i as u16).collect();
        let mut zipped = vec![u32::MAX; 70];
        zip_halves(&lo[..70], &hi[7..], &mut zipped);
        for (i, z) in zipped.iter().enumerate() {
            assert_eq!(
                *z,
                lo[i] as u32 | ((hi[7 + i] as u32) << 16),
                "zipped half {i}"
            );
        }
        // Accumulating adds the product onto what dst held, full tiles and edges alike.
        let m = 14;
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let w = Panels::new(k, n, &out);
        let mut once = vec![0.0; m * n];
        matmul(&mut once, &a, m, w, Epilogue::default());
        let mut twice = once.clone();
        let epi = Epilogue {
            accumulate: true,
            ..Epilogue::default()
        };
        matmul(&mut twice, &a, m, w, epi);
        for (t, o) in twice.iter().zip(&once) {
            assert_eq!(*t, 2.0 * o);
        }
    }
}
