//! Summary statistics of a tensor, for diagnostics when a step produces NaN or Inf.

use burn::tensor::Tensor;
use std::fmt;

/// Min, max, mean and the counts of non-finite entries of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorStats {
    /// Shape of the tensor.
    pub shape: Vec<usize>,
    /// Smallest finite value (NaN when there is none).
    pub min: f32,
    /// Largest finite value (NaN when there is none).
    pub max: f32,
    /// Mean of the finite values.
    pub mean: f64,
    /// Number of NaN entries.
    pub nan: usize,
    /// Number of +/-Inf entries.
    pub inf: usize,
}

impl TensorStats {
    /// Reads `t` back to the host and summarises it.
    pub fn of<const D: usize>(t: &Tensor<D>) -> Self {
        let shape = t.dims().to_vec();
        let values = crate::ops::host::to_f32(t.clone());
        Self::of_slice(shape, &values)
    }

    /// Summarises host values with the given shape.
    pub fn of_slice(shape: Vec<usize>, values: &[f32]) -> Self {
        let (mut min, mut max, mut sum, mut n, mut nan, mut inf) = (
            f32::INFINITY,
            f32::NEG_INFINITY,
            0f64,
            0usize,
            0usize,
            0usize,
        );
        for &v in values {
            if v.is_nan() {
                nan += 1;
            } else if v.is_infinite() {
                inf += 1;
            } else {
                min = min.min(v);
                max = max.max(v);
                sum += v as f64;
                n += 1;
            }
        }
        if n == 0 {
            (min, max) = (f32::NAN, f32::NAN);
        }
        TensorStats {
            shape,
            min,
            max,
            mean: if n > 0 { sum / n as f64 } else { f64::NAN },
            nan,
            inf,
        }
    }

    /// True when every entry is finite.
    pub fn is_finite(&self) -> bool {
        self.nan == 0 && self.inf == 0
    }
}

impl fmt::Display for TensorStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shape {:?} min {:.4e} max {:.4e} mean {:.4e} nan {} inf {}",
            self.shape, self.min, self.max, self.mean, self.nan, self.inf
        )
    }
}
