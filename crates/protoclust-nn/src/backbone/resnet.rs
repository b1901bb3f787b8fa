//! ResNet-18/34/50 with the ImageNet stem or the small-image stem (3×3 stride 1, no max-pool).
//!
//! Parameter paths follow torchvision (`layer1.0.conv1.weight`, ...) except for the names burn
//! gives BatchNorm (`gamma`/`beta`) and the downsample pair (`downsample.conv`/`downsample.bn`);
//! the exporter maps those.

use crate::init::Init;
use crate::kernels::{add_relu, relu};
use crate::layers::{BatchNormExt, Conv2dExt};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::module::{adaptive_avg_pool2d, max_pool2d};
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Architecture of a ResNet backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResNetConfig {
    /// 18, 34 or 50.
    pub depth: usize,
    /// Width of the first stage (64 in the papers; smaller for CPU-sized runs).
    pub width: usize,
    /// Small-image stem: 3×3 stride-1 conv and no max-pool (CIFAR, STL).
    pub small_stem: bool,
    /// The stem convolution's padding when not the usual 3 (7×7) or 1 (3×3): solo-learn's
    /// CIFAR ResNets pad their 3×3 stem by 2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stem_padding: Option<usize>,
    /// Start each residual branch's last BatchNorm at zero (`zero_init_residual`).
    pub zero_init_residual: bool,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self {
            depth: 18,
            width: 64,
            small_stem: false,
            stem_padding: None,
            zero_init_residual: false,
        }
    }
}

/// Pooled vector and last feature map of a forward pass.
#[derive(Debug, Clone)]
pub struct ResNetOutput {
    /// Global-average-pooled features, N × C.
    pub pooled: Tensor<2>,
    /// Last stage's feature map, N × C × H × W.
    pub map: Tensor<4>,
}

/// Conv + BatchNorm pair of a downsampling shortcut.
#[derive(Module, Debug)]
pub struct Downsample {
    /// 1×1 strided convolution.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

/// One residual block: BasicBlock when `conv3` is absent, Bottleneck otherwise.
#[derive(Module, Debug)]
pub struct Block {
    /// First convolution.
    pub conv1: Conv2d,
    /// First BatchNorm.
    pub bn1: BatchNorm,
    /// Second convolution.
    pub conv2: Conv2d,
    /// Second BatchNorm.
    pub bn2: BatchNorm,
    /// Third convolution (Bottleneck only).
    pub conv3: Option<Conv2d>,
    /// Third BatchNorm (Bottleneck only).
    pub bn3: Option<BatchNorm>,
    /// Shortcut projection when shape changes.
    pub downsample: Option<Downsample>,
}

/// A ResNet trunk without its classifier.
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem convolution.
    pub conv1: Conv2d,
    /// Stem BatchNorm.
    pub bn1: BatchNorm,
    /// Stage 1 blocks.
    pub layer1: Vec<Block>,
    /// Stage 2 blocks.
    pub layer2: Vec<Block>,
    /// Stage 3 blocks.
    pub layer3: Vec<Block>,
    /// Stage 4 blocks.
    pub layer4: Vec<Block>,
    /// Whether the stem max-pools (ImageNet stem).
    pub maxpool: bool,
}

/// Configuration errors of a backbone.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BackboneError {
    /// The depth is not one of 18, 34, 50.
    #[error("backbone.depth = {0}: expected 18, 34 or 50")]
    Depth(usize),
    /// The width is out of range.
    #[error("backbone.width = {0}: expected 1..=512")]
    Width(usize),
    /// The stem padding is larger than the stem kernel.
    #[error("backbone.stem_padding = {0}: expected at most {1} for this stem")]
    StemPadding(usize, usize),
}

fn conv(init: &mut Init, cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Conv2d {
    let mut c = Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(init.device());
    c.weight = init.kaiming_conv([cout, cin, k, k]);
    c
}

fn bn(init: &Init, c: usize, zero: bool) -> BatchNorm {
    let mut b = BatchNormConfig::new(c).init(init.device());
    if zero {
        b.gamma = burn::module::Param::from_tensor(Tensor::zeros([c], init.device()));
    }
    b
}

impl ResNetConfig {
    /// Checks depth and width.
    pub fn validate(&self) -> Result<(), BackboneError> {
        if ![18, 34, 50].contains(&self.depth) {
            return Err(BackboneError::Depth(self.depth));
        }
        if self.width == 0 || self.width > 512 {
            return Err(BackboneError::Width(self.width));
        }
        let (kernel, _, _) = self.stem();
        match self.stem_padding {
            Some(p) if p > kernel => Err(BackboneError::StemPadding(p, kernel)),
            _ => Ok(()),
        }
    }

    /// The stem convolution's kernel, stride and padding.
    pub fn stem(&self) -> (usize, usize, usize) {
        let (k, s, p) = if self.small_stem {
            (3, 1, 1)
        } else {
            (7, 2, 3)
        };
        (k, s, self.stem_padding.unwrap_or(p))
    }

    fn layout(&self) -> ([usize; 4], bool) {
        match self.depth {
            18 => ([2, 2, 2, 2], false),
            34 => ([3, 4, 6, 3], false),
            _ => ([3, 4, 6, 3], true),
        }
    }

    /// Number of channels of the pooled output (512 or 2048 at width 64).
    pub fn out_dim(&self) -> usize {
        let (_, bottleneck) = self.layout();
        self.width * 8 * if bottleneck { 4 } else { 1 }
    }

    /// Builds the network with parameters drawn from `init`.
    pub fn init(&self, init: &mut Init) -> Result<ResNet, BackboneError> {
        self.validate()?;
        let (blocks, bottleneck) = self.layout();
        let expansion = if bottleneck { 4 } else { 1 };
        let w = self.width;
        let (k, s, p) = self.stem();
        let (conv1, maxpool) = (conv(init, 3, w, k, s, p), !self.small_stem);
        let bn1 = bn(init, w, false);
        let mut inplanes = w;
        let mut stages: Vec<Vec<Block>> = Vec::new();
        for (i, &n) in blocks.iter().enumerate() {
            let planes = w << i;
            let stride = if i == 0 { 1 } else { 2 };
            let mut stage = Vec::new();
            for j in 0..n {
                let s = if j == 0 { stride } else { 1 };
                let out = planes * expansion;
                let downsample = (j == 0 && (s != 1 || inplanes != out)).then(|| Downsample {
                    conv: conv(init, inplanes, out, 1, s, 0),
                    bn: bn(init, out, false),
                });
                let z = self.zero_init_residual;
                let block = if bottleneck {
                    Block {
                        conv1: conv(init, inplanes, planes, 1, 1, 0),
                        bn1: bn(init, planes, false),
                        conv2: conv(init, planes, planes, 3, s, 1),
                        bn2: bn(init, planes, false),
                        conv3: Some(conv(init, planes, out, 1, 1, 0)),
                        bn3: Some(bn(init, out, z)),
                        downsample,
                    }
                } else {
                    Block {
                        conv1: conv(init, inplanes, planes, 3, s, 1),
                        bn1: bn(init, planes, false),
                        conv2: conv(init, planes, planes, 3, 1, 1),
                        bn2: bn(init, planes, z),
                        conv3: None,
                        bn3: None,
                        downsample,
                    }
                };
                stage.push(block);
                inplanes = out;
            }
            stages.push(stage);
        }
        let mut it = stages.into_iter();
        Ok(ResNet {
            conv1,
            bn1,
            layer1: it.next().unwrap_or_default(),
            layer2: it.next().unwrap_or_default(),
            layer3: it.next().unwrap_or_default(),
            layer4: it.next().unwrap_or_default(),
            maxpool,
        })
    }
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.bn.run(d.conv.run(x.clone())),
            None => x.clone(),
        };
        let mut out = relu(self.bn1.run(self.conv1.run(x)));
        out = self.bn2.run(self.conv2.run(out));
        if let (Some(c3), Some(b3)) = (&self.conv3, &self.bn3) {
            out = b3.run(c3.run(relu(out)));
        }
        add_relu(out, identity)
    }
}

impl ResNet {
    /// Pooled features of every crop, crop-major: consecutive crops of one size share a
    /// backbone pass (as the official SwAV and DeepCluster-v2 code, so BatchNorm sees them
    /// together).
    pub fn pooled_crops(&self, views: &[Tensor<4>]) -> Tensor<2> {
        let mut pooled = Vec::new();
        let mut start = 0;
        while start < views.len() {
            let size = views[start].dims()[2];
            let end = (start..views.len())
                .find(|&i| views[i].dims()[2] != size)
                .unwrap_or(views.len());
            let x = Tensor::cat(views[start..end].to_vec(), 0);
            pooled.push(self.forward(x).pooled);
            start = end;
        }
        Tensor::cat(pooled, 0)
    }

    /// Number of channels of the pooled output.
    pub fn out_dim(&self) -> usize {
        self.layer4
            .last()
            .map(|b| match &b.bn3 {
                Some(bn) => bn.gamma.dims()[0],
                None => b.bn2.gamma.dims()[0],
            })
            .unwrap_or(0)
    }

    /// Runs the trunk on N × 3 × H × W images.
    pub fn forward(&self, x: Tensor<4>) -> ResNetOutput {
        let mut x = relu(self.bn1.run(self.conv1.run(x)));
        if self.maxpool {
            x = max_pool2d(
                x,
                MaxPoolOptions {
                    kernel_size: [3, 3],
                    stride: [2, 2],
                    padding: [(1, 1), (1, 1)],
                    dilation: [1, 1],
                    ceil_mode: false,
                },
            );
        }
        for stage in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            for block in stage.iter() {
                x = block.forward(x);
            }
        }
        // The trunk's outputs are float32 whatever the precision scope computed them in.
        let x = crate::precision::to_f32(x);
        let [n, c, _, _] = x.dims();
        let pooled = adaptive_avg_pool2d(x.clone(), [1, 1]).reshape([n, c]);
        ResNetOutput { pooled, map: x }
    }
}

/// Builds a ResNet on `device` from `seed`.
pub fn resnet(config: &ResNetConfig, seed: u64, device: &Device) -> Result<ResNet, BackboneError> {
    config.init(&mut Init::new(seed, device))
}

impl crate::running::SyncRunningStats for Downsample {
    fn sync_running_stats(&self) {
        self.bn.sync_running_stats();
    }
}

impl crate::running::SyncRunningStats for Block {
    fn sync_running_stats(&self) {
        self.bn1.sync_running_stats();
        self.bn2.sync_running_stats();
        self.bn3.sync_running_stats();
        self.downsample.sync_running_stats();
    }
}

impl crate::running::SyncRunningStats for ResNet {
    fn sync_running_stats(&self) {
        self.bn1.sync_running_stats();
        for stage in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            stage.sync_running_stats();
        }
    }
}
