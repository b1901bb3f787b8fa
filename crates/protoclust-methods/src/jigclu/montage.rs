//! One-batch jigsaw montages: the m²·n patches of a batch, permuted, tiled m × m.

use burn::tensor::Tensor;
use protoclust_nn::ops::host::index_tensor;
use protoclust_nn::ops::rows;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A uniformly random permutation of `0..len` drawn from `seed`.
pub fn draw_permutation(len: usize, seed: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..len).collect();
    p.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    p
}

/// Montages of `patches` (m² tensors n × c × h × w, in crop order) under `permute`.
///
/// With P = cat(patches) (patch p = i·n + b: crop i of image b) and P′ = P[permute], montage
/// j has P′[(r·m + c)·n + j] in cell (row r, column c), as the official `_batch_gather_ddp`.
pub fn montage(patches: &[Tensor<4>], permute: &[usize], grid: usize) -> Tensor<4> {
    let n = patches[0].dims()[0];
    let device = patches[0].device();
    let all = Tensor::cat(patches.to_vec(), 0);
    let shuffled = all.select(0, index_tensor(permute, &device));
    let band = |k: usize| rows(shuffled.clone(), k * n..(k + 1) * n);
    let lines: Vec<Tensor<4>> = (0..grid)
        .map(|r| Tensor::cat((0..grid).map(|c| band(r * grid + c)).collect(), 3))
        .collect();
    Tensor::cat(lines, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jigclu::{decouple, decoupled_rows, jigsaw_labels, JigClu, JigCluConfig};
    use burn::tensor::{Device, TensorData};
    use protoclust_nn::ops::host::to_f32;

    /// Patch (image b, crop i) of n images as a constant 2 × 2 patch of value 10·b + i.
    fn tagged_patches(n: usize, device: &Device) -> Vec<Tensor<4>> {
        (0..4)
            .map(|i| {
                let v: Vec<f32> = (0..n)
                    .flat_map(|b| std::iter::repeat_n((10 * b + i) as f32, 4))
                    .collect();
                Tensor::from_data(TensorData::new(v, [n, 1, 2, 2]), device)
            })
            .collect()
    }

    #[test]
    fn location_and_image_labels_follow_the_permutation_through_montage_and_decoupling() {
        let dev = Device::flex();
        let n = 6;
        let jig = JigClu::new(JigCluConfig::default());
        for it in 0..20 {
            let permute = jig.permutation(4 * n, 7, it);
            let m = montage(&tagged_patches(n, &dev), &permute, 2);
            assert_eq!(m.dims(), [n, 1, 4, 4]);
            // The 4 × 4 montage as a map: decoupling gives each cell's (constant) value.
            let rows = to_f32(decoupled_rows(decouple(m, 2, 4)));
            let (label_clu, label_loc) = jigsaw_labels(&permute, n);
            for r in 0..4 * n {
                let want = (10 * label_clu[r] + label_loc[r]) as f32;
                assert!(
                    (rows[r] - want).abs() < 1e-4,
                    "row {r}: {} vs {want}",
                    rows[r]
                );
            }
        }
    }

    #[test]
    fn montages_mix_images_as_a_uniform_permutation_does() {
        let n = 8;
        let jig = JigClu::new(JigCluConfig::default());
        let (mut total, mut single_image, mut all_distinct) = (0usize, 0usize, 0usize);
        let mut same_position = 0usize;
        for it in 0..2000 {
            let permute = jig.permutation(4 * n, 0, it);
            let (img, pos) = jigsaw_labels(&permute, n);
            for j in 0..n {
                // Cells of montage j are rows k·n + j.
                let cells: Vec<usize> = (0..4).map(|k| k * n + j).collect();
                let mut ids: Vec<usize> = cells.iter().map(|&r| img[r]).collect();
                ids.sort();
                ids.dedup();
                single_image += (ids.len() == 1) as usize;
                all_distinct += (ids.len() == 4) as usize;
                same_position += cells.iter().filter(|&&r| pos[r] == r / n).count();
                total += 1;
            }
        }
        // A uniform permutation puts one image's four patches in one montage with probability
        // n·4!/(4n)_4 ≈ 2.2e-4 (≈ 3.6 of 16,000); P(four different images) = (4n)(4n−4)(4n−8)(4n−12)/(4n)_4.
        let f = 4.0 * n as f64;
        let p_single = n as f64 * 24.0 / (f * (f - 1.0) * (f - 2.0) * (f - 3.0));
        let expected_single = p_single * total as f64;
        assert!(
            (single_image as f64) <= expected_single + 5.0 * expected_single.sqrt() + 1.0,
            "{single_image} one-image montages of {total}, chance allows ~{expected_single:.1}"
        );
        let p_distinct = (f - 4.0) * (f - 8.0) * (f - 12.0) / ((f - 1.0) * (f - 2.0) * (f - 3.0));
        let got = all_distinct as f64 / total as f64;
        let sd = (p_distinct * (1.0 - p_distinct) / total as f64).sqrt();
        assert!((got - p_distinct).abs() < 5.0 * sd, "{got} vs {p_distinct}");
        // A patch lands in the cell matching its source position a quarter of the time.
        let q = same_position as f64 / (4 * total) as f64;
        assert!((q - 0.25).abs() < 0.02, "{q}");
    }
}
