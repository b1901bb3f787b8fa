//! Convolutions as register-tiled outer products on channels-last copies of each chunk of
//! images, for layers with many channels: a register tile holds 32 channels (two 16-lane
//! vectors) at 12 pixels or 12 inputs broadcast from a channels-last image. There is no patch
//! matrix: a kernel tap is an offset into the zero-padded channels-last image, and a stride only
//! changes the step between pixels. AVX-512 runs the tiles (24 accumulators need its 32
//! registers); other CPUs get the same sums in plain Rust, for tests.
//!
//! - [`forward`]: 12 output pixels × 32 output channels, summed over (tap, input channel).
//! - [`input_grad`]: 12 output pixels × 32 input channels per tap, summed over the output
//!   channels and added onto the padded input gradient (any stride).
//! - [`weight_grad`]: 12 inputs × 32 output channels, summed over every output pixel.
//! - [`bf16_forward`]: the forward's tile with bf16 pairs of input channels (AVX512-BF16).
//! - [`bf16_input_grad`]: the input gradient's tile with bf16 pairs of output channels, for
//!   strided layers (AVX512-BF16).
//! - [`bf16_weight_grad`]: 12 output channels × 32 inputs at one tap, with bf16 pairs of
//!   output pixels (AVX512-BF16).

pub mod bf16_forward;
pub mod bf16_input_grad;
pub mod bf16_weight_grad;
mod forward;
mod input_grad;
mod tile;
mod weight_grad;

pub use forward::forward;
pub use input_grad::input_grad;
pub use weight_grad::weight_grad;

use super::bf16_gemm::bf16_bits;
use super::geometry::ConvGeometry;
use super::lowering::padded;
use super::transpose::{transpose, transpose_bf16};

/// f32 lanes of one AVX-512 vector: the channels a tile spans must be a multiple of it.
pub const LANES: usize = 16;

/// Channels per register tile (two vectors).
const BLOCK: usize = 2 * LANES;

/// Floats of channels-last operands one chunk keeps hot (1 MiB).
const CHUNK_FLOATS: usize = 256 * 1024;

/// Output pixels a chunk should hold at least, so that loading and storing the accumulators
/// (or streaming the packed weights) stays small next to the products.
const MIN_CHUNK_PIXELS: usize = 64;

/// Index of (row `r`, column `col`) in a matrix of `k` rows × `n` columns stored as blocks of
/// [`BLOCK`] columns (the last one possibly one vector), each `k` rows of its width: a tile's
/// columns lie together.
fn slot(k: usize, n: usize, r: usize, col: usize) -> usize {
    let c0 = col / BLOCK * BLOCK;
    c0 * k + r * BLOCK.min(n - c0) + (col - c0)
}

/// Whether these kernels compute the forward and weight gradient of `g`: output channels in
/// whole vectors.
pub fn applies(g: &ConvGeometry) -> bool {
    g.out_c > 0 && g.out_c.is_multiple_of(LANES)
}

/// Whether [`input_grad`] computes the input gradient of `g`: input channels in whole vectors.
pub fn applies_input_grad(g: &ConvGeometry) -> bool {
    g.in_c > 0 && g.in_c.is_multiple_of(LANES)
}

/// Shapes of one chunk's channels-last operands.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Row pitch (in pixels) of the packed image.
    pitch: usize,
    /// Floats of one packed channels-last image (rows × pitch × C).
    image: usize,
    /// Floats of one image's channels-last output (OH × OW × O).
    grad: usize,
    /// Input pixels per packed pixel, down and across: the stride of an unpadded 1 × 1 kernel
    /// (only the pixels it reads are packed), 1 otherwise.
    step: [usize; 2],
    /// Packed pixels between output pixels, down and across.
    stride: [usize; 2],
}

impl Layout {
    /// The layout that packs only the pixels the kernel reads.
    fn of(g: &ConvGeometry) -> Self {
        let unpadded = g.pad_t + g.pad_b + g.pad_l + g.pad_r == 0;
        if g.k_h == 1 && g.k_w == 1 && unpadded {
            return Self {
                pitch: g.out_w,
                image: g.out_pixels() * g.in_c,
                grad: g.out_pixels() * g.out_c,
                step: [g.stride_h, g.stride_w],
                stride: [1, 1],
            };
        }
        Self::padded(g)
    }

    /// The layout of the whole zero-padded image.
    fn padded(g: &ConvGeometry) -> Self {
        let (pitch, rows) = padded(g);
        Self {
            pitch,
            image: rows * pitch * g.in_c,
            grad: g.out_pixels() * g.out_c,
            step: [1, 1],
            stride: [g.stride_h, g.stride_w],
        }
    }

    /// Images per chunk: at least [`MIN_CHUNK_PIXELS`] output pixels, else as many as fit in
    /// [`CHUNK_FLOATS`]; at most `limit`.
    fn images_per_chunk(&self, g: &ConvGeometry, limit: usize) -> usize {
        let by_pixels = MIN_CHUNK_PIXELS.div_ceil(g.out_pixels().max(1));
        let by_cache = CHUNK_FLOATS / (self.image + self.grad);
        by_pixels.max(by_cache).clamp(1, limit.max(1))
    }

    /// Offset in a chunk's packed images of output pixel `q` (over the chunk's images, row
    /// major)'s top-left tap.
    fn pixel(&self, g: &ConvGeometry, q: usize) -> usize {
        let (i, p) = (q / g.out_pixels(), q % g.out_pixels());
        let (oh, ow) = (p / g.out_w, p % g.out_w);
        i * self.image + (oh * self.stride[0] * self.pitch + ow * self.stride[1]) * g.in_c
    }
}

/// Transposes the pixels of image `x` (C × H × W) the kernel reads into the middle of its
/// zero-padded channels-last copy (rows × pitch × C).
fn pack_image(g: &ConvGeometry, lay: &Layout, x: &[f32], out: &mut [f32]) {
    pack_with(
        g,
        lay,
        x,
        out,
        |v| v,
        |src, ld, shape, dst, at| transpose(src, ld, shape, dst, at),
    )
}

/// [`pack_image`] rounded to bf16 (round to nearest even).
fn pack_image_bf16(g: &ConvGeometry, lay: &Layout, x: &[f32], out: &mut [u16]) {
    pack_with(g, lay, x, out, bf16_bits, |src, ld, shape, dst, at| {
        transpose_bf16(src, ld, shape, dst, at)
    })
}

/// [`pack_image`] with each value stored as `round(v)`, `tr` the matching [`transpose`].
fn pack_with<T: Copy + Default>(
    g: &ConvGeometry,
    lay: &Layout,
    x: &[f32],
    out: &mut [T],
    round: impl Fn(f32) -> T,
    tr: impl Fn(&[f32], usize, (usize, usize), &mut [T], &dyn Fn(usize) -> usize),
) {
    let c = g.in_c;
    let out = &mut out[..lay.image];
    if lay.step == [1, 1] {
        // Only the border is zeroed: the transpose writes every interior pixel.
        let (top, left) = (g.pad_t * lay.pitch * c, g.pad_l * c);
        let right = (lay.pitch - g.pad_l - g.in_w) * c;
        out[..top].fill(T::default());
        let interior = &mut out[top..][..g.in_h * lay.pitch * c];
        for row in interior.chunks_exact_mut(lay.pitch * c) {
            row[..left].fill(T::default());
            row[lay.pitch * c - right..].fill(T::default());
        }
        out[top + g.in_h * lay.pitch * c..].fill(T::default());
        // The image is C rows of H·W pixels; pixel p lands in row p / W of the interior.
        let at = |p: usize| ((p / g.in_w + g.pad_t) * lay.pitch + p % g.in_w + g.pad_l) * c;
        return tr(x, g.in_h * g.in_w, (c, g.in_h * g.in_w), out, &at);
    }
    let [sh, sw] = lay.step;
    let (rows, cols) = (g.in_h.div_ceil(sh), g.in_w.div_ceil(sw));
    for h in 0..rows {
        let row = &mut out[((h + g.pad_t) * lay.pitch + g.pad_l) * c..][..cols * c];
        let plane = |ch: usize| &x[(ch * g.in_h + h * sh) * g.in_w..][..g.in_w];
        // 16 pixels at a time: their channel vectors stay in L1 while every plane is read.
        for w0 in (0..cols).step_by(LANES) {
            let wn = LANES.min(cols - w0);
            for ch in 0..c {
                let src = plane(ch);
                for k in 0..wn {
                    row[(w0 + k) * c + ch] = round(src[(w0 + k) * sw]);
                }
            }
        }
    }
}

/// The interior of a zero-padded channels-last image `xt` (rows × pitch × C) back into
/// C × H × W.
fn unpack_image(g: &ConvGeometry, lay: &Layout, xt: &[f32], x: &mut [f32]) {
    let (c, plane) = (g.in_c, g.in_h * g.in_w);
    for h in 0..g.in_h {
        let row = &xt[((h + g.pad_t) * lay.pitch + g.pad_l) * c..][..g.in_w * c];
        transpose(row, c, (g.in_w, c), x, |ch| ch * plane + h * g.in_w);
    }
}

/// Transposes one image's output map (O × P) into P × O.
fn pack_grad(o: usize, pixels: usize, dy: &[f32], out: &mut [f32]) {
    transpose(dy, pixels, (o, pixels), out, |p| p * o)
}

/// The channels a block of packed weights spans: a tile's vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocks {
    /// Output channels (the forward): rows (kh·KW + kw)·C + c.
    Outputs,
    /// Input channels (the input gradient): rows (kh·KW + kw)·O + o.
    Inputs,
}

impl Blocks {
    /// (channels the blocks span, the other channels) of `g`.
    fn sizes(self, g: &ConvGeometry) -> (usize, usize) {
        match self {
            Blocks::Outputs => (g.out_c, g.in_c),
            Blocks::Inputs => (g.in_c, g.out_c),
        }
    }

    /// Index in `w` (O × C × KH × KW, `taps` = KH·KW) of block channel `col`, other channel
    /// `i`, tap `t`.
    fn weight(self, g: &ConvGeometry, col: usize, i: usize, t: usize) -> usize {
        let (oc, ch) = match self {
            Blocks::Outputs => (col, i),
            Blocks::Inputs => (i, col),
        };
        (oc * g.in_c + ch) * g.k_h * g.k_w + t
    }
}

/// The weights (O × C × KH × KW) as blocks of [`BLOCK`] channels of the kind `blocks` names,
/// each KH·KW·(the other channels) rows of the block's width ([`slot`]), 64-byte aligned.
fn pack_weights(g: &ConvGeometry, w: &[f32], blocks: Blocks) -> Aligned {
    let (cols, inner) = blocks.sizes(g);
    let k = g.k_h * g.k_w * inner;
    let mut packed = Aligned::zeros(k * cols);
    // In the packed order (the writes sequential), each value read from w[o][c][tap].
    let mut dst = packed.as_mut_slice().iter_mut();
    for b0 in (0..cols).step_by(BLOCK) {
        for r in 0..k {
            let (t, i) = (r / inner, r % inner);
            for col in b0..cols.min(b0 + BLOCK) {
                *dst.next().expect("packed weights fit") = w[blocks.weight(g, col, i, t)];
            }
        }
    }
    packed
}

/// The weights (O × C × KH × KW) rounded to bf16 as blocks of [`BLOCK`] channels of the kind
/// `blocks` names (the last possibly one vector), each KH·KW·(the other channels)/2 rows of
/// the block's width: row `tap·n/2 + p` holds the pairs of the other channels 2p and 2p + 1
/// (n of them, even) at that tap, one per channel of the block.
fn pack_weight_pairs(g: &ConvGeometry, w: &[f32], blocks: Blocks) -> Vec<u32> {
    let (taps, (cols, inner)) = (g.k_h * g.k_w, blocks.sizes(g));
    let mut packed = Vec::with_capacity(taps * inner / 2 * cols);
    for b0 in (0..cols).step_by(BLOCK) {
        for t in 0..taps {
            for pair in 0..inner / 2 {
                for col in b0..cols.min(b0 + BLOCK) {
                    let at = |i: usize| bf16_bits(w[blocks.weight(g, col, i, t)]) as u32;
                    packed.push(at(2 * pair) | (at(2 * pair + 1) << 16));
                }
            }
        }
    }
    packed
}

/// A float buffer whose first element lies on a 64-byte boundary (wherever `align_offset` can
/// place it), so that no vector load of a packed block splits a cache line.
struct Aligned {
    buf: Vec<f32>,
    start: usize,
}

impl Aligned {
    fn zeros(len: usize) -> Self {
        let buf = vec![0.0f32; len + LANES];
        let start = buf.as_ptr().align_offset(64).min(LANES);
        Self { buf, start }
    }

    fn as_slice(&self) -> &[f32] {
        &self.buf[self.start..]
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..]
    }
}

/// Layer shapes the channels-last kernels' tests share.
#[cfg(test)]
mod cases {
    use super::ConvGeometry;

    /// Input shape, weight shape, stride, padding (top, bottom, left, right).
    pub type Case = ([usize; 4], [usize; 4], [usize; 2], [usize; 4]);

    /// Output channels in whole vectors: strides 1 and 2, 1 × 1, 3 × 3, 5 × 5 and 7 × 7
    /// kernels, uneven padding, channel counts that leave tile tails (C not a multiple of 4 or
    /// 12, O = 16 or 48), pixel tails of every tile size, one-pixel maps, 1 × 1 kernels with a
    /// stride that does not divide the map.
    pub const CASES: [Case; 9] = [
        ([3, 13, 9, 7], [48, 13, 3, 3], [1, 1], [1, 1, 1, 1]),
        ([2, 8, 10, 9], [32, 8, 3, 3], [2, 2], [1, 0, 0, 1]),
        ([5, 32, 4, 4], [64, 32, 3, 3], [1, 1], [1, 1, 1, 1]),
        ([2, 20, 6, 6], [16, 20, 1, 1], [2, 2], [0, 0, 0, 0]),
        ([2, 20, 7, 5], [32, 20, 1, 1], [2, 3], [0, 0, 0, 0]),
        ([3, 25, 5, 5], [32, 25, 1, 1], [1, 1], [0, 0, 0, 0]),
        ([1, 3, 11, 11], [16, 3, 7, 7], [2, 2], [3, 3, 2, 1]),
        ([2, 6, 7, 8], [32, 6, 5, 5], [1, 2], [2, 2, 2, 2]),
        ([2, 16, 1, 1], [32, 16, 3, 3], [1, 1], [1, 1, 1, 1]),
    ];

    /// Input channels in whole vectors (the input gradient's tiles span them): the same
    /// variety, with output channels that are no multiple of anything (the inner length).
    pub const INPUT_GRAD_CASES: [Case; 8] = [
        ([3, 48, 9, 7], [13, 48, 3, 3], [1, 1], [1, 1, 1, 1]),
        ([2, 16, 10, 9], [32, 16, 3, 3], [2, 2], [1, 0, 0, 1]),
        ([5, 32, 4, 4], [64, 32, 3, 3], [1, 1], [1, 1, 1, 1]),
        ([2, 32, 6, 6], [16, 32, 1, 1], [2, 2], [0, 0, 0, 0]),
        ([2, 16, 7, 5], [16, 16, 1, 1], [2, 3], [0, 0, 0, 0]),
        ([1, 16, 11, 11], [8, 16, 7, 7], [2, 2], [3, 3, 2, 1]),
        ([2, 64, 7, 8], [24, 64, 5, 5], [1, 2], [2, 2, 2, 2]),
        ([2, 16, 1, 1], [32, 16, 3, 3], [1, 1], [1, 1, 1, 1]),
    ];

    /// Asserts that the AVX-512 sums `got` equal the portable ones `want` up to rounding (FMA
    /// contraction and the order of the last additions).
    pub fn assert_same(what: &str, got: &[f32], want: &[f32]) {
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((a - b).abs() <= 1e-5 * scale, "{what} [{i}]: {a} vs {b}");
        }
    }

    /// The geometry of `case` and its description for failure messages.
    pub fn geometry((xs, ws, stride, pads): Case) -> (ConvGeometry, String) {
        let [pt, pb, pl, pr] = pads;
        let g = ConvGeometry::new(xs, ws, stride, [(pt, pb), (pl, pr)]).unwrap();
        (
            g,
            format!("{xs:?} * {ws:?}, stride {stride:?}, pads {pads:?}"),
        )
    }
}
