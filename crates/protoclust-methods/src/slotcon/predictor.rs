//! SlotCon's slot predictor, the official `DINOHead`: Linear → BN → GELU → Linear → BN → GELU
//! → Linear (BatchNorm over the kept slots of the batch).

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use protoclust_nn::init::Init;
use protoclust_nn::layers::{BatchNormExt, LinearExt};
use protoclust_nn::ops::gelu;
use protoclust_nn::running::SyncRunningStats;
use serde::{Deserialize, Serialize};

/// Widths of the predictor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DinoHeadConfig {
    /// Hidden width (4096 in the paper).
    pub hidden: usize,
}

impl Default for DinoHeadConfig {
    fn default() -> Self {
        Self { hidden: 4096 }
    }
}

/// Three Linear layers with BatchNorm and exact GELU between them.
#[derive(Module, Debug)]
pub struct DinoHead {
    /// `mlp.0`.
    pub fc0: Linear,
    /// `mlp.1`.
    pub bn0: BatchNorm,
    /// `mlp.3`.
    pub fc1: Linear,
    /// `mlp.4`.
    pub bn1: BatchNorm,
    /// `mlp.6`.
    pub fc2: Linear,
}

fn linear(d_in: usize, d_out: usize, init: &mut Init) -> Linear {
    let mut l = LinearConfig::new(d_in, d_out).init(init.device());
    l.weight = init.linear_default([d_in, d_out], d_in);
    l.bias = Some(init.linear_default([d_out], d_in));
    l
}

impl DinoHead {
    /// A `dim → hidden → hidden → dim` head.
    pub fn new(dim: usize, config: &DinoHeadConfig, init: &mut Init) -> Self {
        Self {
            fc0: linear(dim, config.hidden, init),
            bn0: BatchNormConfig::new(config.hidden).init(init.device()),
            fc1: linear(config.hidden, config.hidden, init),
            bn1: BatchNormConfig::new(config.hidden).init(init.device()),
            fc2: linear(config.hidden, dim, init),
        }
    }

    /// Applies the head to N × dim rows.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = gelu(self.bn0.run(self.fc0.run(x)));
        let x = gelu(self.bn1.run(self.fc1.run(x)));
        self.fc2.run(x)
    }
}

impl SyncRunningStats for DinoHead {
    fn sync_running_stats(&self) {
        self.bn0.sync_running_stats();
        self.bn1.sync_running_stats();
    }
}
