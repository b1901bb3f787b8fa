//! MLP projector: Linear-BN-ReLU blocks ending in a plain Linear.

use crate::init::Init;
use crate::kernels::relu;
use crate::layers::{BatchNormExt, LinearExt};
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Shape of an MLP head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlpConfig {
    /// Hidden widths (empty: a single Linear from input to output).
    pub hidden: Vec<usize>,
    /// Output width.
    pub out_dim: usize,
    /// BatchNorm after each hidden Linear.
    pub batch_norm: bool,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: vec![2048],
            out_dim: 128,
            batch_norm: true,
        }
    }
}

/// A multi-layer perceptron head.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Linear layers, input to output.
    pub linears: Vec<Linear>,
    /// BatchNorm after each hidden Linear (empty when disabled).
    pub norms: Vec<BatchNorm>,
}

impl MlpConfig {
    /// Builds the head for `in_dim` inputs.
    pub fn init(&self, in_dim: usize, init: &mut Init) -> Mlp {
        let mut dims = vec![in_dim];
        dims.extend(&self.hidden);
        dims.push(self.out_dim);
        let mut linears = Vec::new();
        let mut norms = Vec::new();
        for (i, w) in dims.windows(2).enumerate() {
            let mut l = LinearConfig::new(w[0], w[1]).init(init.device());
            // burn stores Linear weights as in × out.
            l.weight = init.linear_default([w[0], w[1]], w[0]);
            l.bias = Some(init.linear_default([w[1]], w[0]));
            linears.push(l);
            if self.batch_norm && i + 2 < dims.len() {
                norms.push(BatchNormConfig::new(w[1]).init(init.device()));
            }
        }
        Mlp { linears, norms }
    }
}

impl Mlp {
    /// Applies the head to N × in_dim inputs.
    pub fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let last = self.linears.len() - 1;
        for (i, l) in self.linears.iter().enumerate() {
            x = l.run(x);
            if i < last {
                if let Some(n) = self.norms.get(i) {
                    x = n.run(x);
                }
                x = relu(x);
            }
        }
        x
    }
}

impl crate::running::SyncRunningStats for Mlp {
    fn sync_running_stats(&self) {
        self.norms.sync_running_stats();
    }
}
