//! Semantic grouping: pixels softly assigned to prototypes, slots as attention-weighted means.

use burn::tensor::activation::softmax;
use burn::tensor::Tensor;
use protoclust_nn::ops::l2_normalize;

/// Slots and score maps of one view.
pub struct Grouping {
    /// B × K × D slots (attention-weighted means of the un-normalised features).
    pub slots: Tensor<3>,
    /// B × K × H × W raw cosines between pixels and prototypes (the "score" maps).
    pub dots: Tensor<4>,
}

/// The official `SemanticGrouping` on dense features `x` (B × D × H × W) and `prototypes`
/// (K × D): attention = softmax over prototypes of cos/`temp`, plus 1e-6 after the softmax.
pub fn semantic_grouping(x: Tensor<4>, prototypes: Tensor<2>, temp: f64) -> Grouping {
    let [b, d, h, w] = x.dims();
    let k = prototypes.dims()[0];
    let xn = l2_normalize(x.clone(), 1)
        .permute([0, 2, 3, 1])
        .reshape([b * h * w, d]);
    let p = l2_normalize(prototypes, 1);
    let dots = xn
        .matmul(p.transpose())
        .reshape([b, h, w, k])
        .permute([0, 3, 1, 2]);
    let attn = (softmax(dots.clone().div_scalar(temp), 1) + 1e-6).reshape([b, k, h * w]);
    let feats = x.reshape([b, d, h * w]).swap_dims(1, 2); // B × HW × D
    let mass = attn.clone().sum_dim(2); // B × K × 1
    let slots = attn.matmul(feats) / mass;
    Grouping { slots, dots }
}
