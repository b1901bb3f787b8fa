//! Flushing BatchNorm running statistics before they are read.
//!
//! burn keeps the latest running-statistics update per thread and folds it in at the next
//! forward pass, so a snapshot taken between steps would miss the last update. Checkpoints and
//! evaluation call [`SyncRunningStats::sync_running_stats`] first (from the training thread).

use burn::nn::BatchNorm;

/// A module whose BatchNorm running statistics can be made current.
pub trait SyncRunningStats {
    /// Folds pending running-statistics updates of the calling thread into the stored values.
    fn sync_running_stats(&self);
}

impl SyncRunningStats for BatchNorm {
    fn sync_running_stats(&self) {
        let _ = self.running_mean.value_sync();
        let _ = self.running_var.value_sync();
    }
}

impl<T: SyncRunningStats> SyncRunningStats for Vec<T> {
    fn sync_running_stats(&self) {
        self.iter().for_each(|m| m.sync_running_stats());
    }
}

impl<T: SyncRunningStats> SyncRunningStats for Option<T> {
    fn sync_running_stats(&self) {
        if let Some(m) = self {
            m.sync_running_stats();
        }
    }
}
