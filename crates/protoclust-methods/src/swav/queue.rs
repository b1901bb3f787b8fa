//! SwAV's feature queue: past embeddings of each assignment crop, used to enlarge Sinkhorn's batch.

use burn::tensor::{Device, Tensor};
use protoclust_nn::named::HostTensor;
use protoclust_nn::ops::rows;

/// One L × D queue per assignment crop, plus the sticky per-epoch "use the queue" flag.
#[derive(Debug, Clone)]
pub struct SwavQueue {
    /// `queues[i]` belongs to assignment crop i; row 0 is the newest.
    pub queues: Vec<Tensor<2>>,
    /// Set once a queue was used in this epoch; stays set until the epoch ends.
    pub use_queue: bool,
}

impl SwavQueue {
    /// Zero-filled queues of `length` rows for `crops` assignment crops.
    pub fn new(crops: usize, length: usize, dim: usize, device: &Device) -> Self {
        Self {
            queues: (0..crops)
                .map(|_| Tensor::zeros([length, dim], device))
                .collect(),
            use_queue: false,
        }
    }

    /// True when queue `i`'s last row is not all zero (it has been filled once).
    pub fn is_full(&self, i: usize) -> bool {
        let [l, _] = self.queues[i].dims();
        if l == 0 {
            return false;
        }
        let last = rows(self.queues[i].clone(), l - 1..l);
        protoclust_nn::ops::host::scalar(last.abs().sum()) != 0.0
    }

    /// Drops the oldest `bs` rows of queue `i` and puts `emb` (bs × D, detached) on top.
    pub fn push(&mut self, i: usize, emb: Tensor<2>) {
        let [l, _] = self.queues[i].dims();
        let [bs, _] = emb.dims();
        let keep = l.saturating_sub(bs);
        let old = rows(self.queues[i].clone(), 0..keep);
        let newest = rows(emb.detach(), 0..bs.min(l));
        self.queues[i] = Tensor::cat(vec![newest, old], 0);
    }

    /// Host copies for checkpoints.
    pub fn to_host(&self) -> Vec<HostTensor> {
        self.queues.iter().map(HostTensor::from_tensor).collect()
    }
}
