//! Direct stride-1 convolution on the zero-padded grid, without a patch matrix: the layers
//! with few channels, where building and reading the patch matrix costs as much as the
//! product.
//!
//! Each image is zero-padded once (C × rows × pitch). Every output pixel is computed on the
//! padded grid (the Wp − OW extra columns per row are computed and dropped), so the patch
//! matrix's row for tap `r` is the padded image itself read from offset `off[r]`, and the
//! products read it in place:
//! - forward: `Y (O × cols) = W (O × K) · X_off`, register tiles of 4 output channels × 16
//!   grid columns accumulated over the K taps;
//! - weight gradient: `dW[o][r] = Σ_n Σ_j dY_n[o][j] · x_n[off[r] + j]`, tiles of 4 output
//!   channels × 2 taps accumulated over a chunk of images, in a fixed partition of the batch;
//! - input gradient: the forward of dY with the flipped kernel ([`ConvGeometry::flipped`]).

use super::conv2d::Pass;
use super::geometry::{flip_kernel, ConvGeometry};
use super::isa::VectorWidth;
use super::lowering::{pad_image, padded};
use super::partition::sum_groups;
use super::scratch::with_scratch;
use rayon::prelude::*;

/// f32 lanes of one vector.
const LANES: usize = 8;

/// Output channels per register tile (forward) and output-gradient rows per tile (weight
/// gradient).
const MR: usize = 4;

/// Vectors of grid columns per forward register tile (4 × 2 accumulators, two column vectors
/// and a broadcast stay within AVX2's 16 registers).
const NV: usize = 2;

/// Output-gradient rows per weight-gradient register tile.
const GR: usize = 4;

/// Taps per weight-gradient register tile (GR × NT accumulators, GR + 1 operand vectors).
const NT: usize = 2;

/// Floats of padded images and gathered gradients a weight-gradient chunk keeps hot (about
/// 384 KiB of a 1 MiB L2).
const CHUNK_FLOATS: usize = 96 * 1024;

/// Grid columns of one weight-gradient pass over all tiles: the gradient rows and the taps'
/// image rows of one such block stay in L1 while every tile reads them.
const COLUMN_BLOCK: usize = 128;

/// Output width from which the grid's extra columns (KW − 1 per row) cost at most a quarter.
const MIN_OUT_WIDTH: usize = 8;

/// Channels (min of C, O) up to which the forward and input gradient beat the lowering, and
/// the same for the weight gradient: measured per layer shape (`protoclust bench --routes`,
/// docs/performance.md) on a 2-core AVX2 VM, and with AVX-512 on a 2-core Intel Xeon (model
/// 207), where the lowering's channels-last weight gradient beats this one from 16 channels
/// (32 → 32 on 16 × 16 maps: 1.3–1.9×; 16 → 16 even).
const MAX_CHANNELS: [usize; 2] = [64, 16];
const MAX_CHANNELS_AVX512: [usize; 2] = [64, 8];

/// Whether this kernel computes the convolution: stride 1 and every padding smaller than the
/// kernel (so the input gradient is one too).
pub fn applies(g: &ConvGeometry) -> bool {
    g.flipped().is_some()
}

/// Whether the direct kernel is the faster one for `pass` of a convolution it [`applies`] to.
pub fn pays(g: &ConvGeometry, pass: Pass) -> bool {
    let limits = match VectorWidth::current() {
        VectorWidth::Avx512 => MAX_CHANNELS_AVX512,
        _ => MAX_CHANNELS,
    };
    let max = limits[usize::from(pass == Pass::WeightGrad)];
    g.out_w >= MIN_OUT_WIDTH && g.in_c.min(g.out_c) <= max
}

/// The padded grid of one image.
#[derive(Debug, Clone, Copy)]
struct Grid {
    /// Row pitch of the padded image (= OW + KW − 1).
    pitch: usize,
    /// Elements of one padded channel plane.
    plane: usize,
    /// Grid columns per image, rounded up to whole vectors: (OH − 1)·pitch + OW → `cols`.
    cols: usize,
    /// Floats of one padded image plus the slack the last vector reads past its end.
    image: usize,
}

impl Grid {
    fn of(g: &ConvGeometry) -> Self {
        let (pitch, rows) = padded(g);
        let span = (g.out_h - 1) * pitch + g.out_w;
        let plane = rows * pitch;
        let cols = span.div_ceil(LANES) * LANES;
        // The last tap's row ends exactly at C · plane; vectors read up to `cols − span` past it.
        Self {
            pitch,
            plane,
            cols,
            image: g.in_c * plane + (cols - span),
        }
    }

    /// Offset in the padded image of every tap `r = (c·KH + kh)·KW + kw`.
    fn offsets(&self, g: &ConvGeometry) -> Vec<usize> {
        (0..g.in_c)
            .flat_map(|c| {
                (0..g.k_h).flat_map(move |kh| {
                    (0..g.k_w).map(move |kw| c * self.plane + kh * self.pitch + kw)
                })
            })
            .collect()
    }

    /// Pads image `x` into `pad` (`self.image` floats), slack zeroed.
    fn pad(&self, g: &ConvGeometry, x: &[f32], pad: &mut [f32]) {
        let (pitch, rows) = padded(g);
        pad_image(g, x, pitch, rows, pad);
        pad[g.in_c * self.plane..self.image].fill(0.0);
    }
}

/// `W` as panels of [`MR`] rows, tap-major (K × MR each), zero rows past `m`.
fn pack_panels(w: &[f32], m: usize, k: usize) -> Vec<f32> {
    let panels = m.div_ceil(MR);
    let mut out = vec![0.0; panels * k * MR];
    for row in 0..m {
        let (p, i) = (row / MR, row % MR);
        for r in 0..k {
            out[(p * k + r) * MR + i] = w[row * k + r];
        }
    }
    out
}

/// `y (N × O × OH × OW) = conv(x, w)` for a geometry [`applies`] accepts; every element of `y`
/// is written.
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    let grid = Grid::of(g);
    let (o, k) = (g.out_c, g.patch_len());
    let offs = grid.offsets(g);
    let panels = pack_panels(w, o, k);
    let out_len = o * grid.cols;
    y.par_chunks_mut(g.out_len())
        .zip(x.par_chunks(g.in_len()))
        .for_each(|(yi, xi)| {
            with_scratch(grid.image + out_len, |buf| {
                let (pad, res) = buf.split_at_mut(grid.image);
                grid.pad(g, xi, pad);
                product(res, grid.cols, &panels, o, pad, &offs);
                for (oc, dst) in yi.chunks_exact_mut(g.out_pixels()).enumerate() {
                    let src = &res[oc * grid.cols..];
                    for (oh, row) in dst.chunks_exact_mut(g.out_w).enumerate() {
                        row.copy_from_slice(&src[oh * grid.pitch..][..g.out_w]);
                    }
                }
            })
        });
}

/// `dx (N × C × H × W)` of a geometry [`applies`] accepts: the forward of `dy` with the
/// flipped kernel.
pub fn input_grad(g: &ConvGeometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let gi = g
        .flipped()
        .expect("direct::input_grad on a geometry it applies to");
    forward(&gi, dy, &flip_kernel(w, g), dx)
}

/// `dst (m × ld) = W · B` with `B[r][j] = b[offs[r] + j]`, `ld` a multiple of [`LANES`].
fn product(dst: &mut [f32], ld: usize, panels: &[f32], m: usize, b: &[f32], offs: &[usize]) {
    let k = offs.len();
    assert!(
        ld.is_multiple_of(LANES) && dst.len() >= m * ld,
        "direct: dst too small"
    );
    assert!(
        panels.len() >= m.div_ceil(MR) * k * MR,
        "direct: panels too small"
    );
    assert!(
        offs.iter().all(|&o| o + ld <= b.len()),
        "direct: a tap reads past its image"
    );
    // SAFETY: `VectorWidth::current` is never wider than the CPU's features; every read and
    // write was bounds-checked above.
    match VectorWidth::current() {
        #[cfg(target_arch = "x86_64")]
        VectorWidth::Avx512 => unsafe { avx512::product(dst, ld, panels, m, b, offs) },
        #[cfg(target_arch = "x86_64")]
        VectorWidth::Avx2 => unsafe { avx2::product(dst, ld, panels, m, b, offs) },
        _ => portable::product(dst, ld, panels, m, b, offs),
    }
}

/// One image's (or one chunk slot's) operands of the weight gradient.
struct Slot {
    /// Offset of the padded image in the chunk buffer.
    image: usize,
    /// Offset of the gathered output gradient (O × cols).
    grad: usize,
}

/// `sums[o][r] += Σ_slots Σ_j grad[o][j] · image[offs[r] + j]` over the chunk buffer `buf`,
/// `sums` holding [`LANES`] partial sums per (o, r) (added up by [`finish_sums`]).
fn grad_product(
    sums: &mut [f32],
    m: usize,
    cols: usize,
    buf: &[f32],
    slots: &[Slot],
    offs: &[usize],
) {
    let k = offs.len();
    assert!(
        cols.is_multiple_of(LANES) && sums.len() >= m * k * LANES,
        "direct: sums too small"
    );
    assert!(
        slots.iter().all(|s| s.grad + m * cols <= buf.len()
            && offs.iter().all(|&o| s.image + o + cols <= buf.len())),
        "direct: a slot reads past the chunk"
    );
    // SAFETY: `VectorWidth::current` is never wider than the CPU's features; every read and
    // write was bounds-checked above.
    match VectorWidth::current() {
        #[cfg(target_arch = "x86_64")]
        VectorWidth::Avx512 => unsafe { avx512::grad_product(sums, m, cols, buf, slots, offs) },
        #[cfg(target_arch = "x86_64")]
        VectorWidth::Avx2 => unsafe { avx2::grad_product(sums, m, cols, buf, slots, offs) },
        _ => portable::grad_product(sums, m, cols, buf, slots, offs),
    }
}

/// Walks the weight-gradient tiles of `m` gradient rows × `k` taps over `cols` grid columns:
/// per slot, blocks of [`COLUMN_BLOCK`] columns, tiles of `gr` rows × `taps` taps over each
/// block (edge tiles 1 wide); `tile(slot, first row and tap, rows and taps, columns)`.
#[inline(always)]
fn walk_grad(
    (m, k, cols): (usize, usize, usize),
    slots: &[Slot],
    (gr, taps): (usize, usize),
    mut tile: impl FnMut(&Slot, (usize, usize), (usize, usize), (usize, usize)),
) {
    let (mf, kf) = (m / gr * gr, k / taps * taps);
    for s in slots {
        for t0 in (0..cols).step_by(COLUMN_BLOCK) {
            let ts = (t0, (t0 + COLUMN_BLOCK).min(cols));
            for i0 in (0..mf).step_by(gr) {
                for j0 in (0..kf).step_by(taps) {
                    tile(s, (i0, j0), (gr, taps), ts);
                }
                for j in kf..k {
                    tile(s, (i0, j), (gr, 1), ts);
                }
            }
            for i in mf..m {
                for j0 in (0..kf).step_by(taps) {
                    tile(s, (i, j0), (1, taps), ts);
                }
                for j in kf..k {
                    tile(s, (i, j), (1, 1), ts);
                }
            }
        }
    }
}

/// `dst[i] = Σ_l sums[i·LANES + l]`, lanes added in a fixed order.
fn finish_sums(sums: &[f32], dst: &mut [f32]) {
    for (d, lanes) in dst.iter_mut().zip(sums.chunks_exact(LANES)) {
        *d = lanes.iter().sum();
    }
}

/// `dw (O × C × KH × KW) = Σ_n dy[n] · x[n]` at every tap, summed over a fixed partition of the
/// batch (one partial sum per group, added in group order: the result does not depend on
/// scheduling).
pub fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let grid = Grid::of(g);
    let (o, k) = (g.out_c, g.patch_len());
    let offs = grid.offsets(g);
    let slot_len = grid.image + o * grid.cols;
    let groups = rayon::current_num_threads().min(g.batch).max(1);
    let per_group = g.batch.div_ceil(groups);
    let nb = (CHUNK_FLOATS / slot_len).clamp(1, per_group.max(1));
    let partial = |grp: usize, acc: &mut [f32]| {
        let mut sums = vec![0.0; o * k * LANES];
        let end = ((grp + 1) * per_group).min(g.batch);
        for i0 in (grp * per_group..end).step_by(nb) {
            let count = nb.min(end - i0);
            with_scratch(count * slot_len, |buf| {
                let slots: Vec<Slot> = (0..count)
                    .map(|s| Slot {
                        image: s * slot_len,
                        grad: s * slot_len + grid.image,
                    })
                    .collect();
                for (s, slot) in slots.iter().enumerate() {
                    let n = i0 + s;
                    let xi = &x[n * g.in_len()..][..g.in_len()];
                    grid.pad(g, xi, &mut buf[slot.image..slot.grad]);
                    let rows = &mut buf[slot.grad..slot.grad + o * grid.cols];
                    gather(g, &grid, &dy[n * g.out_len()..][..g.out_len()], rows);
                }
                grad_product(&mut sums, o, grid.cols, buf, &slots, &offs);
            });
        }
        finish_sums(&sums, acc);
    };
    sum_groups(groups, dw, partial)
}

/// One image's output gradient (O × OH × OW) on the grid: O rows of `cols`, zero in the extra
/// columns.
fn gather(g: &ConvGeometry, grid: &Grid, dy: &[f32], rows: &mut [f32]) {
    rows.fill(0.0);
    for (oc, src) in dy.chunks_exact(g.out_pixels()).enumerate() {
        let dst = &mut rows[oc * grid.cols..];
        for (oh, row) in src.chunks_exact(g.out_w).enumerate() {
            dst[oh * grid.pitch..][..g.out_w].copy_from_slice(row);
        }
    }
}

/// The products in plain Rust (any CPU).
mod portable {
    use super::{Slot, LANES, MR, NV};

    pub fn product(
        dst: &mut [f32],
        ld: usize,
        panels: &[f32],
        m: usize,
        b: &[f32],
        offs: &[usize],
    ) {
        let k = offs.len();
        for j0 in (0..ld).step_by(NV * LANES) {
            let width = (ld - j0).min(NV * LANES);
            for p in 0..m.div_ceil(MR) {
                let panel = &panels[p * k * MR..][..k * MR];
                let mut acc = [[0f32; NV * LANES]; MR];
                for (r, &off) in offs.iter().enumerate() {
                    let row = &b[off + j0..][..width];
                    for (i, a) in acc.iter_mut().enumerate() {
                        let wv = panel[r * MR + i];
                        a.iter_mut()
                            .zip(row)
                            .for_each(|(s, v)| *s = wv.mul_add(*v, *s));
                    }
                }
                for (i, a) in acc.iter().enumerate().take((m - p * MR).min(MR)) {
                    dst[(p * MR + i) * ld + j0..][..width].copy_from_slice(&a[..width]);
                }
            }
        }
    }

    pub fn grad_product(
        sums: &mut [f32],
        m: usize,
        cols: usize,
        buf: &[f32],
        slots: &[Slot],
        offs: &[usize],
    ) {
        let k = offs.len();
        for s in slots {
            for i in 0..m {
                let a = &buf[s.grad + i * cols..][..cols];
                for (r, &off) in offs.iter().enumerate() {
                    let b = &buf[s.image + off..][..cols];
                    let acc = &mut sums[(i * k + r) * LANES..][..LANES];
                    for (av, bv) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
                        for l in 0..LANES {
                            acc[l] = av[l].mul_add(bv[l], acc[l]);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{walk_grad, Slot, GR, LANES, MR, NT, NV};
    use std::arch::x86_64::*;

    /// One forward tile: panel `p` against `V` vectors of columns from `j0`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile<const V: usize>(
        dst: *mut f32,
        ld: usize,
        panel: *const f32,
        rows: usize,
        b: *const f32,
        offs: &[usize],
        j0: usize,
        row0: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); V]; MR];
        for (r, &off) in offs.iter().enumerate() {
            let bp = b.add(off + j0);
            let bv: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(bp.add(v * LANES)));
            let ap = panel.add(r * MR);
            for (i, ai) in acc.iter_mut().enumerate() {
                let a = _mm256_broadcast_ss(&*ap.add(i));
                for v in 0..V {
                    ai[v] = _mm256_fmadd_ps(a, bv[v], ai[v]);
                }
            }
        }
        for (i, ai) in acc.iter().enumerate().take(rows) {
            let d = dst.add((row0 + i) * ld + j0);
            for (v, av) in ai.iter().enumerate() {
                _mm256_storeu_ps(d.add(v * LANES), *av);
            }
        }
    }

    /// [`super::product`] on AVX2 + FMA (bounds checked by the caller).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn product(
        dst: &mut [f32],
        ld: usize,
        panels: &[f32],
        m: usize,
        b: &[f32],
        offs: &[usize],
    ) {
        let k = offs.len();
        let (d, bp) = (dst.as_mut_ptr(), b.as_ptr());
        for j0 in (0..ld).step_by(NV * LANES) {
            let vectors = ((ld - j0) / LANES).min(NV);
            for p in 0..m.div_ceil(MR) {
                let panel = panels.as_ptr().add(p * k * MR);
                let rows = (m - p * MR).min(MR);
                match vectors {
                    NV => tile::<NV>(d, ld, panel, rows, bp, offs, j0, p * MR),
                    _ => tile::<1>(d, ld, panel, rows, bp, offs, j0, p * MR),
                }
            }
        }
    }

    /// One weight-gradient tile: `R` gradient rows from `i0` against `T` taps from `j0`, grid
    /// columns `t0..t1` of one slot, onto the lane sums.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn grad_tile<const R: usize, const T: usize>(
        sums: *mut f32,
        k: usize,
        grad: *const f32,
        cols: usize,
        image: *const f32,
        offs: &[usize],
        (i0, j0): (usize, usize),
        (t0, t1): (usize, usize),
    ) {
        let at = |i: usize, j: usize| sums.add(((i0 + i) * k + j0 + j) * LANES);
        let mut acc: [[__m256; T]; R] =
            std::array::from_fn(|i| std::array::from_fn(|j| _mm256_loadu_ps(at(i, j))));
        let ap: [*const f32; R] = std::array::from_fn(|i| grad.add((i0 + i) * cols));
        let bp: [*const f32; T] = std::array::from_fn(|j| image.add(offs[j0 + j]));
        let mut t = t0;
        while t < t1 {
            let av: [__m256; R] = std::array::from_fn(|i| _mm256_loadu_ps(ap[i].add(t)));
            for j in 0..T {
                let bv = _mm256_loadu_ps(bp[j].add(t));
                for i in 0..R {
                    acc[i][j] = _mm256_fmadd_ps(av[i], bv, acc[i][j]);
                }
            }
            t += LANES;
        }
        for (i, ai) in acc.iter().enumerate() {
            for (j, v) in ai.iter().enumerate() {
                _mm256_storeu_ps(at(i, j), *v);
            }
        }
    }

    /// [`super::grad_product`] on AVX2 + FMA (bounds checked by the caller).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn grad_product(
        sums: &mut [f32],
        m: usize,
        cols: usize,
        buf: &[f32],
        slots: &[Slot],
        offs: &[usize],
    ) {
        let k = offs.len();
        let (sp, bp) = (sums.as_mut_ptr(), buf.as_ptr());
        walk_grad((m, k, cols), slots, (GR, NT), |s, at, shape, ts| {
            let (grad, image) = (bp.add(s.grad), bp.add(s.image));
            match shape {
                (GR, NT) => grad_tile::<GR, NT>(sp, k, grad, cols, image, offs, at, ts),
                (GR, _) => grad_tile::<GR, 1>(sp, k, grad, cols, image, offs, at, ts),
                (_, NT) => grad_tile::<1, NT>(sp, k, grad, cols, image, offs, at, ts),
                _ => grad_tile::<1, 1>(sp, k, grad, cols, image, offs, at, ts),
            }
        });
    }
}

/// The products on AVX-512. Forward: tiles of [`MR`] rows × up to 4 vectors of 16 columns (16
/// accumulators of the 32 registers), the last 8 columns of a row through the AVX2 tile; every
/// output is the same chain of fused multiply-adds over the taps as on AVX2, so the two give
/// the same bits. Weight gradient: tiles of [`GR`] rows × 4 taps on 16 lanes, folded onto the
/// 8 lane sums at the end of each column block (a different summation order from AVX2's).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{avx2, walk_grad, Slot, GR, LANES, MR};
    use std::arch::x86_64::*;

    /// f32 lanes of one AVX-512 vector.
    const WIDE: usize = 16;

    /// One forward tile: panel `p` against `V` 16-lane vectors of columns from `j0`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const V: usize>(
        dst: *mut f32,
        ld: usize,
        panel: *const f32,
        rows: usize,
        b: *const f32,
        offs: &[usize],
        j0: usize,
        row0: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; MR];
        for (r, &off) in offs.iter().enumerate() {
            let bp = b.add(off + j0);
            let bv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(bp.add(v * WIDE)));
            let ap = panel.add(r * MR);
            for (i, ai) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_ps(*ap.add(i));
                for v in 0..V {
                    ai[v] = _mm512_fmadd_ps(a, bv[v], ai[v]);
                }
            }
        }
        for (i, ai) in acc.iter().enumerate().take(rows) {
            let d = dst.add((row0 + i) * ld + j0);
            for (v, av) in ai.iter().enumerate() {
                _mm512_storeu_ps(d.add(v * WIDE), *av);
            }
        }
    }

    /// [`super::product`] on AVX-512F (bounds checked by the caller).
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn product(
        dst: &mut [f32],
        ld: usize,
        panels: &[f32],
        m: usize,
        b: &[f32],
        offs: &[usize],
    ) {
        let k = offs.len();
        let (d, bp) = (dst.as_mut_ptr(), b.as_ptr());
        let mut j0 = 0;
        while j0 < ld {
            let vectors = (ld - j0) / WIDE;
            let step = match vectors {
                0 => LANES,
                1 => WIDE,
                2 | 3 => 2 * WIDE,
                _ => 4 * WIDE,
            };
            for p in 0..m.div_ceil(MR) {
                let panel = panels.as_ptr().add(p * k * MR);
                let rows = (m - p * MR).min(MR);
                match step {
                    LANES => avx2::tile::<1>(d, ld, panel, rows, bp, offs, j0, p * MR),
                    WIDE => tile::<1>(d, ld, panel, rows, bp, offs, j0, p * MR),
                    32 => tile::<2>(d, ld, panel, rows, bp, offs, j0, p * MR),
                    _ => tile::<4>(d, ld, panel, rows, bp, offs, j0, p * MR),
                }
            }
            j0 += step;
        }
    }

    /// Taps per weight-gradient tile (GR × 4 accumulators).
    const TAPS: usize = 4;

    /// One weight-gradient tile: `R` gradient rows from `i0` against `T` taps from `j0`, grid
    /// columns `t0..t1` of one slot (a multiple of 8 long), onto the 8-lane sums.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn grad_tile<const R: usize, const T: usize>(
        sums: *mut f32,
        k: usize,
        grad: *const f32,
        cols: usize,
        image: *const f32,
        offs: &[usize],
        (i0, j0): (usize, usize),
        (t0, t1): (usize, usize),
    ) {
        let at = |i: usize, j: usize| sums.add(((i0 + i) * k + j0 + j) * LANES);
        let mut acc: [[__m512; T]; R] = std::array::from_fn(|i| {
            std::array::from_fn(|j| _mm512_zextps256_ps512(_mm256_loadu_ps(at(i, j))))
        });
        let ap: [*const f32; R] = std::array::from_fn(|i| grad.add((i0 + i) * cols));
        let bp: [*const f32; T] = std::array::from_fn(|j| image.add(offs[j0 + j]));
        let full = t0 + (t1 - t0) / WIDE * WIDE;
        let mut t = t0;
        while t < full {
            let av: [__m512; R] = std::array::from_fn(|i| _mm512_loadu_ps(ap[i].add(t)));
            for j in 0..T {
                let bv = _mm512_loadu_ps(bp[j].add(t));
                for i in 0..R {
                    acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
                }
            }
            t += WIDE;
        }
        if t < t1 {
            // The last 8 columns of a block whose length is an odd multiple of 8: the upper
            // lanes are neither read nor summed.
            let av: [__m512; R] =
                std::array::from_fn(|i| _mm512_maskz_loadu_ps(0x00ff, ap[i].add(t)));
            for j in 0..T {
                let bv = _mm512_maskz_loadu_ps(0x00ff, bp[j].add(t));
                for i in 0..R {
                    acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
                }
            }
        }
        for (i, ai) in acc.iter().enumerate() {
            for (j, v) in ai.iter().enumerate() {
                let lo = _mm512_castps512_ps256(*v);
                let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(*v)));
                _mm256_storeu_ps(at(i, j), _mm256_add_ps(lo, hi));
            }
        }
    }

    /// [`super::grad_product`] on AVX-512F (bounds checked by the caller).
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn grad_product(
        sums: &mut [f32],
        m: usize,
        cols: usize,
        buf: &[f32],
        slots: &[Slot],
        offs: &[usize],
    ) {
        let k = offs.len();
        let (sp, bp) = (sums.as_mut_ptr(), buf.as_ptr());
        walk_grad((m, k, cols), slots, (GR, TAPS), |s, at, shape, ts| {
            let (grad, image) = (bp.add(s.grad), bp.add(s.image));
            match shape {
                (GR, TAPS) => grad_tile::<GR, TAPS>(sp, k, grad, cols, image, offs, at, ts),
                (GR, _) => grad_tile::<GR, 1>(sp, k, grad, cols, image, offs, at, ts),
                (_, TAPS) => grad_tile::<1, TAPS>(sp, k, grad, cols, image, offs, at, ts),
                _ => grad_tile::<1, 1>(sp, k, grad, cols, image, offs, at, ts),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::reference::{self, assert_close, values};
    use super::*;

    /// Stride-1 shapes: 1 × 1 and 3 × 3 and 7 × 7, odd sizes and channel counts (output
    /// channels not a multiple of the tile), uneven padding, grids not a whole number of tiles.
    const CASES: [([usize; 4], [usize; 4], [usize; 4]); 7] = [
        ([1, 3, 7, 9], [8, 3, 3, 3], [1, 1, 1, 1]),
        ([3, 13, 9, 6], [5, 13, 3, 3], [0, 2, 1, 0]),
        ([2, 8, 4, 4], [16, 8, 3, 3], [2, 2, 2, 2]),
        ([4, 8, 32, 32], [8, 8, 3, 3], [1, 1, 1, 1]),
        ([37, 16, 4, 4], [17, 16, 3, 3], [1, 1, 1, 1]),
        ([2, 6, 5, 11], [7, 6, 1, 1], [0, 0, 0, 0]),
        ([1, 3, 11, 11], [8, 3, 7, 7], [3, 3, 2, 1]),
    ];

    fn geometry(xs: [usize; 4], ws: [usize; 4], pads: [usize; 4]) -> ConvGeometry {
        let [pt, pb, pl, pr] = pads;
        ConvGeometry::new(xs, ws, [1, 1], [(pt, pb), (pl, pr)]).unwrap()
    }

    #[test]
    fn forward_and_both_gradients_match_a_direct_convolution() {
        for (xs, ws, pads) in CASES {
            let g = geometry(xs, ws, pads);
            assert!(applies(&g), "{g:?}");
            let x = values(g.batch * g.in_len(), 0.3);
            let w = values(g.out_c * g.patch_len(), 1.7);
            let dy = values(g.batch * g.out_len(), 2.9);
            let what = format!("{xs:?} * {ws:?}, pads {pads:?}");
            let mut y = vec![f32::NAN; dy.len()];
            forward(&g, &x, &w, &mut y);
            assert_close(&format!("{what}: y"), &y, &reference::forward(&g, &x, &w));
            let mut dx = vec![f32::NAN; x.len()];
            input_grad(&g, &w, &dy, &mut dx);
            assert_close(
                &format!("{what}: dx"),
                &dx,
                &reference::input_grad(&g, &w, &dy),
            );
            let mut dw = vec![f32::NAN; w.len()];
            weight_grad(&g, &x, &dy, &mut dw);
            assert_close(
                &format!("{what}: dw"),
                &dw,
                &reference::weight_grad(&g, &x, &dy),
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx512_forward_gives_the_avx2_bits() {
        if VectorWidth::detect() < VectorWidth::Avx512 {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        for (xs, ws, pads) in CASES {
            let g = geometry(xs, ws, pads);
            let grid = Grid::of(&g);
            let offs = grid.offsets(&g);
            let (o, k) = (g.out_c, g.patch_len());
            let mut pad = vec![0.0; grid.image];
            grid.pad(&g, &values(g.in_len(), 0.4), &mut pad);
            let panels = pack_panels(&values(o * k, 1.3), o, k);
            let (mut a, mut b) = (vec![0.0; o * grid.cols], vec![1.0; o * grid.cols]);
            // SAFETY: both CPUs' features were checked; the shapes are product's own.
            unsafe {
                avx512::product(&mut a, grid.cols, &panels, o, &pad, &offs);
                avx2::product(&mut b, grid.cols, &panels, o, &pad, &offs);
            }
            assert!(a == b, "{xs:?} * {ws:?}: AVX-512 and AVX2 differ");
        }
    }

    #[test]
    fn the_portable_products_match_the_dispatched_ones() {
        for (xs, ws, pads) in CASES {
            let g = geometry(xs, ws, pads);
            let grid = Grid::of(&g);
            let offs = grid.offsets(&g);
            let (o, k) = (g.out_c, g.patch_len());
            let slot_len = grid.image + o * grid.cols;
            let mut buf = values(2 * slot_len, 0.9);
            for s in 0..2 {
                let xi = values(g.in_len(), s as f32);
                grid.pad(&g, &xi, &mut buf[s * slot_len..][..grid.image]);
            }
            let panels = pack_panels(&values(o * k, 1.1), o, k);
            let (mut a, mut b) = (vec![0.0; o * grid.cols], vec![0.0; o * grid.cols]);
            product(&mut a, grid.cols, &panels, o, &buf, &offs);
            portable::product(&mut b, grid.cols, &panels, o, &buf, &offs);
            let want: Vec<f64> = b.iter().map(|v| *v as f64).collect();
            assert_close(&format!("{xs:?}: product"), &a, &want);
            let slots: Vec<Slot> = (0..2)
                .map(|s| Slot {
                    image: s * slot_len,
                    grad: s * slot_len + grid.image,
                })
                .collect();
            let (mut a, mut b) = (vec![0.5; o * k * LANES], vec![0.5; o * k * LANES]);
            grad_product(&mut a, o, grid.cols, &buf, &slots, &offs);
            portable::grad_product(&mut b, o, grid.cols, &buf, &slots, &offs);
            let want: Vec<f64> = b.iter().map(|v| *v as f64).collect();
            assert_close(&format!("{xs:?}: grad_product"), &a, &want);
            // The AVX2 build too where AVX-512 is what dispatch picks.
            #[cfg(target_arch = "x86_64")]
            if VectorWidth::detect() >= VectorWidth::Avx2 {
                let mut c = vec![0.5; o * k * LANES];
                // SAFETY: the CPU has the features; the slots lie inside `buf`.
                unsafe { avx2::grad_product(&mut c, o, grid.cols, &buf, &slots, &offs) };
                assert_close(&format!("{xs:?}: AVX2 grad_product"), &c, &want);
            }
        }
    }
}
