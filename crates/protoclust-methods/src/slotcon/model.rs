//! SlotCon's networks: student and teacher branches (backbone → dense projector → prototypes)
//! and the slot predictor.

use super::config::{DenseProjectorConfig, SlotConConfig};
use super::predictor::DinoHead;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::Tensor;
use protoclust_nn::backbone::{BackboneError, ResNet};
use protoclust_nn::init::Init;
use protoclust_nn::layers::{BatchNormExt, Conv2dExt};
use protoclust_nn::ops::gelu;
use protoclust_nn::running::SyncRunningStats;

/// 1 × 1 convolutions with BatchNorm and GELU between them (the official `DINOHead2d`).
#[derive(Module, Debug)]
pub struct DenseProjector {
    /// Convolutions, input to output.
    pub convs: Vec<Conv2d>,
    /// BatchNorm after each hidden convolution.
    pub norms: Vec<BatchNorm>,
}

impl DenseProjector {
    /// `in_dim → hidden → hidden → out_dim`, weights N(0, 0.02²), zero biases.
    pub fn new(in_dim: usize, c: &DenseProjectorConfig, init: &mut Init) -> Self {
        let dims = [in_dim, c.hidden, c.hidden, c.out_dim];
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        for (i, w) in dims.windows(2).enumerate() {
            let mut conv = Conv2dConfig::new([w[0], w[1]], [1, 1]).init(init.device());
            conv.weight = init.normal([w[1], w[0], 1, 1], 0.02);
            conv.bias = Some(Param::from_tensor(Tensor::zeros([w[1]], init.device())));
            convs.push(conv);
            if i < 2 {
                norms.push(BatchNormConfig::new(w[1]).init(init.device()));
            }
        }
        Self { convs, norms }
    }

    /// B × C × H × W → B × D × H × W.
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for (i, conv) in self.convs.iter().enumerate() {
            x = conv.run(x);
            if let Some(n) = self.norms.get(i) {
                x = gelu(n.run(x));
            }
        }
        // Float32 out, whatever the precision scope computed the convolutions in.
        protoclust_nn::precision::to_f32(x)
    }
}

/// One branch: backbone, dense projector and prototypes.
#[derive(Module, Debug)]
pub struct SlotConBranch {
    /// Feature extractor (last map, no pooling).
    pub backbone: ResNet,
    /// Dense projector.
    pub projector: DenseProjector,
    /// K × D prototypes (`nn.Embedding`, N(0, 1)).
    pub prototypes: Param<Tensor<2>>,
}

impl SlotConBranch {
    /// Builds a branch from `init`.
    pub fn new(c: &SlotConConfig, init: &mut Init) -> Result<Self, BackboneError> {
        let backbone = c.backbone.init(init)?;
        let projector = DenseProjector::new(c.backbone.out_dim(), &c.projector, init);
        let prototypes = init.normal([c.prototypes, c.projector.out_dim], 1.0);
        Ok(Self {
            backbone,
            projector,
            prototypes,
        })
    }

    /// Dense projections of a batch of views.
    pub fn project(&self, x: Tensor<4>) -> Tensor<4> {
        self.projector.forward(self.backbone.forward(x).map)
    }
}

/// Student, teacher (EMA of the student, no gradients) and the slot predictor.
#[derive(Module, Debug)]
pub struct SlotConModel {
    /// Trained branch.
    pub student: SlotConBranch,
    /// EMA branch (the evaluated backbone).
    pub teacher: SlotConBranch,
    /// Predictor on the student's slots.
    pub predictor: DinoHead,
}

impl SlotConModel {
    /// Student and teacher start identical (same seed, separate parameters).
    pub fn new(
        c: &SlotConConfig,
        seed: u64,
        device: &burn::tensor::Device,
    ) -> Result<Self, BackboneError> {
        let student = SlotConBranch::new(c, &mut Init::new(seed, device))?;
        let teacher = SlotConBranch::new(c, &mut Init::new(seed, device))?.no_grad();
        let mut init = Init::new(protoclust_data_seed(seed), device);
        let predictor = DinoHead::new(c.projector.out_dim, &c.predictor, &mut init);
        Ok(Self {
            student,
            teacher,
            predictor,
        })
    }
}

/// A seed for the predictor independent of the branches' draws.
fn protoclust_data_seed(seed: u64) -> u64 {
    protoclust_data::mix_seed(&[seed, 0x510C])
}

impl SyncRunningStats for SlotConModel {
    fn sync_running_stats(&self) {
        for b in [&self.student, &self.teacher] {
            b.backbone.sync_running_stats();
            b.projector.norms.sync_running_stats();
        }
        self.predictor.sync_running_stats();
    }
}
