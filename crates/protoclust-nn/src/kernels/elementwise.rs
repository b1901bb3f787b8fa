//! Element-wise passes of a ResNet step on f32 slices, in parallel chunks on rayon: ReLU and
//! the residual add + ReLU (forward and backward), and the zeroed output buffers the other
//! kernels write into. burn-flex runs these serially on one thread while the other core idles.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Elements per parallel chunk (256 KiB of f32: large enough to amortise a task, small enough
/// to balance two to sixteen threads on one activation).
const CHUNK: usize = 64 * 1024;

/// A vector of `n` values, chunk `i` (elements `i·CHUNK..`) written by `fill(offset, chunk)`,
/// chunks in parallel. `fill` must write every element of its chunk.
fn par_build(n: usize, fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync) -> Vec<f32> {
    let mut v = Vec::<f32>::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(i, c)| fill(i * CHUNK, c));
    // SAFETY: the first n elements were each written once above (every chunk is filled
    // whole by `fill`, as its contract says; the callers below write `c.len()` values).
    unsafe { v.set_len(n) };
    v
}

/// `n` zeros, written in parallel (the first touch of fresh pages is spread over the threads).
pub fn zeroed(n: usize) -> Vec<f32> {
    par_build(n, |_, c| {
        c.fill(MaybeUninit::new(0.0));
    })
}

/// ReLU as burn and PyTorch define it: values ≤ 0 become 0, NaN passes through.
#[inline(always)]
fn relu1(v: f32) -> f32 {
    if v <= 0.0 {
        0.0
    } else {
        v
    }
}

/// `max(x, 0)`, NaN kept.
pub fn relu(x: &[f32]) -> Vec<f32> {
    par_build(x.len(), |off, c| {
        let x = &x[off..off + c.len()];
        for (d, &v) in c.iter_mut().zip(x) {
            d.write(relu1(v));
        }
    })
}

/// `max(a + b, 0)`: the residual join of a ResNet block.
///
/// # Panics
/// When the lengths differ (a caller bug).
pub fn add_relu(a: &[f32], b: &[f32]) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "add_relu: operands differ in length");
    par_build(a.len(), |off, c| {
        let (a, b) = (&a[off..off + c.len()], &b[off..off + c.len()]);
        for ((d, &u), &v) in c.iter_mut().zip(a).zip(b) {
            d.write(relu1(u + v));
        }
    })
}

/// The gradient through a ReLU given its output `y`: `dy` where `y > 0`, else 0 (burn's and
/// PyTorch's rule: the gradient at 0 is 0).
///
/// # Panics
/// When the lengths differ (a caller bug).
pub fn relu_backward(y: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(
        y.len(),
        dy.len(),
        "relu_backward: operands differ in length"
    );
    par_build(y.len(), |off, c| {
        let (y, dy) = (&y[off..off + c.len()], &dy[off..off + c.len()]);
        for ((d, &o), &g) in c.iter_mut().zip(y).zip(dy) {
            d.write(if o <= 0.0 { 0.0 } else { g });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i as f32) * 0.731).sin()).collect()
    }

    #[test]
    fn relu_keeps_positives_zeroes_the_rest_and_passes_nan() {
        let mut x = values(CHUNK * 2 + 17);
        x[5] = f32::NAN;
        x[6] = -0.0;
        let y = relu(&x);
        assert_eq!(y.len(), x.len());
        assert!(y[5].is_nan());
        assert_eq!(y[6].to_bits(), 0.0f32.to_bits());
        for (i, (&v, &r)) in x.iter().zip(&y).enumerate().filter(|(i, _)| *i != 5) {
            assert_eq!(r, if v > 0.0 { v } else { 0.0 }, "element {i}");
        }
    }

    #[test]
    fn add_relu_equals_relu_of_the_sum() {
        let a = values(CHUNK + 3);
        let b: Vec<f32> = values(CHUNK + 3).iter().map(|v| 0.5 - v * v).collect();
        let sum: Vec<f32> = a.iter().zip(&b).map(|(u, v)| u + v).collect();
        assert_eq!(add_relu(&a, &b), relu(&sum));
    }

    #[test]
    fn relu_backward_masks_where_the_output_is_not_positive() {
        let y = relu(&values(CHUNK + 9));
        let dy: Vec<f32> = (0..y.len()).map(|i| i as f32).collect();
        let dx = relu_backward(&y, &dy);
        for i in 0..y.len() {
            assert_eq!(dx[i], if y[i] > 0.0 { dy[i] } else { 0.0 }, "element {i}");
        }
    }

    #[test]
    fn zeroed_is_all_zero_at_odd_lengths() {
        for n in [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 5] {
            let z = zeroed(n);
            assert_eq!(z.len(), n);
            assert!(z.iter().all(|&v| v.to_bits() == 0));
        }
    }
}
