//! The three passes of a training convolution with bf16 products and f32 sums, as PyTorch's
//! bf16 autocast computes them on the CPU: the forward from bf16 inputs and weights, the
//! input gradient from bf16 output gradients and weights, the weight gradient from bf16 inputs
//! and output gradients. Tensors stay f32 in NCHW; each operand is rounded to bf16 while it is
//! copied for the products. Two routes ([`Bf16Route`]): register tiles on channels-last bf16
//! copies of each chunk ([`channels_last`](super::channels_last)'s `bf16_*`; no patch matrix),
//! and [`bf16_gemm`]'s products on patch rows packed into panels (the grid's rows read in
//! place; every shape). Chunks of images run in parallel on rayon, one single-threaded product
//! each. Layers narrower than [`PRODUCT_MIN_CHANNELS`] stay on the f32 kernels.
//!
//! Callers check [`bf16_gemm::supported`].

use super::bf16_gemm::{
    self, matmul_pairs, pack_columns, pack_row_slices, pack_rows, panels_len, rows_to_pairs,
    Epilogue, Panels, NR,
};
use super::channels_last::{bf16_forward, bf16_input_grad, bf16_weight_grad};
use super::conv2d::Pass;
use super::geometry::{flip_kernel, ConvGeometry};
use super::grid_rows::GridRows;
use super::lowering::{scratch_lens, split3, Lowering};
use super::partition::{sum_groups, ChunkGroups};
use super::scratch::with_scratch;
use rayon::prelude::*;

/// Pixel columns of the weight gradient's products: a 32-column panel of the output gradient
/// (4096 pixels as 2048 pairs, 256 KB) stays in L2 while every row block of patches streams by.
const WEIGHT_GRAD_COLUMNS: usize = 4096;

/// Channels (min of C, O) from which every pass of a layer takes the bf16 products; narrower
/// layers run the f32 kernels (direct, Winograd, channels-last) unrounded, except where
/// [`TILE_MIN_CHANNELS`] lets the channels-last tiles take them. On the panels the products
/// lost there (fewer output rows than a register tile, small maps), and rounding the operands
/// first costs a copy of each: on Zen 4 the width-8 ResNet-18 step ran 587 img/s with
/// 32-channel layers on the panels and 786 without (f32: 730–780); rounded f32 operands, 542.
pub const PRODUCT_MIN_CHANNELS: usize = 64;

/// Output pixels per image from which a 1 × 1 layer's forward and weight gradient take the
/// panels. Its channels-last tiles sum only C products per tap and pay a transpose on the
/// way in and out, which the panels (the image is its own patch matrix, the output NCHW)
/// do not: on Zen 4 (`bench --routes`, ResNet-50 at 224 px) the panels ran 1 × 1 layers on
/// 56 × 56 and 28 × 28 maps at 1.1–1.6× the tiles, and the tiles 7 × 7 maps at 1.1–1.3×
/// the panels (14 × 14 split both ways); the input gradient of a 1 × 1 layer ran on the
/// panels at 1.0–1.3× wherever measured but one.
pub const POINTWISE_PANEL_PIXELS: usize = 64;

/// Channels (min of C, O) from which a pass of a layer whose kernel is wider than 1 × 1 takes
/// the bf16 products where the channels-last tiles compute it. On Zen 4 (`bench --routes`,
/// best of 3) the tiles ran the 32-channel 3 × 3 layers of the width-8 and width-16
/// ResNet-18s at 1.2–1.6× the fastest f32 route (32 → 32 on 16 × 16: 241 against 157
/// GFLOP/s forward), the 16-channel ones at 0.9–1.3× (and the width-8 step slower with them).
pub const TILE_MIN_CHANNELS: usize = 32;

/// Whether `pass` of `g` takes the bf16 products rather than the unrounded f32 kernels.
pub fn takes_products(g: &ConvGeometry, pass: Pass) -> bool {
    let min = g.in_c.min(g.out_c);
    let tiles = min >= TILE_MIN_CHANNELS
        && g.k_h * g.k_w > 1
        && Bf16Route::of(g, pass) == Bf16Route::ChannelsLast;
    min >= PRODUCT_MIN_CHANNELS || tiles
}

fn threads() -> usize {
    rayon::current_num_threads()
}

/// The weights (O × K) as O rows of K/2 pairs: the forward's left operand.
fn weight_pairs(g: &ConvGeometry, w: &[f32]) -> Vec<u32> {
    let k = g.patch_len();
    let mut out = vec![0; g.out_c * k.div_ceil(2)];
    rows_to_pairs(w, k, g.out_c, k, &mut out);
    out
}

/// The transposed weights (K × O) as K rows of O/2 pairs: the input gradient's left operand.
fn transposed_weight_pairs(g: &ConvGeometry, w: &[f32]) -> Vec<u32> {
    let (o, k) = (g.out_c, g.patch_len());
    let mut t = vec![0.0; k * o];
    super::transpose::transpose(w, k, (o, k), &mut t, |j| j * o);
    let mut out = vec![0; k * o.div_ceil(2)];
    rows_to_pairs(&t, o, k, o, &mut out);
    out
}

/// `y (N × O × OH × OW) = conv(bf16(x), bf16(w))` with f32 sums where `g`
/// [`takes_products`], the f32 kernels' `conv(x, w)` otherwise.
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    if takes_products(g, Pass::Forward) {
        forward_products(g, x, w, y)
    } else {
        super::conv2d::forward(g, x, w, y)
    }
}

/// [`input_grad_products`] where `g` [`takes_products`], the f32 kernels otherwise.
pub fn input_grad(g: &ConvGeometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    if takes_products(g, Pass::InputGrad) {
        input_grad_products(g, w, dy, dx)
    } else {
        super::conv2d::input_grad(g, w, dy, dx)
    }
}

/// [`weight_grad_products`] where `g` [`takes_products`], the f32 kernels otherwise.
pub fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    if takes_products(g, Pass::WeightGrad) {
        weight_grad_products(g, x, dy, dw)
    } else {
        super::conv2d::weight_grad(g, x, dy, dw)
    }
}

/// How one [`Pass`] of a convolution computes its bf16 products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bf16Route {
    /// Register tiles on channels-last bf16 copies ([`bf16_forward`], [`bf16_input_grad`],
    /// [`bf16_weight_grad`]): no patch matrix.
    ChannelsLast,
    /// [`bf16_gemm`]'s products on patch rows packed into panels: every shape.
    Panels,
}

impl Bf16Route {
    /// Whether this route computes `pass` of `g`.
    pub fn applies(self, g: &ConvGeometry, pass: Pass) -> bool {
        match (self, pass) {
            (Bf16Route::Panels, _) => true,
            (Bf16Route::ChannelsLast, Pass::Forward) => bf16_forward::applies_bf16(g),
            (Bf16Route::ChannelsLast, Pass::WeightGrad) => bf16_weight_grad::applies_bf16(g),
            (Bf16Route::ChannelsLast, Pass::InputGrad) => match g.flipped() {
                Some(gi) => bf16_forward::applies_bf16(&gi),
                None => bf16_input_grad::applies_bf16(g),
            },
        }
    }

    /// The route `pass` of `g` takes: the channels-last tiles wherever they apply, except
    /// for 1 × 1 kernels on maps of [`POINTWISE_PANEL_PIXELS`] or more and their input
    /// gradients.
    pub fn of(g: &ConvGeometry, pass: Pass) -> Self {
        let pointwise = g.k_h == 1 && g.k_w == 1;
        let panels = pass == Pass::InputGrad || g.out_pixels() >= POINTWISE_PANEL_PIXELS;
        if !(pointwise && panels) && Bf16Route::ChannelsLast.applies(g, pass) {
            Bf16Route::ChannelsLast
        } else {
            Bf16Route::Panels
        }
    }
}

/// `y (N × O × OH × OW) = conv(bf16(x), bf16(w))` with f32 sums, for any shape.
pub fn forward_products(g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    forward_by(Bf16Route::of(g, Pass::Forward), g, x, w, y)
}

/// [`forward_products`] on `route` (which must apply to `g`).
pub fn forward_by(route: Bf16Route, g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    match route {
        Bf16Route::ChannelsLast => bf16_forward::forward(g, x, w, y),
        Bf16Route::Panels => forward_panels(g, x, w, y),
    }
}

fn forward_panels(g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    let (o, k, p) = (g.out_c, g.patch_len(), g.out_pixels());
    let wp = weight_pairs(g, w);
    let low = Lowering::of(g);
    let grid_rows = GridRows::of(g);
    let nb = g.images_per_chunk(threads());
    y.par_chunks_mut(nb * g.out_len())
        .zip(x.par_chunks(nb * g.in_len()))
        .for_each(|(yc, xc)| {
            let nb = yc.len() / g.out_len();
            if let (Some(rows), false) = (&grid_rows, g.is_pointwise()) {
                // Each image's columns fill whole panels, packed straight from its padded copy.
                let width = rows.span.next_multiple_of(NR);
                let (plane, cols) = (rows.plane(g), nb * width);
                return with_scratch(nb * plane + o * cols, |buf| {
                    let (pads, tmp) = buf.split_at_mut(nb * plane);
                    rows.pad(g, xc, nb, pads);
                    let per_image = panels_len(k, width);
                    bf16_gemm::with_panels(nb * per_image, |panels| {
                        for (i, out) in panels.chunks_exact_mut(per_image).enumerate() {
                            let pad = &pads[i * plane..(i + 1) * plane];
                            pack_row_slices(k, rows.span, |r| rows.row(pad, r), out);
                        }
                        let b = Panels::new(k, cols, panels);
                        matmul_pairs(tmp, &wp, o, b, Epilogue::default());
                    });
                    rows.scatter(g, tmp, cols, width, yc);
                });
            }
            if nb == 1 && g.is_pointwise() {
                // The image is its own patch matrix (C × P) and the output its O × P rows.
                return bf16_gemm::with_panels(panels_len(k, p), |buf| {
                    let b = pack_rows(xc, p, k, p, buf);
                    matmul_pairs(yc, &wp, o, b, Epilogue::default());
                });
            }
            let cols = nb * low.span(g);
            let lens = scratch_lens(g, &low, nb);
            with_scratch(lens.iter().sum(), |buf| {
                let (col, tmp, pad) = split3(buf, lens);
                low.patches(g, xc, nb, col, pad);
                bf16_gemm::with_panels(panels_len(k, cols), |panels| {
                    let b = pack_rows(col, cols, k, cols, panels);
                    matmul_pairs(tmp, &wp, o, b, Epilogue::default());
                });
                low.scatter(g, tmp, nb, yc);
            })
        });
}

/// `dx (N × C × H × W) = col2im(bf16(w)ᵀ · bf16(dy[n]))` with f32 sums, for any shape.
pub fn input_grad_products(g: &ConvGeometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    input_grad_by(Bf16Route::of(g, Pass::InputGrad), g, w, dy, dx)
}

/// [`input_grad_products`] on `route` (which must apply to `g`): for stride 1 the forward
/// convolution of `dy` with the flipped kernel on the same route (the panels take a 1 × 1
/// kernel as Wᵀ · dy instead), otherwise the channels-last tiles or Wᵀ · dy through col2im.
pub fn input_grad_by(route: Bf16Route, g: &ConvGeometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let flipped = g
        .flipped()
        .filter(|_| route == Bf16Route::ChannelsLast || !g.is_pointwise());
    match (flipped, route) {
        (Some(gi), _) => forward_by(route, &gi, dy, &flip_kernel(w, g), dx),
        (None, Bf16Route::ChannelsLast) => bf16_input_grad::input_grad(g, w, dy, dx),
        (None, Bf16Route::Panels) => input_grad_panels(g, w, dy, dx),
    }
}

fn input_grad_panels(g: &ConvGeometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (o, k, p) = (g.out_c, g.patch_len(), g.out_pixels());
    let wt = transposed_weight_pairs(g, w);
    let low = Lowering::of(g);
    let nb = g.images_per_chunk(threads());
    dx.par_chunks_mut(nb * g.in_len())
        .zip(dy.par_chunks(nb * g.out_len()))
        .for_each(|(dxc, dyc)| {
            let nb = dxc.len() / g.in_len();
            if nb == 1 && g.is_pointwise() {
                return bf16_gemm::with_panels(panels_len(o, p), |buf| {
                    let b = pack_rows(dyc, p, o, p, buf);
                    matmul_pairs(dxc, &wt, k, b, Epilogue::default());
                });
            }
            let cols = nb * low.span(g);
            let lens = scratch_lens(g, &low, nb);
            with_scratch(lens.iter().sum(), |buf| {
                let (col, tmp, pad) = split3(buf, lens);
                low.gather(g, dyc, nb, tmp);
                bf16_gemm::with_panels(panels_len(o, cols), |panels| {
                    let b = pack_rows(tmp, cols, o, cols, panels);
                    matmul_pairs(col, &wt, k, b, Epilogue::default());
                });
                low.col2im(g, col, nb, dxc, pad);
            })
        });
}

/// `dw (O × C × KH × KW) = Σ_n bf16(dy[n]) · bf16(patches(x[n]))ᵀ` with f32 sums, for any
/// shape, over a fixed partition of the batch (one partial sum per group, added in group
/// order).
pub fn weight_grad_products(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    weight_grad_by(Bf16Route::of(g, Pass::WeightGrad), g, x, dy, dw)
}

/// [`weight_grad_products`] on `route` (which must apply to `g`).
pub fn weight_grad_by(route: Bf16Route, g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    match route {
        Bf16Route::ChannelsLast => bf16_weight_grad::weight_grad(g, x, dy, dw),
        Bf16Route::Panels => weight_grad_panels(g, x, dy, dw),
    }
}

fn weight_grad_panels(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (o, k) = (g.out_c, g.patch_len());
    let low = Lowering::of(g);
    let nb = g.images_per_chunk(threads());
    // In place where the chunk's columns (each image's made even) fit one product.
    let grid_rows = GridRows::of(g).filter(|rows| {
        !g.is_pointwise() && nb * rows.span.next_multiple_of(2) <= WEIGHT_GRAD_COLUMNS
    });
    let parts = ChunkGroups::new(g.batch, nb, threads());
    let partial = |grp: usize, acc: &mut [f32]| {
        // dwᵀ (K × O): the patch rows are the product's left operand (pairs along pixels,
        // converted in one contiguous pass each), the output gradient its packed right one.
        let mut dwt = vec![0.0f32; k * o];
        let mut first = true;
        for (i0, nb) in parts.chunks(grp) {
            let xc = &x[i0 * g.in_len()..(i0 + nb) * g.in_len()];
            let dyc = &dy[i0 * g.out_len()..(i0 + nb) * g.out_len()];
            match &grid_rows {
                Some(rows) => grid_weight_grad(g, rows, xc, dyc, &mut dwt, !first),
                None => lowered_weight_grad(g, &low, xc, dyc, &mut dwt, !first),
            }
            first = false;
        }
        super::transpose::transpose(&dwt, o, (k, o), acc, |j| j * k);
    };
    sum_groups(parts.groups, dw, partial)
}

/// `dwt (K × O) [+]= bf16(patches(xc)) · bf16(dyc)ᵀ` for a chunk whose patch rows are read in
/// place (`rows`), the chunk's columns (each image's made even) in one product.
fn grid_weight_grad(
    g: &ConvGeometry,
    rows: &GridRows,
    xc: &[f32],
    dyc: &[f32],
    dwt: &mut [f32],
    accumulate: bool,
) {
    let (o, k, nb) = (g.out_c, g.patch_len(), xc.len() / g.in_len());
    let width = rows.span.next_multiple_of(2);
    let (plane, cols, wp) = (rows.plane(g), nb * width, width / 2);
    let epi = Epilogue {
        accumulate,
        ..Epilogue::default()
    };
    with_scratch(nb * plane + 2 * o * cols, |buf| {
        let (pads, rest) = buf.split_at_mut(nb * plane);
        let (tmp, t) = rest.split_at_mut(o * cols);
        rows.pad(g, xc, nb, pads);
        rows.gather(g, dyc, cols, width, tmp);
        bf16_gemm::with_pairs(k * nb * wp, |a| {
            // Patch row r: each image's grid columns, an odd span's last pair zero-padded (as
            // the gathered gradient's column there).
            for (r, ar) in a.chunks_exact_mut(nb * wp).enumerate() {
                for (i, dst) in ar.chunks_exact_mut(wp).enumerate() {
                    let pad = &pads[i * plane..(i + 1) * plane];
                    bf16_gemm::to_pairs(rows.row(pad, r), dst);
                }
            }
            bf16_gemm::with_panels(panels_len(cols, o), |panels| {
                let b = pack_columns(tmp, cols, cols, o, t, panels);
                matmul_pairs(dwt, a, k, b, epi);
            })
        });
    });
}

/// `dwt (K × O) [+]= bf16(patches(xc)) · bf16(dyc)ᵀ` through the copied patch matrix (or the
/// image itself, pointwise), in products of at most [`WEIGHT_GRAD_COLUMNS`] columns.
fn lowered_weight_grad(
    g: &ConvGeometry,
    low: &Lowering,
    xc: &[f32],
    dyc: &[f32],
    dwt: &mut [f32],
    mut accumulate: bool,
) {
    let (o, k, nb) = (g.out_c, g.patch_len(), xc.len() / g.in_len());
    let cols = nb * low.span(g);
    let mut add = |patch_rows: &[f32], dy_rows: &[f32]| {
        for c0 in (0..cols).step_by(WEIGHT_GRAD_COLUMNS) {
            let len = (cols - c0).min(WEIGHT_GRAD_COLUMNS);
            bf16_gemm::with_pairs(k * len.div_ceil(2), |a| {
                rows_to_pairs(&patch_rows[c0..], cols, k, len, a);
                with_scratch(len * o, |t| {
                    bf16_gemm::with_panels(panels_len(len, o), |panels| {
                        let b = pack_columns(&dy_rows[c0..], cols, len, o, t, panels);
                        let epi = Epilogue {
                            accumulate,
                            ..Epilogue::default()
                        };
                        matmul_pairs(dwt, a, k, b, epi);
                    })
                })
            });
            accumulate = true;
        }
    };
    if nb == 1 && g.is_pointwise() {
        return add(xc, dyc);
    }
    let lens = scratch_lens(g, low, nb);
    with_scratch(lens.iter().sum(), |buf| {
        let (col, tmp, pad) = split3(buf, lens);
        low.patches(g, xc, nb, col, pad);
        low.gather(g, dyc, nb, tmp);
        add(col, tmp);
    });
}

#[cfg(test)]
mod tests {
    use super::super::bf16_gemm::{bf16_bits, bf16_value};
    use super::super::reference;
    use super::*;

    fn rounded(v: &[f32]) -> Vec<f32> {
        v.iter().map(|x| bf16_value(bf16_bits(*x))).collect()
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Each pass on each route that computes it equals the f64 convolution of the
    /// bf16-rounded operands within f32 summation error (sums of |products| times K·ε), on
    /// odd shapes, strides and paddings, the pointwise route, the grid and patch lowerings,
    /// patch rows read in place from padded images and the weight gradient's accumulated
    /// column blocks included.
    #[test]
    fn passes_equal_the_f64_convolution_of_rounded_operands() {
        if !bf16_gemm::supported() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let cases = [
            ([3, 5, 9, 7], [7, 5, 3, 3], [1, 1], [(1, 1), (1, 1)]),
            ([2, 3, 11, 13], [33, 3, 7, 7], [2, 2], [(3, 3), (3, 3)]),
            ([1, 40, 6, 6], [35, 40, 1, 1], [1, 1], [(0, 0), (0, 0)]),
            ([4, 17, 8, 8], [9, 17, 1, 1], [2, 2], [(0, 0), (0, 0)]),
            ([2, 6, 5, 9], [4, 6, 3, 2], [2, 1], [(1, 2), (0, 1)]),
            ([2, 64, 45, 47], [3, 64, 3, 3], [1, 1], [(1, 1), (1, 1)]),
            // Patch rows read in place from padded images, several images per chunk.
            ([6, 8, 16, 16], [33, 8, 3, 3], [1, 1], [(1, 1), (1, 1)]),
            // More pixel columns than one weight-gradient product takes: accumulated blocks.
            ([1, 4, 70, 70], [40, 4, 3, 3], [1, 1], [(1, 1), (1, 1)]),
            // The channels-last routes: output channels in vectors and input channels in
            // pairs (forward), input channels in vectors (weight gradient); odd output rows,
            // strides with uneven padding, strided and plain 1 × 1 kernels, a one-pixel map,
            // a tile of one vector, and input channels in pairs but not vectors.
            ([3, 32, 9, 7], [48, 32, 3, 3], [1, 1], [(1, 1), (1, 1)]),
            ([3, 16, 10, 9], [32, 16, 3, 3], [2, 2], [(1, 0), (0, 1)]),
            ([2, 32, 7, 5], [16, 32, 1, 1], [2, 3], [(0, 0), (0, 0)]),
            ([2, 48, 5, 5], [64, 48, 1, 1], [1, 1], [(0, 0), (0, 0)]),
            ([2, 16, 1, 1], [32, 16, 3, 3], [1, 1], [(1, 1), (1, 1)]),
            ([3, 34, 6, 6], [16, 34, 3, 3], [1, 1], [(1, 1), (1, 1)]),
            ([2, 64, 11, 11], [128, 64, 7, 7], [2, 2], [(3, 3), (3, 3)]),
            // Larger maps: chunks of one image, many tiles and output rows.
            ([1, 64, 48, 48], [32, 64, 3, 3], [1, 1], [(1, 1), (1, 1)]),
            ([1, 16, 130, 130], [32, 16, 3, 3], [2, 2], [(1, 1), (1, 1)]),
        ];
        for (xs, ws, stride, pad) in cases {
            let g = ConvGeometry::new(xs, ws, stride, pad).unwrap();
            let x = values(g.batch * g.in_len(), 1);
            let w = values(g.out_c * g.patch_len(), 2);
            let dy = values(g.batch * g.out_len(), 3);
            let (xr, wr, dyr) = (rounded(&x), rounded(&w), rounded(&dy));
            let abs = |v: &[f32]| v.iter().map(|a| a.abs()).collect::<Vec<_>>();
            // Per element: |error| ≤ n·ε·Σ|products| (+ a tiny floor), n the terms summed.
            let check = |what: &str, got: &[f32], want: &[f64], mag: &[f64], n: usize| {
                for (i, ((gv, wv), m)) in got.iter().zip(want).zip(mag).enumerate() {
                    let tol = n as f64 * f32::EPSILON as f64 * m + 1e-30;
                    let err = (*gv as f64 - wv).abs();
                    assert!(err <= tol, "{xs:?} {ws:?} {what}[{i}]: {err:e} > {tol:e}");
                }
            };
            let routes = |pass| {
                [Bf16Route::ChannelsLast, Bf16Route::Panels]
                    .into_iter()
                    .filter(move |r| r.applies(&g, pass))
            };
            let want = reference::forward(&g, &xr, &wr);
            let mag = reference::forward(&g, &abs(&xr), &abs(&wr));
            for route in routes(Pass::Forward) {
                let mut y = vec![f32::NAN; g.batch * g.out_len()];
                forward_by(route, &g, &x, &w, &mut y);
                check(
                    &format!("{route:?} forward"),
                    &y,
                    &want,
                    &mag,
                    g.patch_len(),
                );
            }

            let want = reference::input_grad(&g, &wr, &dyr);
            let mag = reference::input_grad(&g, &abs(&wr), &abs(&dyr));
            for route in routes(Pass::InputGrad) {
                let mut dx = vec![f32::NAN; x.len()];
                input_grad_by(route, &g, &w, &dy, &mut dx);
                let n = g.out_c * g.k_h * g.k_w;
                check(&format!("{route:?} input_grad"), &dx, &want, &mag, n);
            }

            let want = reference::weight_grad(&g, &xr, &dyr);
            let mag = reference::weight_grad(&g, &abs(&xr), &abs(&dyr));
            for route in routes(Pass::WeightGrad) {
                let mut dw = vec![f32::NAN; w.len()];
                weight_grad_by(route, &g, &x, &dy, &mut dw);
                let n = g.batch * g.out_pixels();
                check(&format!("{route:?} weight_grad"), &dw, &want, &mag, n);
            }
        }
    }
}
