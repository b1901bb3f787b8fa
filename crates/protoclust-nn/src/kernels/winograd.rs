//! Winograd F(2×2, 3×3) for 3 × 3, stride-1 convolutions (forward; the input gradient as a
//! forward with the flipped kernel; the weight gradient through the same transforms): every
//! 2 × 2 output tile from a 4 × 4 input tile with 16 products per input/output channel pair
//! instead of 36, i.e. 2.25× fewer multiplications.
//!
//! Per chunk of images: input tiles → `V` (16 × C × T, T tiles), one matrix product per tile
//! position `M_ξ (O × T) = U_ξ (O × C) · V_ξ (C × T)` with the transformed weights `U`, and
//! `M` → output tiles (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks").
//! Weight gradient: output-gradient tiles → `E = A dY Aᵀ` (16 × O × T), `dU_ξ = Σ E_ξ · V_ξᵀ`
//! summed over a fixed partition of the batch, then `dW = Gᵀ dU G`.

use super::dot::{matmul_nt, Out, Rows};
use super::gemm::{matmul, View};
use super::geometry::ConvGeometry;
use super::isa::VectorWidth;
use super::partition::{sum_groups, ChunkGroups};
use super::scratch::with_scratch;
use rayon::prelude::*;

/// Tile positions: a 4 × 4 transformed tile.
const XI: usize = 16;

/// Tiles a chunk's products should have at least (columns of `V_ξ`).
const MIN_CHUNK_TILES: usize = 256;

/// Channels × tiles per row (up to [`L`]) from which Winograd beats the lowering: its 16
/// products have only C in their inner dimension (the lowering 9 · C), and its transforms
/// run `L` tiles of one row at a time. Measured per layer shape on a 2-core AVX2 VM
/// (docs/performance.md): C = 64 wins from 16 × 16 maps (1.14–1.19×) and loses at 8 × 8
/// (0.89×); C = 128 wins at 8 × 8 (1.20×), loses at 4 × 4 (0.83×); C = 512 wins at 4 × 4.
const MIN_CHANNEL_LANES: usize = 512;

/// Tiles per row below which the lowering wins with AVX-512 whatever the channels: on a 2-core
/// Intel Xeon (model 207) its 16-lane products beat Winograd's forward on 4 × 4 maps at
/// C = 512 (width 64's last stage) by 1.1–1.5× over three `--routes` runs.
const MIN_TILES_AVX512: usize = 4;

/// Whether this kernel computes the convolution: 3 × 3, stride 1, padding ≤ 2 on every side
/// (so the flipped-kernel input gradient is one too).
pub fn applies(g: &ConvGeometry) -> bool {
    g.k_h == 3
        && g.k_w == 3
        && g.stride_h == 1
        && g.stride_w == 1
        && [g.pad_t, g.pad_b, g.pad_l, g.pad_r].iter().all(|&p| p <= 2)
}

/// Whether Winograd is the faster of the two for a convolution it [`applies`] to.
pub fn pays(g: &ConvGeometry) -> bool {
    let (_, tw) = tiles(g);
    let narrow = VectorWidth::current() == VectorWidth::Avx512 && tw < MIN_TILES_AVX512;
    g.in_c.min(g.out_c) * tw.min(L) >= MIN_CHANNEL_LANES && !narrow
}

/// `U_ξ = (G g Gᵀ)_ξ` for every (o, c): 16 matrices O × C, ξ-major.
fn transform_weights(w: &[f32], o: usize, c: usize) -> Vec<f32> {
    let mut u = vec![0.0; XI * o * c];
    for (oc, g) in w.chunks_exact(9).enumerate() {
        // G g: 4 × 3.
        let mut t = [[0.0f32; 3]; 4];
        for j in 0..3 {
            let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
            t[0][j] = g0;
            t[1][j] = 0.5 * (g0 + g1 + g2);
            t[2][j] = 0.5 * (g0 - g1 + g2);
            t[3][j] = g2;
        }
        // (G g) Gᵀ: 4 × 4.
        for (i, r) in t.iter().enumerate() {
            let row = [
                r[0],
                0.5 * (r[0] + r[1] + r[2]),
                0.5 * (r[0] - r[1] + r[2]),
                r[2],
            ];
            for (j, v) in row.into_iter().enumerate() {
                u[(4 * i + j) * o * c + oc] = v;
            }
        }
    }
    u
}

/// Tile counts of one image: (rows, columns) of 2 × 2 output tiles.
fn tiles(g: &ConvGeometry) -> (usize, usize) {
    (g.out_h.div_ceil(2), g.out_w.div_ceil(2))
}

/// Tiles transformed together (one f32 lane each).
const L: usize = 8;

type Lanes = [f32; L];

/// `dst[..valid] = lanes[..valid]`, a fixed-size move when every lane is valid.
#[inline(always)]
fn put(dst: &mut [f32], lanes: &Lanes, valid: usize) {
    if valid == L {
        dst[..L].copy_from_slice(lanes);
    } else {
        dst[..valid].copy_from_slice(&lanes[..valid]);
    }
}

/// `lanes[..valid] = src[..valid]`, a fixed-size move when every lane is valid.
#[inline(always)]
fn get(lanes: &mut Lanes, src: &[f32], valid: usize) {
    if valid == L {
        lanes.copy_from_slice(&src[..L]);
    } else {
        lanes[..valid].copy_from_slice(&src[..valid]);
    }
}

/// `Bᵀ d B` of every 4 × 4 input tile of `nb` images into `v` (16 × C × T): one row of tiles
/// at a time, `L` tiles side by side in lanes.
fn transform_input(g: &ConvGeometry, x: &[f32], nb: usize, v: &mut [f32]) {
    let (th, tw) = tiles(g);
    let t_all = nb * th * tw;
    let groups = tw.div_ceil(L);
    // One padded input row of a tile row: columns -pad_l .. 2·groups·L + 2 - pad_l.
    let width = 2 * groups * L + 2;
    let mut rows = vec![0.0f32; 4 * width];
    let h = g.in_h as isize;
    for n in 0..nb {
        for ch in 0..g.in_c {
            let img = &x[(n * g.in_c + ch) * g.in_h * g.in_w..][..g.in_h * g.in_w];
            for ty in 0..th {
                for (r, row) in rows.chunks_exact_mut(width).enumerate() {
                    row.fill(0.0);
                    let yy = (2 * ty + r) as isize - g.pad_t as isize;
                    if (0..h).contains(&yy) {
                        // in_w + pad_l ≤ out_w + 2 ≤ width: the row always fits.
                        let src = &img[yy as usize * g.in_w..][..g.in_w];
                        row[g.pad_l..g.pad_l + g.in_w].copy_from_slice(src);
                    }
                }
                for grp in 0..groups {
                    // d[i][j][lane] = input (row i, column 2·(tile) + j) of the tile.
                    let mut d = [[[0.0f32; L]; 4]; 4];
                    for (i, di) in d.iter_mut().enumerate() {
                        let src = &rows[i * width + 2 * grp * L..][..2 * L + 2];
                        for l in 0..L {
                            di[0][l] = src[2 * l];
                            di[1][l] = src[2 * l + 1];
                            di[2][l] = src[2 * l + 2];
                            di[3][l] = src[2 * l + 3];
                        }
                    }
                    let mut t = [[[0.0f32; L]; 4]; 4];
                    for j in 0..4 {
                        for l in 0..L {
                            t[0][j][l] = d[0][j][l] - d[2][j][l];
                            t[1][j][l] = d[1][j][l] + d[2][j][l];
                            t[2][j][l] = d[2][j][l] - d[1][j][l];
                            t[3][j][l] = d[1][j][l] - d[3][j][l];
                        }
                    }
                    let tx0 = grp * L;
                    let valid = L.min(tw - tx0);
                    let col = (n * th + ty) * tw + tx0;
                    for (i, r) in t.iter().enumerate() {
                        let mut out: [Lanes; 4] = [[0.0; L]; 4];
                        for l in 0..L {
                            out[0][l] = r[0][l] - r[2][l];
                            out[1][l] = r[1][l] + r[2][l];
                            out[2][l] = r[2][l] - r[1][l];
                            out[3][l] = r[1][l] - r[3][l];
                        }
                        for (j, o) in out.iter().enumerate() {
                            let at = ((4 * i + j) * g.in_c + ch) * t_all + col;
                            put(&mut v[at..], o, valid);
                        }
                    }
                }
            }
        }
    }
}

/// `Aᵀ m A` of every tile of `m` (16 × O × T) into the `nb` output images `y`, `L` tiles side
/// by side in lanes.
fn transform_output(g: &ConvGeometry, m: &[f32], nb: usize, y: &mut [f32]) {
    let (th, tw) = tiles(g);
    let t_all = nb * th * tw;
    let (oh, ow) = (g.out_h, g.out_w);
    for n in 0..nb {
        for o in 0..g.out_c {
            let out = &mut y[(n * g.out_c + o) * oh * ow..][..oh * ow];
            for ty in 0..th {
                for tx0 in (0..tw).step_by(L) {
                    let valid = L.min(tw - tx0);
                    let col = (n * th + ty) * tw + tx0;
                    let mut mm = [[0.0f32; L]; XI];
                    for (xi, lanes) in mm.iter_mut().enumerate() {
                        let at = (xi * g.out_c + o) * t_all + col;
                        get(lanes, &m[at..], valid);
                    }
                    // Aᵀ m: 2 × 4, then (Aᵀ m) A: 2 × 2.
                    let mut t = [[[0.0f32; L]; 4]; 2];
                    for j in 0..4 {
                        for l in 0..L {
                            let (m0, m1, m2, m3) =
                                (mm[j][l], mm[4 + j][l], mm[8 + j][l], mm[12 + j][l]);
                            t[0][j][l] = m0 + m1 + m2;
                            t[1][j][l] = m1 - m2 - m3;
                        }
                    }
                    for (i, r) in t.iter().enumerate() {
                        let yy = 2 * ty + i;
                        if yy >= oh {
                            continue;
                        }
                        let mut pair = [[0.0f32; 2]; L];
                        for l in 0..L {
                            pair[l][0] = r[0][l] + r[1][l] + r[2][l];
                            pair[l][1] = r[1][l] - r[2][l] - r[3][l];
                        }
                        let x0 = 2 * tx0;
                        let len = (2 * valid).min(ow - x0);
                        let flat = pair.as_flattened();
                        let dst = &mut out[yy * ow + x0..];
                        if len == 2 * L {
                            dst[..2 * L].copy_from_slice(flat);
                        } else {
                            dst[..len].copy_from_slice(&flat[..len]);
                        }
                    }
                }
            }
        }
    }
}

/// `y (N × O × OH × OW) = conv(x, w)` for a geometry [`applies`] accepts; every element of `y`
/// is written.
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    debug_assert!(applies(g));
    let (o, c) = (g.out_c, g.in_c);
    let u = transform_weights(w, o, c);
    let (th, tw) = tiles(g);
    let per_image = th * tw;
    let nb = images_per_chunk(g);
    y.par_chunks_mut(nb * g.out_len())
        .zip(x.par_chunks(nb * g.in_len()))
        .for_each(|(yc, xc)| {
            let nb = yc.len() / g.out_len();
            let t = nb * per_image;
            let (lv, lm) = (XI * c * t, XI * o * t);
            with_scratch(lv + lm, |buf| {
                let (v, m) = buf.split_at_mut(lv);
                transform_input(g, xc, nb, v);
                for xi in 0..XI {
                    matmul(
                        &mut m[xi * o * t..][..o * t],
                        t,
                        false,
                        View::rows(&u[xi * o * c..][..o * c], o, c),
                        View::rows(&v[xi * c * t..][..c * t], c, t),
                    );
                }
                transform_output(g, m, nb, yc);
            })
        });
}

/// Images per chunk: at least [`MIN_CHUNK_TILES`] tiles, and a chunk per thread when the batch
/// allows.
fn images_per_chunk(g: &ConvGeometry) -> usize {
    let (th, tw) = tiles(g);
    let threads = rayon::current_num_threads().max(1);
    MIN_CHUNK_TILES
        .div_ceil((th * tw).max(1))
        .min(g.batch.div_ceil(threads))
        .max(1)
}

/// `A e Aᵀ` of every 2 × 2 output-gradient tile of `nb` images into `e` (16 × O × T), zero
/// beyond the output's last row and column; `L` tiles of one row side by side in lanes.
fn transform_output_grad(g: &ConvGeometry, dy: &[f32], nb: usize, e: &mut [f32]) {
    let (th, tw) = tiles(g);
    let t_all = nb * th * tw;
    let groups = tw.div_ceil(L);
    let width = 2 * groups * L;
    let mut rows = vec![0.0f32; 2 * width];
    let (oh, ow) = (g.out_h, g.out_w);
    for n in 0..nb {
        for o in 0..g.out_c {
            let img = &dy[(n * g.out_c + o) * oh * ow..][..oh * ow];
            for ty in 0..th {
                for (r, row) in rows.chunks_exact_mut(width).enumerate() {
                    let yy = 2 * ty + r;
                    if yy < oh {
                        row[..ow].copy_from_slice(&img[yy * ow..][..ow]);
                        row[ow..].fill(0.0);
                    } else {
                        row.fill(0.0);
                    }
                }
                for grp in 0..groups {
                    // d[i][j][lane]: the tile's output gradient at (row i, column j).
                    let mut d = [[[0.0f32; L]; 2]; 2];
                    for (i, di) in d.iter_mut().enumerate() {
                        let src = &rows[i * width + 2 * grp * L..][..2 * L];
                        for l in 0..L {
                            di[0][l] = src[2 * l];
                            di[1][l] = src[2 * l + 1];
                        }
                    }
                    // A d: 4 × 2 (rows d0, d0 + d1, d0 − d1, −d1).
                    let mut t = [[[0.0f32; L]; 2]; 4];
                    for j in 0..2 {
                        for l in 0..L {
                            let (a, b) = (d[0][j][l], d[1][j][l]);
                            t[0][j][l] = a;
                            t[1][j][l] = a + b;
                            t[2][j][l] = a - b;
                            t[3][j][l] = -b;
                        }
                    }
                    let tx0 = grp * L;
                    let valid = L.min(tw - tx0);
                    let col = (n * th + ty) * tw + tx0;
                    for (i, r) in t.iter().enumerate() {
                        let mut out: [Lanes; 4] = [[0.0; L]; 4];
                        for l in 0..L {
                            let (a, b) = (r[0][l], r[1][l]);
                            out[0][l] = a;
                            out[1][l] = a + b;
                            out[2][l] = a - b;
                            out[3][l] = -b;
                        }
                        for (j, lanes) in out.iter().enumerate() {
                            let at = ((4 * i + j) * g.out_c + o) * t_all + col;
                            put(&mut e[at..], lanes, valid);
                        }
                    }
                }
            }
        }
    }
}

/// `dw (O × C × 3 × 3) = Gᵀ dU G` for every (o, c) of `du` (16 × O × C).
fn untransform_weight_grad(du: &[f32], o: usize, c: usize, dw: &mut [f32]) {
    for (oc, out) in dw.chunks_exact_mut(9).enumerate() {
        let x = |xi: usize| du[xi * o * c + oc];
        // Gᵀ X: 3 × 4.
        let t: [[f32; 4]; 3] = [
            std::array::from_fn(|j| x(j) + 0.5 * (x(4 + j) + x(8 + j))),
            std::array::from_fn(|j| 0.5 * (x(4 + j) - x(8 + j))),
            std::array::from_fn(|j| 0.5 * (x(4 + j) + x(8 + j)) + x(12 + j)),
        ];
        // (Gᵀ X) G: 3 × 3.
        for (i, r) in t.iter().enumerate() {
            out[3 * i] = r[0] + 0.5 * (r[1] + r[2]);
            out[3 * i + 1] = 0.5 * (r[1] - r[2]);
            out[3 * i + 2] = 0.5 * (r[1] + r[2]) + r[3];
        }
    }
}

/// `dw (O × C × 3 × 3)` of a convolution [`applies`] accepts, from its input `x` and output
/// gradient `dy`; summed over a fixed partition of the batch (one partial per group of
/// chunks, added in group order), so the result does not depend on scheduling.
pub fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    debug_assert!(applies(g));
    let (o, c) = (g.out_c, g.in_c);
    let (th, tw) = tiles(g);
    let nb = images_per_chunk(g);
    let parts = ChunkGroups::new(g.batch, nb, rayon::current_num_threads());
    let partial = |grp: usize, du: &mut [f32]| {
        du.fill(0.0);
        for (i0, nb) in parts.chunks(grp) {
            let xc = &x[i0 * g.in_len()..(i0 + nb) * g.in_len()];
            let dyc = &dy[i0 * g.out_len()..(i0 + nb) * g.out_len()];
            let t = nb * th * tw;
            let (lv, le) = (XI * c * t, XI * o * t);
            with_scratch(lv + le, |buf| {
                let (v, e) = buf.split_at_mut(lv);
                transform_input(g, xc, nb, v);
                transform_output_grad(g, dyc, nb, e);
                for xi in 0..XI {
                    matmul_nt(
                        Out {
                            dst: &mut du[xi * o * c..][..o * c],
                            ld: c,
                            accumulate: true,
                        },
                        Rows {
                            data: &e[xi * o * t..][..o * t],
                            rows: o,
                            stride: t,
                        },
                        Rows {
                            data: &v[xi * c * t..][..c * t],
                            rows: c,
                            stride: t,
                        },
                        t,
                    );
                }
            });
        }
    };
    let mut du = vec![0.0f32; XI * o * c];
    sum_groups(parts.groups, &mut du, partial);
    untransform_weight_grad(&du, o, c, dw);
}

#[cfg(test)]
mod tests {
    use super::super::geometry::flip_kernel;
    use super::super::reference::{self, assert_close, values};
    use super::*;

    #[test]
    fn matches_a_direct_convolution_on_odd_shapes_and_paddings() {
        for &(n, c, h, w, o, pads) in &[
            (1, 3, 5, 7, 4, [1, 1, 1, 1]),
            (2, 13, 8, 8, 5, [1, 1, 1, 1]),
            (3, 8, 9, 6, 16, [0, 0, 0, 0]),
            (1, 4, 4, 5, 3, [2, 1, 0, 2]),
            (5, 2, 3, 3, 2, [2, 2, 2, 2]),
        ] {
            let [pt, pb, pl, pr] = pads;
            let g = ConvGeometry::new([n, c, h, w], [o, c, 3, 3], [1, 1], [(pt, pb), (pl, pr)])
                .unwrap();
            assert!(applies(&g));
            let x = values(n * c * h * w, 0.3);
            let k = values(o * c * 9, 1.7);
            let mut y = vec![f32::NAN; g.batch * g.out_len()];
            forward(&g, &x, &k, &mut y);
            let what = format!("{n}x{c}x{h}x{w} -> {o}, pads {pads:?}: y");
            assert_close(&what, &y, &reference::forward(&g, &x, &k));
        }
    }

    #[test]
    fn the_flipped_kernel_gives_the_input_gradient() {
        let g = ConvGeometry::new([2, 3, 6, 5], [4, 3, 3, 3], [1, 1], [(1, 2), (0, 1)]).unwrap();
        let w = values(4 * 3 * 9, 2.2);
        let dy = values(g.batch * g.out_len(), 4.4);
        let gi = g.flipped().unwrap();
        assert_eq!((gi.out_h, gi.out_w, gi.out_c), (g.in_h, g.in_w, g.in_c));
        let mut dx = vec![f32::NAN; g.batch * g.in_len()];
        forward(&gi, &dy, &flip_kernel(&w, &g), &mut dx);
        assert_close("dx", &dx, &reference::input_grad(&g, &w, &dy));
    }

    #[test]
    fn the_weight_gradient_matches_a_direct_one() {
        for &(n, c, h, w, o, pads) in &[
            (1, 3, 5, 7, 4, [1, 1, 1, 1]),
            (3, 13, 9, 6, 5, [0, 2, 1, 0]),
            (2, 8, 4, 4, 16, [2, 2, 2, 2]),
        ] {
            let [pt, pb, pl, pr] = pads;
            let g = ConvGeometry::new([n, c, h, w], [o, c, 3, 3], [1, 1], [(pt, pb), (pl, pr)])
                .unwrap();
            let x = values(g.batch * g.in_len(), 0.7);
            let dy = values(g.batch * g.out_len(), 3.1);
            let mut dw = vec![f32::NAN; o * c * 9];
            weight_grad(&g, &x, &dy, &mut dw);
            assert_close(
                &format!("{n}x{c}x{h}x{w} -> {o}, pads {pads:?}: dw"),
                &dw,
                &reference::weight_grad(&g, &x, &dy),
            );
        }
    }
}
