//! 2-d convolution on f32 NCHW slices: forward, weight gradient and input gradient. Each pass
//! of each shape takes one [`Route`]: Winograd, the direct kernel or outer products on
//! channels-last copies where they measured faster, otherwise a lowering ([`Lowering`]) + one
//! matrix product per chunk of images; chunks in parallel on rayon.

use super::dot::{matmul_nt, Out, Rows};
use super::gemm::{matmul, View};
use super::geometry::flip_kernel;
use super::geometry::ConvGeometry;
use super::isa::VectorWidth;
use super::lowering::{scratch_lens, split3, Lowering};
use super::partition::{sum_groups, ChunkGroups};
use super::scratch::with_scratch;
use super::{channels_last, direct, winograd, ConvAlgorithm};
use rayon::prelude::*;

fn threads() -> usize {
    rayon::current_num_threads()
}

/// One of the three computations of a convolution layer in a training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// `y = conv(x, w)`.
    Forward,
    /// `dw` from `x` and `dy`.
    WeightGrad,
    /// `dx` from `w` and `dy`.
    InputGrad,
}

/// The algorithm that computes one [`Pass`] of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Winograd F(2×2, 3×3) ([`winograd`]): 3 × 3 stride-1 layers with many channels.
    Winograd,
    /// The direct kernel on the padded grid ([`direct`]): stride-1 layers with few channels.
    Direct,
    /// Register-tiled outer products on channels-last copies ([`channels_last`]): layers
    /// whose channels fill whole 16-lane vectors.
    ChannelsLast,
    /// Patch lowering + matrix product: every shape.
    Lowering,
}

impl Route {
    /// The route `pass` of `g` takes: the measured fastest that applies
    /// ([`ConvAlgorithm::Auto`]), or the lowering under [`ConvAlgorithm::Lowering`].
    pub fn of(g: &ConvGeometry, pass: Pass) -> Self {
        if ConvAlgorithm::current() == ConvAlgorithm::Lowering {
            return Route::Lowering;
        }
        let direct = direct::applies(g) && direct::pays(g, pass);
        if takes_channels_last(g, pass, direct) {
            return Route::ChannelsLast;
        }
        let winograd = winograd::applies(g) && winograd::pays(g);
        // With 16 lanes (measured on a 2-core Intel Xeon, model 207), for the layers the
        // channels-last kernels do not take: the direct forward (and input gradient, a forward)
        // outruns Winograd wherever it pays (64 → 64 on 32 × 32 maps: 1.2×). The lowering's
        // weight gradient was measured ahead of Winograd's as a packed product (1.1–1.4×);
        // the dot products it now runs for the channel counts left to it (no whole vectors
        // of output channels) were not re-measured against Winograd.
        let wide = VectorWidth::current() == VectorWidth::Avx512;
        let winograd = winograd && !(wide && pass == Pass::WeightGrad);
        let direct_first = wide && pass != Pass::WeightGrad;
        match (winograd, direct) {
            (_, true) if direct_first => Route::Direct,
            (true, _) => Route::Winograd,
            (false, true) => Route::Direct,
            (false, false) => Route::Lowering,
        }
    }

    /// Whether this route can compute `pass` of `g`.
    pub fn applies(self, g: &ConvGeometry, pass: Pass) -> bool {
        match self {
            Route::Winograd => winograd::applies(g),
            Route::Direct => direct::applies(g),
            Route::ChannelsLast if pass == Pass::InputGrad => channels_last::applies_input_grad(g),
            Route::ChannelsLast => channels_last::applies(g),
            Route::Lowering => true,
        }
    }
}

/// Channels (min of C, O) from which, with AVX-512, every pass the channels-last kernels
/// apply to takes them, ahead of the direct kernel and Winograd. On a 2-core Intel Xeon
/// (model 207, `protoclust bench --routes`, docs/performance.md): 32 → 32 at 16 × 16 ties the
/// direct kernel and wins at 8 × 8 (1.2×); from 64 channels they win every pass of every
/// layer (64 → 64 at 32 × 32: forward 1.2–1.3× the direct kernel; 128 → 128 at 16 × 16 and
/// 256 → 256 at 8 × 8 1.1–1.3× Winograd; 512 → 512 at 4 × 4 1.1–1.3× the lowering), while
/// 16 → 16 loses to the direct kernel by 1.2×.
const CHANNELS_LAST_CHANNELS: usize = 32;

/// Channels (min of C, O) from which, with AVX-512, the channels-last kernels replace the
/// lowering (and the direct weight gradient, which stops at 8 channels): 1.3–2× on the
/// three passes of the stride-2 16 → 32 layers.
const CHANNELS_LAST_MIN_CHANNELS: usize = 16;

/// Output pixels per image from which, with AVX-512, the forward and input gradient of a
/// 1 × 1 convolution stay on NCHW as one matrix product per image (the lowering, or the direct
/// kernel, which for 1 × 1 is the same product) instead of the channels-last copies. On a
/// 2-core AMD EPYC (Zen 4, `protoclust bench --routes`, docs/performance.md): 1.1–1.4× on every
/// 1 × 1 layer of a ResNet-50 at 224 px with maps from 56 × 56 to 14 × 14 (batch 32), 1.5–2.2×
/// on the stride-2 shortcuts of the width-64 ResNet-18 at 32 px into 16 × 16 and 8 × 8; the
/// channels-last kernels keep the 7 × 7 and 4 × 4 maps (1.25× at 512 → 2048 on 7 × 7) and
/// every weight gradient.
const POINTWISE_PRODUCT_PIXELS: usize = 64;

/// Whether `pass` of `g` is a 1 × 1 forward or input gradient left to the NCHW product.
fn pointwise_product(g: &ConvGeometry, pass: Pass) -> bool {
    g.k_h == 1
        && g.k_w == 1
        && pass != Pass::WeightGrad
        && g.out_h * g.out_w >= POINTWISE_PRODUCT_PIXELS
}

/// Whether `pass` of `g` runs as outer products on channels-last copies ([`channels_last`]),
/// given whether the direct kernel would pay for it.
fn takes_channels_last(g: &ConvGeometry, pass: Pass, direct: bool) -> bool {
    let channels = g.in_c.min(g.out_c);
    VectorWidth::current() == VectorWidth::Avx512
        && Route::ChannelsLast.applies(g, pass)
        && !pointwise_product(g, pass)
        && (channels >= CHANNELS_LAST_CHANNELS
            || (channels >= CHANNELS_LAST_MIN_CHANNELS && !direct))
}

/// `y (N × O × OH × OW) = conv(x (N × C × H × W), w (O × C × KH × KW))`.
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    forward_by(Route::of(g, Pass::Forward), g, x, w, y)
}

/// [`forward`] through `route`, which must [`Route::applies`] to it.
pub fn forward_by(route: Route, g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    match route {
        Route::Winograd => winograd::forward(g, x, w, y),
        Route::Direct => direct::forward(g, x, w, y),
        Route::ChannelsLast => channels_last::forward(g, x, w, y),
        Route::Lowering => forward_lowering(g, x, w, y),
    }
}

fn forward_lowering(g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    let (o, k, p) = (g.out_c, g.patch_len(), g.out_pixels());
    let low = Lowering::of(g);
    let nb = g.images_per_chunk(threads());
    let wv = View::rows(w, o, k);
    y.par_chunks_mut(nb * g.out_len())
        .zip(x.par_chunks(nb * g.in_len()))
        .for_each(|(yc, xc)| {
            let nb = yc.len() / g.out_len();
            if nb == 1 && g.is_pointwise() {
                return matmul(yc, p, false, wv, View::rows(xc, k, p));
            }
            let cols = nb * low.span(g);
            let lens = scratch_lens(g, &low, nb);
            with_scratch(lens.iter().sum(), |buf| {
                let (col, tmp, pad) = split3(buf, lens);
                low.patches(g, xc, nb, col, pad);
                matmul(tmp, cols, false, wv, View::rows(col, k, cols));
                low.scatter(g, tmp, nb, yc);
            })
        });
}

/// `dw (O × C × KH × KW) = Σ_n dy[n] · patches(x[n])ᵀ`, summed over a fixed partition of the
/// batch (one partial sum per group, added in group order: the result does not depend on
/// scheduling).
pub fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    weight_grad_by(Route::of(g, Pass::WeightGrad), g, x, dy, dw)
}

/// [`weight_grad`] through `route`, which must [`Route::applies`] to it.
pub fn weight_grad_by(route: Route, g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    match route {
        Route::Winograd => winograd::weight_grad(g, x, dy, dw),
        Route::Direct => direct::weight_grad(g, x, dy, dw),
        Route::ChannelsLast => channels_last::weight_grad(g, x, dy, dw),
        Route::Lowering => weight_grad_lowering(g, x, dy, dw),
    }
}

fn weight_grad_lowering(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (o, k) = (g.out_c, g.patch_len());
    let low = Lowering::of(g);
    let nb = g.images_per_chunk(threads());
    let parts = ChunkGroups::new(g.batch, nb, threads());
    let partial = |grp: usize, acc: &mut [f32]| {
        let mut first = true;
        for (i0, nb) in parts.chunks(grp) {
            let xc = &x[i0 * g.in_len()..(i0 + nb) * g.in_len()];
            let dyc = &dy[i0 * g.out_len()..(i0 + nb) * g.out_len()];
            let cols = nb * low.span(g);
            let out = Out {
                dst: acc,
                ld: k,
                accumulate: !first,
            };
            // dw += dY rows · patch rows, both `cols` long.
            let dots = |out: Out<'_>, dy_rows: &[f32], patch_rows: &[f32]| {
                let a = Rows {
                    data: dy_rows,
                    rows: o,
                    stride: cols,
                };
                let b = Rows {
                    data: patch_rows,
                    rows: k,
                    stride: cols,
                };
                matmul_nt(out, a, b, cols)
            };
            if nb == 1 && g.is_pointwise() {
                dots(out, dyc, xc);
            } else {
                let lens = scratch_lens(g, &low, nb);
                with_scratch(lens.iter().sum(), |buf| {
                    let (col, tmp, pad) = split3(buf, lens);
                    low.patches(g, xc, nb, col, pad);
                    low.gather(g, dyc, nb, tmp);
                    dots(out, tmp, col);
                });
            }
            first = false;
        }
        if first {
            acc.fill(0.0);
        }
    };
    sum_groups(parts.groups, dw, partial)
}

/// `dx (N × C × H × W) = col2im(wᵀ · dy[n])` for every image.
pub fn input_grad(g: &ConvGeometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    input_grad_by(Route::of(g, Pass::InputGrad), g, w, dy, dx)
}

/// [`input_grad`] through `route`, which must [`Route::applies`] to it.
pub fn input_grad_by(route: Route, g: &ConvGeometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    match route {
        Route::ChannelsLast => channels_last::input_grad(g, w, dy, dx),
        Route::Winograd => {
            let gi = g
                .flipped()
                .expect("Winograd applies to stride-1 shapes only");
            winograd::forward(&gi, dy, &flip_kernel(w, g), dx)
        }
        Route::Direct => direct::input_grad(g, w, dy, dx),
        Route::Lowering => input_grad_lowering(g, w, dy, dx),
    }
}

fn input_grad_lowering(g: &ConvGeometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (o, k, p) = (g.out_c, g.patch_len(), g.out_pixels());
    let low = Lowering::of(g);
    let nb = g.images_per_chunk(threads());
    let wt = View::transposed(w, k, o);
    dx.par_chunks_mut(nb * g.in_len())
        .zip(dy.par_chunks(nb * g.out_len()))
        .for_each(|(dxc, dyc)| {
            let nb = dxc.len() / g.in_len();
            if nb == 1 && g.is_pointwise() {
                return matmul(dxc, p, false, wt, View::rows(dyc, o, p));
            }
            let cols = nb * low.span(g);
            let lens = scratch_lens(g, &low, nb);
            with_scratch(lens.iter().sum(), |buf| {
                let (col, tmp, pad) = split3(buf, lens);
                low.gather(g, dyc, nb, tmp);
                matmul(col, cols, false, wt, View::rows(tmp, o, cols));
                low.col2im(g, col, nb, dxc, pad);
            })
        });
}
