//! A convolution with its BatchNorm folded in (eval mode), run on channels-last maps with the
//! bias, an optional residual and ReLU applied in the output pass.

use super::activation::Activation;
use super::lower::{patch_pairs, patch_rows, Taps};
use crate::kernels::bf16_gemm::{self, PackedWeights};
use crate::kernels::gemm::{matmul, View};
use crate::kernels::scratch::with_scratch;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use rayon::prelude::*;

/// Convolution weights scaled by BatchNorm's `γ / √(σ² + ε)`, with the folded shift as bias.
#[derive(Debug, Clone)]
pub struct FoldedConv {
    taps: Taps,
    /// Padding below and right of the image.
    pad_end: [usize; 2],
    cin: usize,
    cout: usize,
    weights: Weights,
    /// Cout.
    bias: Vec<f32>,
}

/// The product's right operand, in the float type the products run in.
#[derive(Debug, Clone)]
enum Weights {
    /// kh·kw·Cin × Cout, row-major, rows tap-major (the patch rows' order).
    F32(Vec<f32>),
    /// The same rounded to bf16 and packed (the f32 matrix is not kept).
    Bf16(PackedWeights),
}

/// Why a module pair cannot be folded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    /// Groups, dilation or "same" padding (no backbone here has them).
    #[error("convolution with {0} cannot be folded for inference")]
    Unsupported(&'static str),
}

fn host(t: burn::tensor::Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

impl FoldedConv {
    /// `bn(conv(x))` with BatchNorm's running statistics, as one convolution.
    pub fn new(conv: &Conv2d, bn: &BatchNorm) -> Result<Self, FoldError> {
        if conv.groups != 1 {
            return Err(FoldError::Unsupported("groups"));
        }
        if conv.dilation != [1, 1] {
            return Err(FoldError::Unsupported("dilation"));
        }
        let [top, left, bottom, right] = match conv.padding {
            PaddingConfig2d::Valid => [0; 4],
            PaddingConfig2d::Explicit(t, l, b, r) => [t, l, b, r],
            PaddingConfig2d::Same => return Err(FoldError::Unsupported("\"same\" padding")),
        };
        let [cout, cin, kh, kw] = conv.weight.dims();
        let w = conv
            .weight
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        let gamma = host(bn.gamma.val());
        let beta = host(bn.beta.val());
        let mean = host(bn.running_mean.value());
        let var = host(bn.running_var.value());
        let conv_bias = conv.bias.as_ref().map(|b| host(b.val()));
        let mut weight = vec![0.0f32; kh * kw * cin * cout];
        let mut bias = vec![0.0f32; cout];
        for o in 0..cout {
            let scale = gamma[o] as f64 / (var[o] as f64 + bn.epsilon).sqrt();
            let b0 = conv_bias.as_ref().map_or(0.0, |b| b[o] as f64);
            bias[o] = ((b0 - mean[o] as f64) * scale + beta[o] as f64) as f32;
            for i in 0..cin {
                for dy in 0..kh {
                    for dx in 0..kw {
                        let v = w[((o * cin + i) * kh + dy) * kw + dx];
                        weight[((dy * kw + dx) * cin + i) * cout + o] = (v as f64 * scale) as f32;
                    }
                }
            }
        }
        Ok(Self {
            taps: Taps {
                kernel: [kh, kw],
                stride: conv.stride,
                pad: [top, left],
            },
            pad_end: [bottom, right],
            cin,
            cout,
            weights: Weights::F32(weight),
            bias,
        })
    }

    /// The same convolution with its products in bf16 (inputs and weights rounded to bf16,
    /// f32 accumulation, bias/residual/ReLU in f32), as PyTorch's bf16 autocast runs it.
    /// Callers check [`bf16_gemm::supported`].
    pub fn to_bf16(self) -> Self {
        let (k, n) = (self.patch_len(), self.cout);
        let weights = match self.weights {
            Weights::F32(w) => Weights::Bf16(PackedWeights::new(&w, k, n)),
            packed => packed,
        };
        Self { weights, ..self }
    }

    /// Length of one patch row: kh·kw·Cin, the product's inner dimension.
    fn patch_len(&self) -> usize {
        self.taps.kernel[0] * self.taps.kernel[1] * self.cin
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.cout
    }

    /// Output rows and columns for an `h × w` input.
    pub fn out_size(&self, h: usize, w: usize) -> [usize; 2] {
        let t = &self.taps;
        [
            (h + t.pad[0] + self.pad_end[0] - t.kernel[0]) / t.stride[0] + 1,
            (w + t.pad[1] + self.pad_end[1] - t.kernel[1]) / t.stride[1] + 1,
        ]
    }

    /// `relu?(conv(x)·scale + shift [+ residual])` on channels-last maps.
    ///
    /// # Panics
    /// When `x` has the wrong channel count or `residual` the wrong shape (caller bugs).
    pub fn run(&self, x: &Activation, residual: Option<&Activation>, relu: bool) -> Activation {
        assert_eq!(x.c, self.cin, "FoldedConv::run: input channels");
        let [oh, ow] = self.out_size(x.h, x.w);
        let pixels = x.n * oh * ow;
        if let Some(r) = residual {
            assert_eq!(
                (r.n, r.h, r.w, r.c),
                (x.n, oh, ow, self.cout),
                "residual shape"
            );
        }
        let k = self.patch_len();
        let rows = chunk_rows(pixels, k);
        let mut data = vec![0.0f32; pixels * self.cout];
        data.par_chunks_mut(rows * self.cout)
            .enumerate()
            .for_each(|(i, out)| {
                let first = i * rows;
                let m = out.len() / self.cout;
                let res = residual.map(|r| &r.data[first * self.cout..(first + m) * self.cout]);
                match &self.weights {
                    Weights::F32(w) => {
                        let b = View::rows(w, k, self.cout);
                        if self.taps.is_pointwise() {
                            let a = View::rows(&x.data[first * k..(first + m) * k], m, k);
                            matmul(out, self.cout, false, a, b);
                        } else {
                            with_scratch(m * k, |patches| {
                                patch_rows(x, self.taps, [oh, ow], first, m, patches);
                                matmul(out, self.cout, false, View::rows(patches, m, k), b);
                            });
                        }
                        epilogue(out, &self.bias, res, relu);
                    }
                    Weights::Bf16(w) => {
                        // bias, residual and ReLU in the product's output pass.
                        let epi = bf16_gemm::Epilogue {
                            bias: Some(&self.bias),
                            residual: res,
                            relu,
                            accumulate: false,
                        };
                        if self.taps.is_pointwise() {
                            bf16_gemm::matmul(
                                out,
                                &x.data[first * k..(first + m) * k],
                                m,
                                w.panels(),
                                epi,
                            );
                        } else if self.cin.is_multiple_of(2) {
                            // Lowered straight into bf16 pairs (no f32 patch copy).
                            bf16_gemm::with_pairs(m * k / 2, |pairs| {
                                patch_pairs(x, self.taps, [oh, ow], first, m, pairs);
                                bf16_gemm::matmul_pairs(out, pairs, m, w.panels(), epi);
                            });
                        } else {
                            with_scratch(m * k, |patches| {
                                patch_rows(x, self.taps, [oh, ow], first, m, patches);
                                bf16_gemm::matmul(out, patches, m, w.panels(), epi);
                            });
                        }
                    }
                }
            });
        Activation {
            data,
            n: x.n,
            h: oh,
            w: ow,
            c: self.cout,
        }
    }
}

/// Rows of one parallel product: its patch rows about 256 KB (L2-resident), at least 4 chunks
/// per thread where the layer has that many pixels.
fn chunk_rows(pixels: usize, k: usize) -> usize {
    let by_cache = (256 * 1024 / (4 * k.max(1))).clamp(32, 512);
    let by_threads = pixels.div_ceil(4 * rayon::current_num_threads()).max(16);
    by_cache.min(by_threads).min(pixels.max(1))
}

/// Adds the bias (and the residual) to every row of `out` and applies ReLU.
fn epilogue(out: &mut [f32], bias: &[f32], residual: Option<&[f32]>, relu: bool) {
    let c = bias.len();
    match residual {
        Some(res) => {
            for (row, r) in out.chunks_exact_mut(c).zip(res.chunks_exact(c)) {
                for ((o, &b), &r) in row.iter_mut().zip(bias).zip(r) {
                    let v = *o + b + r;
                    *o = if relu { v.max(0.0) } else { v };
                }
            }
        }
        None => {
            for row in out.chunks_exact_mut(c) {
                for (o, &b) in row.iter_mut().zip(bias) {
                    let v = *o + b;
                    *o = if relu { v.max(0.0) } else { v };
                }
            }
        }
    }
}
