//! Shapes of one 2-d convolution (groups 1, dilation 1) and how its batch is cut into chunks.

/// Shapes, stride and padding of a convolution over an N × C × H × W batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size N.
    pub batch: usize,
    /// Input channels C.
    pub in_c: usize,
    /// Input height H.
    pub in_h: usize,
    /// Input width W.
    pub in_w: usize,
    /// Output channels O.
    pub out_c: usize,
    /// Kernel height.
    pub k_h: usize,
    /// Kernel width.
    pub k_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Padding above.
    pub pad_t: usize,
    /// Padding below.
    pub pad_b: usize,
    /// Padding left.
    pub pad_l: usize,
    /// Padding right.
    pub pad_r: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

/// Columns (images × output pixels) a chunk's matrix product should have at least: below
/// this the packing of the weight matrix costs as much as the product.
pub const MIN_CHUNK_COLUMNS: usize = 512;

impl ConvGeometry {
    /// The geometry of `x` (N, C, H, W) convolved with `w` (O, C, KH, KW); `None` when the
    /// channels disagree, a stride is zero or the padded input is smaller than the kernel.
    pub fn new(
        x: [usize; 4],
        w: [usize; 4],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
    ) -> Option<Self> {
        let [batch, in_c, in_h, in_w] = x;
        let [out_c, wc, k_h, k_w] = w;
        let [(pad_t, pad_b), (pad_l, pad_r)] = padding;
        if wc != in_c || stride[0] == 0 || stride[1] == 0 || k_h == 0 || k_w == 0 {
            return None;
        }
        let (ph, pw) = (in_h + pad_t + pad_b, in_w + pad_l + pad_r);
        if ph < k_h || pw < k_w {
            return None;
        }
        Some(Self {
            batch,
            in_c,
            in_h,
            in_w,
            out_c,
            k_h,
            k_w,
            stride_h: stride[0],
            stride_w: stride[1],
            pad_t,
            pad_b,
            pad_l,
            pad_r,
            out_h: (ph - k_h) / stride[0] + 1,
            out_w: (pw - k_w) / stride[1] + 1,
        })
    }

    /// Rows of the patch matrix: C · KH · KW.
    pub fn patch_len(&self) -> usize {
        self.in_c * self.k_h * self.k_w
    }

    /// Output pixels per image.
    pub fn out_pixels(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Input elements per image.
    pub fn in_len(&self) -> usize {
        self.in_c * self.in_h * self.in_w
    }

    /// Output elements per image.
    pub fn out_len(&self) -> usize {
        self.out_c * self.out_pixels()
    }

    /// A 1 × 1, stride-1, unpadded convolution: the image itself is its patch matrix.
    pub fn is_pointwise(&self) -> bool {
        self.k_h == 1
            && self.k_w == 1
            && self.stride_h == 1
            && self.stride_w == 1
            && self.pad_t + self.pad_b + self.pad_l + self.pad_r == 0
    }

    /// The input gradient of a stride-1 convolution as a forward convolution of its output
    /// gradient (O channels) with the [`flip_kernel`] (C outputs), padding k − 1 − p; `None`
    /// for other strides or a padding as large as the kernel.
    pub fn flipped(&self) -> Option<ConvGeometry> {
        let fits = |p: usize, k: usize| (p < k).then(|| k - 1 - p);
        if self.stride_h != 1 || self.stride_w != 1 {
            return None;
        }
        let pads = [
            (fits(self.pad_t, self.k_h)?, fits(self.pad_b, self.k_h)?),
            (fits(self.pad_l, self.k_w)?, fits(self.pad_r, self.k_w)?),
        ];
        ConvGeometry::new(
            [self.batch, self.out_c, self.out_h, self.out_w],
            [self.in_c, self.out_c, self.k_h, self.k_w],
            [1, 1],
            pads,
        )
    }

    /// Images per chunk: enough columns for an efficient product, but at least `threads`
    /// chunks when the batch allows.
    pub fn images_per_chunk(&self, threads: usize) -> usize {
        let want = MIN_CHUNK_COLUMNS.div_ceil(self.out_pixels().max(1));
        let spread = self.batch.div_ceil(threads.max(1));
        want.min(spread).max(1)
    }
}

/// `w'[c][o] = w[o][c]` rotated by 180°: the kernel of the input gradient of `g`
/// ([`ConvGeometry::flipped`]).
pub fn flip_kernel(w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (o, c, taps) = (g.out_c, g.in_c, g.k_h * g.k_w);
    let mut out = vec![0.0; o * c * taps];
    for oi in 0..o {
        for ci in 0..c {
            let src = &w[(oi * c + ci) * taps..][..taps];
            let dst = &mut out[(ci * o + oi) * taps..][..taps];
            for (k, v) in src.iter().enumerate() {
                dst[taps - 1 - k] = *v;
            }
        }
    }
    out
}
