//! Row ranges of a tensor.

use burn::tensor::Tensor;
use std::ops::Range;

/// Rows `range` (along dimension 0) of `t`.
pub fn rows<const D: usize>(t: Tensor<D>, range: Range<usize>) -> Tensor<D> {
    t.narrow(0, range.start, range.end - range.start)
}
