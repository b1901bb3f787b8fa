//! A [`ResNet`] folded for inference: every convolution carries its BatchNorm.

use super::activation::Activation;
use super::folded::{FoldError, FoldedConv};
use super::pool::{global_average, max_pool_3x3_s2, max_pool_out};
use crate::backbone::{Block, ResNet};

/// One residual block with folded convolutions.
#[derive(Debug, Clone)]
struct FoldedBlock {
    conv1: FoldedConv,
    conv2: FoldedConv,
    /// Bottleneck's third convolution.
    conv3: Option<FoldedConv>,
    downsample: Option<FoldedConv>,
}

impl FoldedBlock {
    fn new(b: &Block) -> Result<Self, FoldError> {
        Ok(Self {
            conv1: FoldedConv::new(&b.conv1, &b.bn1)?,
            conv2: FoldedConv::new(&b.conv2, &b.bn2)?,
            conv3: match (&b.conv3, &b.bn3) {
                (Some(c), Some(n)) => Some(FoldedConv::new(c, n)?),
                _ => None,
            },
            downsample: match &b.downsample {
                Some(d) => Some(FoldedConv::new(&d.conv, &d.bn)?),
                None => None,
            },
        })
    }

    fn forward(&self, x: Activation) -> Activation {
        let identity = self.downsample.as_ref().map(|d| d.run(&x, None, false));
        let out = self.conv1.run(&x, None, true);
        let identity = identity.unwrap_or(x);
        match &self.conv3 {
            Some(c3) => {
                let out = self.conv2.run(&out, None, true);
                c3.run(&out, Some(&identity), true)
            }
            None => self.conv2.run(&out, Some(&identity), true),
        }
    }
}

/// The eval-mode trunk of a [`ResNet`] with folded BatchNorms, on host buffers.
#[derive(Debug, Clone)]
pub struct InferenceResNet {
    stem: FoldedConv,
    maxpool: bool,
    blocks: Vec<FoldedBlock>,
}

impl InferenceResNet {
    /// Folds `net`'s BatchNorm running statistics into its convolutions (`net` itself is
    /// unchanged; its training flag does not matter).
    pub fn new(net: &ResNet) -> Result<Self, FoldError> {
        let blocks = [&net.layer1, &net.layer2, &net.layer3, &net.layer4]
            .into_iter()
            .flatten()
            .map(FoldedBlock::new)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            stem: FoldedConv::new(&net.conv1, &net.bn1)?,
            maxpool: net.maxpool,
            blocks,
        })
    }

    /// The same network with every convolution's products in bf16 ([`FoldedConv::to_bf16`]).
    pub fn to_bf16(self) -> Self {
        let bf = |c: FoldedConv| c.to_bf16();
        Self {
            stem: bf(self.stem),
            maxpool: self.maxpool,
            blocks: self
                .blocks
                .into_iter()
                .map(|b| FoldedBlock {
                    conv1: bf(b.conv1),
                    conv2: bf(b.conv2),
                    conv3: b.conv3.map(bf),
                    downsample: b.downsample.map(bf),
                })
                .collect(),
        }
    }

    /// Channels of the pooled output.
    pub fn out_dim(&self) -> usize {
        self.blocks
            .last()
            .map(|b| b.conv3.as_ref().unwrap_or(&b.conv2).out_channels())
            .unwrap_or_else(|| self.stem.out_channels())
    }

    /// Bytes one image keeps alive at the widest point of the forward pass (a block's input,
    /// shortcut and branch outputs, and the output being written), for sizing batches.
    pub fn bytes_per_image(&self, h: usize, w: usize) -> usize {
        // The image (as given and its channels-last copy) and the stem's output.
        let image = 2 * 3 * h * w;
        let [mut h, mut w] = self.stem.out_size(h, w);
        let mut peak = image + h * w * self.stem.out_channels();
        if self.maxpool {
            let (ph, pw) = (max_pool_out(h), max_pool_out(w));
            peak = peak.max((h * w + ph * pw) * self.stem.out_channels());
            (h, w) = (ph, pw);
        }
        let mut c = self.stem.out_channels();
        for b in &self.blocks {
            let input = h * w * c;
            let [oh, ow] = b.conv2.out_size(h, w);
            let shortcut = b
                .downsample
                .as_ref()
                .map_or(0, |d| oh * ow * d.out_channels());
            let mid = h * w * b.conv1.out_channels() + oh * ow * b.conv2.out_channels();
            let last = b.conv3.as_ref().unwrap_or(&b.conv2).out_channels();
            peak = peak.max(input + shortcut + mid + oh * ow * last);
            (h, w, c) = (oh, ow, last);
        }
        peak * 4
    }

    /// The last stage's map of N images given as N × 3 × H × W values (row-major).
    pub fn map(&self, x: &[f32], n: usize, h: usize, w: usize) -> Activation {
        let x = Activation::from_nchw(x, n, x.len() / (n * h * w).max(1), h, w);
        let mut x = self.stem.run(&x, None, true);
        if self.maxpool {
            x = max_pool_3x3_s2(&x);
        }
        for b in &self.blocks {
            x = b.forward(x);
        }
        x
    }

    /// Global-average-pooled features, N × C row-major, of N × 3 × H × W images.
    pub fn pooled(&self, x: &[f32], n: usize, h: usize, w: usize) -> Vec<f32> {
        global_average(&self.map(x, n, h, w))
    }
}
