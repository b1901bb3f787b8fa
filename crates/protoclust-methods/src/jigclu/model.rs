//! JigClu's network: backbone (last map) → decoupling → clustering MLP and location classifier.

use super::config::JigCluConfig;
use super::decouple::decoupled_rows;
use super::loss::{jigsaw_labels, sup_clu_loss};
use crate::pseudo::weighted_cross_entropy;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::Tensor;
use protoclust_nn::backbone::{BackboneError, ResNet};
use protoclust_nn::heads::{Mlp, MlpConfig};
use protoclust_nn::init::Init;
use protoclust_nn::layers::LinearExt;
use protoclust_nn::ops::l2_normalize;
use protoclust_nn::running::SyncRunningStats;

/// The two heads on the decoupled patch features (`fc_clu`, `fc_loc`).
#[derive(Module, Debug)]
pub struct JigCluHeads {
    /// Clustering MLP: Linear(C, C) → ReLU → Linear(C, dim).
    pub clu: Mlp,
    /// Location classifier: Linear(C, m²).
    pub loc: Linear,
}

/// Backbone and heads.
#[derive(Module, Debug)]
pub struct JigCluModel {
    /// Feature extractor (its last map feeds the decoupling module).
    pub backbone: ResNet,
    /// Clustering and location heads.
    pub heads: JigCluHeads,
}

/// Everything one JigClu loss evaluation produced.
pub struct JigCluLosses {
    /// α·L_clu + β·L_loc.
    pub loss: Tensor<1>,
    /// Supervised-contrastive clustering loss (before α).
    pub loss_clu: Tensor<1>,
    /// Location cross-entropy (before β).
    pub loss_loc: Tensor<1>,
    /// Patch features, (m²·n) × C in decoupled row order.
    pub rows: Tensor<2>,
    /// Normalised clustering embeddings, (m²·n) × dim.
    pub q_clu: Tensor<2>,
    /// Location logits, (m²·n) × m².
    pub q_loc: Tensor<2>,
    /// Source image of every row.
    pub label_clu: Vec<usize>,
    /// Source position (crop index) of every row.
    pub label_loc: Vec<usize>,
    /// Location accuracy in percent.
    pub loc_acc: f64,
}

impl JigCluHeads {
    /// Heads for C-dimensional patch features, PyTorch's default Linear init.
    pub fn new(channels: usize, dim: usize, positions: usize, init: &mut Init) -> Self {
        let clu = MlpConfig {
            hidden: vec![channels],
            out_dim: dim,
            batch_norm: false,
        }
        .init(channels, init);
        let mut loc = LinearConfig::new(channels, positions).init(init.device());
        loc.weight = init.linear_default([channels, positions], channels);
        loc.bias = Some(init.linear_default([positions], channels));
        Self { clu, loc }
    }

    /// Both losses on the n × C × m × m cell features of montages built with `permute`.
    pub fn losses(&self, cells: Tensor<4>, permute: &[usize], cfg: &JigCluConfig) -> JigCluLosses {
        let [n, _, m, _] = cells.dims();
        let rows = decoupled_rows(cells);
        let (label_clu, label_loc) = jigsaw_labels(permute, n);
        let q_clu = l2_normalize(self.clu.forward(rows.clone()), 1);
        let loss_clu = sup_clu_loss(
            q_clu.clone(),
            &label_clu,
            cfg.temperature,
            cfg.base_temperature,
        );
        let q_loc = self.loc.run(rows.clone());
        debug_assert_eq!(q_loc.dims()[1], m * m);
        let loss_loc = weighted_cross_entropy(q_loc.clone(), &label_loc, None);
        let loc_acc = crate::pseudo::top1_accuracy(q_loc.clone(), &label_loc);
        let loss = loss_clu.clone().mul_scalar(cfg.clu_weight)
            + loss_loc.clone().mul_scalar(cfg.loc_weight);
        JigCluLosses {
            loss,
            loss_clu,
            loss_loc,
            rows,
            q_clu,
            q_loc,
            label_clu,
            label_loc,
            loc_acc,
        }
    }
}

impl JigCluModel {
    /// Builds the network from `init`.
    pub fn new(config: &JigCluConfig, init: &mut Init) -> Result<Self, BackboneError> {
        let backbone = config.backbone.init(init)?;
        let c = config.backbone.out_dim();
        let heads = JigCluHeads::new(c, config.dim, config.grid() * config.grid(), init);
        Ok(Self { backbone, heads })
    }
}

impl SyncRunningStats for JigCluModel {
    fn sync_running_stats(&self) {
        self.backbone.sync_running_stats();
    }
}
