//! Wall time spent inside each CPU kernel, summed over the process (for `protoclust bench`, so
//! a step's time splits into the kernels and everything outside them).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The kernels whose time is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// conv2d forward.
    ConvForward,
    /// conv2d weight gradient.
    ConvWeightGrad,
    /// conv2d input gradient.
    ConvInputGrad,
    /// BatchNorm training forward.
    BatchNormForward,
    /// BatchNorm backward.
    BatchNormBackward,
    /// ReLU and residual add + ReLU, forward.
    ReluForward,
    /// ReLU backward.
    ReluBackward,
}

impl Kernel {
    /// Every counted kernel, in table order.
    pub const ALL: [Kernel; 7] = [
        Kernel::ConvForward,
        Kernel::ConvWeightGrad,
        Kernel::ConvInputGrad,
        Kernel::BatchNormForward,
        Kernel::BatchNormBackward,
        Kernel::ReluForward,
        Kernel::ReluBackward,
    ];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::ConvForward => "conv2d forward",
            Kernel::ConvWeightGrad => "conv2d weight gradient",
            Kernel::ConvInputGrad => "conv2d input gradient",
            Kernel::BatchNormForward => "BatchNorm forward",
            Kernel::BatchNormBackward => "BatchNorm backward",
            Kernel::ReluForward => "ReLU (+ residual add) forward",
            Kernel::ReluBackward => "ReLU backward",
        }
    }
}

static NANOS: [AtomicU64; Kernel::ALL.len()] = [const { AtomicU64::new(0) }; Kernel::ALL.len()];

/// Adds the time from its creation to its drop to one kernel's total.
#[must_use = "the time is counted when the guard drops"]
pub struct Timed {
    kernel: Kernel,
    start: Instant,
}

impl Drop for Timed {
    fn drop(&mut self) {
        let ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        NANOS[self.kernel as usize].fetch_add(ns, Ordering::Relaxed);
    }
}

/// Starts counting time for `kernel` until the returned guard drops.
pub fn timed(kernel: Kernel) -> Timed {
    Timed {
        kernel,
        start: Instant::now(),
    }
}

/// Seconds counted so far per kernel, in [`Kernel::ALL`] order.
pub fn totals() -> [f64; Kernel::ALL.len()] {
    Kernel::ALL.map(|k| NANOS[k as usize].load(Ordering::Relaxed) as f64 * 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_adds_its_lifetime_to_its_kernel_only() {
        let before = totals();
        {
            let _t = timed(Kernel::ReluBackward);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let after = totals();
        let i = Kernel::ReluBackward as usize;
        assert!(after[i] - before[i] >= 0.004, "{before:?} {after:?}");
    }
}
