//! ODC's neck (OpenSelfSup `NonLinearNeckV0`): Linear → BatchNorm (no affine) → ReLU →
//! Dropout → Linear → ReLU.

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Linear};
use burn::tensor::{Tensor, TensorData};
use protoclust_nn::init::Init;
use protoclust_nn::layers::{BatchNormExt, LinearExt};
use protoclust_nn::running::SyncRunningStats;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Neck sizes and regularisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NeckConfig {
    /// Hidden width (512 in the paper).
    pub hidden: usize,
    /// Output width = memory feature dimension (256 in the paper).
    pub out_dim: usize,
    /// BatchNorm momentum in PyTorch's convention (0.001 in the paper).
    pub bn_momentum: f64,
    /// Dropout probability (0.5 in the paper).
    pub dropout: f64,
}

impl Default for NeckConfig {
    fn default() -> Self {
        Self {
            hidden: 512,
            out_dim: 256,
            bn_momentum: 0.001,
            dropout: 0.5,
        }
    }
}

/// The dropout mask of one training step: the stream `seed`, from this process's first row
/// `first_row` in the global batch on, so that each rank's rows get the mask one process
/// would draw for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropoutDraw {
    /// Seed of the step's mask stream.
    pub seed: u64,
    /// This process's first row in the global batch (0 in one process).
    pub first_row: usize,
}

impl DropoutDraw {
    /// The `rows` × `width` mask (kept entries 1/keep, dropped 0) of this process's rows.
    pub fn mask(&self, rows: usize, width: usize, keep: f64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
        // Two 32-bit words per f64 draw, `width` draws per row.
        rng.set_word_pos(2 * (width * self.first_row) as u128);
        (0..rows * width)
            .map(|_| {
                if rng.random::<f64>() < keep {
                    (1.0 / keep) as f32
                } else {
                    0.0
                }
            })
            .collect()
    }
}
/// The neck's layers.
#[derive(Module, Debug)]
pub struct Neck {
    /// First linear layer.
    pub fc0: Linear,
    /// BatchNorm without learnable affine parameters (γ = 1, β = 0, frozen).
    pub bn0: BatchNorm,
    /// Second linear layer.
    pub fc1: Linear,
    /// Dropout probability.
    pub dropout: f64,
}

/// A linear layer with N(0, std²) weights and zero bias.
pub fn normal_linear(d_in: usize, d_out: usize, std: f64, init: &mut Init) -> Linear {
    Linear {
        weight: init.normal([d_in, d_out], std),
        bias: Some(burn::module::Param::from_tensor(Tensor::zeros(
            [d_out],
            init.device(),
        ))),
    }
}

impl Neck {
    /// Builds the neck on `in_dim` inputs (Linear weights N(0, 0.01²) as OpenSelfSup).
    pub fn new(config: &NeckConfig, in_dim: usize, init: &mut Init) -> Self {
        let mut bn0 = BatchNormConfig::new(config.hidden)
            .with_momentum(config.bn_momentum)
            .init(init.device());
        bn0.gamma = bn0.gamma.set_require_grad(false);
        bn0.beta = bn0.beta.set_require_grad(false);
        Self {
            fc0: normal_linear(in_dim, config.hidden, 0.01, init),
            bn0,
            fc1: normal_linear(config.hidden, config.out_dim, 0.01, init),
            dropout: config.dropout,
        }
    }

    /// Forward pass; `dropout` draws the dropout mask (None: inference, no dropout).
    pub fn forward(&self, x: Tensor<2>, dropout: Option<DropoutDraw>) -> Tensor<2> {
        let h = protoclust_nn::kernels::relu(self.bn0.run(self.fc0.run(x)));
        let h = match dropout {
            Some(draw) if self.dropout > 0.0 => {
                let [n, d] = h.dims();
                let mask = draw.mask(n, d, 1.0 - self.dropout);
                let device = h.device();
                h * Tensor::<2>::from_data(TensorData::new(mask, [n, d]), &device)
            }
            _ => h,
        };
        protoclust_nn::kernels::relu(self.fc1.run(h))
    }
}

impl SyncRunningStats for Neck {
    fn sync_running_stats(&self) {
        self.bn0.sync_running_stats();
    }
}

#[cfg(test)]
mod tests {
    use super::DropoutDraw;

    #[test]
    fn a_rank_draws_the_one_process_mask_of_its_rows() {
        let (seed, width) = (42, 7);
        let whole = DropoutDraw { seed, first_row: 0 }.mask(10, width, 0.5);
        for (first, rows) in [(0, 4), (3, 5), (9, 1)] {
            let part = DropoutDraw {
                seed,
                first_row: first,
            }
            .mask(rows, width, 0.5);
            assert_eq!(part[..], whole[first * width..(first + rows) * width]);
        }
        let kept = whole.iter().filter(|&&v| v > 0.0).count();
        assert!((20..=50).contains(&kept), "{kept} of 70 kept at p = 0.5");
        assert!(whole.iter().all(|&v| v == 0.0 || v == 2.0));
    }
}
