//! DeepCluster-v2's loss: per head, cross-entropy of every crop's scores / T against its
//! image's cluster (ignored where the image has none), averaged over the heads.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

/// The loss of one step. `scores[h]` is (crops · B) × K_h, crop-major; `targets[h]` holds the
/// B images' clusters ([`super::IGNORE`] to skip). Each head's term is the mean over its
/// non-ignored rows; a batch with no target gives 0 and zero gradients (the official code's
/// NaN loss with zero gradients, without the NaN).
pub fn deepclusterv2_loss(
    scores: &[Tensor<2>],
    targets: &[Vec<i64>],
    temperature: f64,
) -> Tensor<1> {
    let device = scores[0].device();
    let mut total: Option<Tensor<1>> = None;
    for (s, t) in scores.iter().zip(targets) {
        let [rows, _] = s.dims();
        let b = t.len().max(1);
        let (idx, mask): (Vec<i64>, Vec<f32>) = (0..rows)
            .map(|r| {
                let y = t[r % b];
                if y < 0 {
                    (0, 0.0)
                } else {
                    (y, 1.0)
                }
            })
            .unzip();
        let count = mask.iter().sum::<f32>().max(1.0);
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [rows]), &device);
        let mask = Tensor::<1>::from_data(TensorData::new(mask, [rows]), &device);
        let picked = log_softmax(s.clone() / temperature, 1)
            .gather(1, idx.unsqueeze_dim(1))
            .reshape([rows]);
        let term = (picked * mask).sum().neg() / count as f64;
        total = Some(match total {
            Some(t) => t + term,
            None => term,
        });
    }
    total.expect("at least one head") / scores.len() as f64
}
