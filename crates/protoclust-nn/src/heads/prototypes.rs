//! Prototype layer: a linear map whose rows are the learnable cluster centres (bias-free as
//! the papers; lightly's `SwaVPrototypes` adds a bias).

use crate::init::Init;
use crate::ops::l2_normalize;
use burn::module::{Module, Param};
use burn::tensor::Tensor;

/// K prototypes of dimension D, stored K × D as PyTorch's `nn.Linear(D, K, bias=False)`.
#[derive(Module, Debug)]
pub struct Prototypes {
    /// K × D prototype matrix.
    pub weight: Param<Tensor<2>>,
    /// Per-prototype score offset (K), when the layer has one.
    pub bias: Option<Param<Tensor<1>>>,
}

impl Prototypes {
    /// K prototypes of dimension D with PyTorch's default Linear init.
    pub fn new(k: usize, d: usize, init: &mut Init) -> Self {
        Self {
            weight: init.linear_default([k, d], d),
            bias: None,
        }
    }

    /// K prototypes of dimension D and a bias, as PyTorch's `nn.Linear(D, K)` initialises them.
    pub fn with_bias(k: usize, d: usize, init: &mut Init) -> Self {
        let weight = init.linear_default([k, d], d);
        Self {
            weight,
            bias: Some(init.linear_default([k], d)),
        }
    }

    /// Number of prototypes.
    pub fn len(&self) -> usize {
        self.weight.dims()[0]
    }

    /// True when there are no prototypes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Scores z · Wᵀ (+ b) of N × D inputs (N × K).
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        use crate::precision::{to_compute, to_f32};
        let s = to_f32(to_compute(z).matmul(to_compute(self.weight.val()).transpose()));
        self.plus_bias(s, false)
    }

    /// Scores of N × D inputs in f32 with no gradient to the layer (SwAV's queue).
    pub fn score_detached(&self, z: Tensor<2>) -> Tensor<2> {
        let s = z.matmul(self.weight.val().detach().transpose());
        self.plus_bias(s, true)
    }

    /// N × K scores with the bias (detached or not) added to every row, when there is one.
    fn plus_bias(&self, scores: Tensor<2>, detach: bool) -> Tensor<2> {
        match &self.bias {
            Some(b) if detach => scores + b.val().detach().unsqueeze_dim(0),
            Some(b) => scores + b.val().unsqueeze_dim(0),
            None => scores,
        }
    }

    /// The same parameter (its id, so its optimiser state carries over) holding `values`
    /// (K × D, any device form), as a fresh leaf: DeepCluster-v2's centroids copied in.
    pub fn replaced(self, values: Tensor<2>) -> Self {
        let (id, w, mapper) = self.weight.consume();
        let grad = w.is_require_grad();
        let mut n = Tensor::from_data(values.into_data(), &w.device());
        if grad {
            n = n.require_grad();
        }
        Self {
            weight: Param::from_mapped_value(id, n, mapper),
            bias: self.bias,
        }
    }

    /// Re-normalises every prototype to unit length outside autodiff, keeping the parameter's id
    /// (so its optimiser state carries over), as SwAV does before every step.
    pub fn normalized(self) -> Self {
        let (id, w, mapper) = self.weight.consume();
        let grad = w.is_require_grad();
        // Normalise the plain (non-autodiff) values and re-wrap them as a fresh leaf.
        let mut n = Tensor::from_inner(l2_normalize(w.inner(), 1));
        if grad {
            n = n.require_grad();
        }
        Self {
            weight: Param::from_mapped_value(id, n, mapper),
            bias: self.bias,
        }
    }
}
