//! Moving small tensors between device and host.
//!
//! Every read of device values back to the host in the library goes through here and is
//! counted ([`reads`]): on a GPU each one waits for the queued work, so `bench` reports how
//! many a training step makes.

use burn::tensor::{Device, Int, Tensor, TensorData};
use std::sync::atomic::{AtomicU64, Ordering};

static READS: AtomicU64 = AtomicU64::new(0);

/// Device-to-host reads so far in this process.
pub fn reads() -> u64 {
    READS.load(Ordering::Relaxed)
}

/// Counts one device-to-host read.
fn count() {
    READS.fetch_add(1, Ordering::Relaxed);
}

/// The value of a one-element float tensor.
pub fn scalar<const D: usize>(t: Tensor<D>) -> f32 {
    to_f32(t).first().copied().unwrap_or(f32::NAN)
}

/// The values of several one-element float tensors, in one read.
pub fn scalars(ts: Vec<Tensor<1>>) -> Vec<f32> {
    if ts.is_empty() {
        return Vec::new();
    }
    let flat: Vec<Tensor<1>> = ts.into_iter().map(|t| t.detach().reshape([1])).collect();
    to_f32(Tensor::cat(flat, 0))
}

/// All values of a float tensor as f32, row-major.
pub fn to_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    count();
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

/// All values of an integer tensor as indices, row-major.
pub fn to_indices<const D: usize>(t: Tensor<D, Int>) -> Vec<usize> {
    count();
    t.into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.max(0) as usize)
        .collect()
}

/// A 1-d integer tensor of `values`.
pub fn index_tensor(values: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = values.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(v, [values.len()]), device)
}

/// A rank-2 float tensor from row-major values.
pub fn matrix(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}
