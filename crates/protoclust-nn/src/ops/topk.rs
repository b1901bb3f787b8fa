//! The k largest entries of every row, correct on every backend.
//!
//! burn 0.22's cubecl reduction `topk_with_indices` (CUDA, wgpu) returns out-of-range
//! indices and wrong values once k passes about 128 on long rows (on lavapipe: k = 129 of
//! 1,000 and k = 200 of 300 columns fail, k = 128 of 300 and k = 20 of 2,048 pass), which
//! broke the kNN monitor's k = 200. Off flex the rows are sorted instead, which is exact.

use crate::kernels::is_flex;
use burn::tensor::{Int, Tensor};

/// Each row's `k` largest values in descending order, and their column indices.
pub fn top_k_rows(x: Tensor<2>, k: usize) -> (Tensor<2>, Tensor<2, Int>) {
    if is_flex(&x.device()) {
        return x.topk_with_indices(k, 1);
    }
    let [rows, _] = x.dims();
    let (values, indices) = x.sort_descending_with_indices(1);
    (
        values.slice([0..rows, 0..k]),
        indices.slice([0..rows, 0..k]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    #[allow(deprecated)]
    fn rows_keep_their_k_largest_in_order() {
        let dev = Device::flex();
        let x = Tensor::<2>::random([3, 300], Distribution::Normal(0.0, 1.0), &dev);
        let all: Vec<f32> = x.clone().into_data().to_vec().unwrap();
        let (v, i) = top_k_rows(x, 200);
        let v: Vec<f32> = v.into_data().to_vec().unwrap();
        let i: Vec<i64> = i.into_data().convert::<i64>().to_vec().unwrap();
        for r in 0..3 {
            let mut row = all[r * 300..(r + 1) * 300].to_vec();
            row.sort_by(|a, b| b.total_cmp(a));
            assert_eq!(&v[r * 200..(r + 1) * 200], &row[..200]);
            for j in 0..200 {
                assert_eq!(all[r * 300 + i[r * 200 + j] as usize], v[r * 200 + j]);
            }
        }
    }
}
