//! The parameter-free decoupling module: one feature per montage cell.

use burn::tensor::Tensor;
use protoclust_nn::ops::resize::{adaptive_pool_weights, bilinear_weights, compose, separable};

/// The side the map is resampled to before pooling: `configured`, or the smallest multiple of
/// `grid` not below `side` (8 for a 7 × 7 map and a 2 × 2 grid, as the official code).
pub fn upsample_side(side: usize, grid: usize, configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        side.div_ceil(grid) * grid
    }
}

/// Bilinear resize (align_corners = false) of the N × C × S × S map to `up × up`, then adaptive
/// average pooling to `grid × grid`, as one linear map per axis.
pub fn decouple(map: Tensor<4>, grid: usize, up: usize) -> Tensor<4> {
    let [_, _, h, w] = map.dims();
    let axis = |len: usize| {
        compose(
            &adaptive_pool_weights(grid, up),
            &bilinear_weights(up, len),
            grid,
            up,
            len,
        )
    };
    separable(map, &axis(h), grid, &axis(w), grid)
}

/// The n × C × m × m cell features as (m²·n) × C rows, row (r·m + c)·n + j = cell (r, c) of
/// montage j (the official split order: row-major cells, montage inside).
pub fn decoupled_rows(cells: Tensor<4>) -> Tensor<2> {
    let [n, c, m, _] = cells.dims();
    let mut out = Vec::with_capacity(m * m);
    for r in 0..m {
        for k in 0..m {
            out.push(
                cells
                    .clone()
                    .slice([0..n, 0..c, r..r + 1, k..k + 1])
                    .reshape([n, c]),
            );
        }
    }
    Tensor::cat(out, 0)
}
