//! A rank's rows within the global batch: where they sit, and the global batch's rows on
//! every rank for losses that contrast across it (SlotCon's keys, JigClu's montages).

use super::Collective;
use crate::ops::rows;
use burn::tensor::Tensor;

/// Where this rank's `local` rows sit among all ranks' rows (in rank order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowSpan {
    /// Rows on the ranks before this one.
    pub offset: usize,
    /// This rank's rows.
    pub local: usize,
    /// Rows on all ranks together.
    pub total: usize,
}

/// This rank's [`RowSpan`] when it holds `local` rows (one all-reduce; ranks may differ).
pub fn row_span(world: &impl Collective, local: usize) -> RowSpan {
    let (rank, ranks) = (world.rank(), world.world_size());
    if ranks == 1 {
        return RowSpan {
            offset: 0,
            local,
            total: local,
        };
    }
    let mut counts = vec![0.0f64; ranks];
    counts[rank] = local as f64;
    world.sum_host_f64(&mut counts);
    RowSpan {
        offset: counts[..rank].iter().sum::<f64>() as usize,
        local,
        total: counts.iter().sum::<f64>() as usize,
    }
}

/// The factor that turns a mean over this rank's `local` weight (rows, or summed row weights)
/// into its part of the mean over every rank's weight, times the world size since the ranks'
/// gradients are averaged: one process's mean over the global batch. 1 in one process, 0 when
/// no rank has any weight (one all-reduce).
pub fn mean_share(world: &impl Collective, local: f64) -> f64 {
    let ranks = world.world_size();
    if ranks == 1 {
        return 1.0;
    }
    let mut total = [local];
    world.sum_host_f64(&mut total);
    if total[0] > 0.0 {
        local * ranks as f64 / total[0]
    } else {
        0.0
    }
}

/// The rows of `t` from every rank in rank order, with the gradient of this rank's own rows
/// flowing back into `t`, multiplied by the world size: when every rank computes the same loss
/// on the gathered rows, averaging the ranks' gradients then gives one process's gradient on
/// the global batch (the official `concat_all_gather` with diffdist, then DDP's mean).
pub fn gather_rows_tracked<const D: usize>(world: &impl Collective, t: Tensor<D>) -> Tensor<D> {
    let ranks = world.world_size();
    if ranks == 1 {
        return t;
    }
    let span = row_span(world, t.dims()[0]);
    let all = world.all_gather(t.clone().detach());
    // Forward value exactly t (t − t is exactly zero), gradient ranks × the incoming one.
    let scaled = t.clone().detach() + (t.clone() - t.detach()).mul_scalar(ranks as f64);
    let mut parts = Vec::with_capacity(3);
    if span.offset > 0 {
        parts.push(rows(all.clone(), 0..span.offset));
    }
    parts.push(scaled);
    if span.offset + span.local < span.total {
        parts.push(rows(all, span.offset + span.local..span.total));
    }
    Tensor::cat(parts, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::SingleProcess;
    use burn::tensor::Device;

    #[test]
    fn one_process_is_its_own_global_batch() {
        let dev = Device::flex();
        let t = Tensor::<2>::ones([3, 2], &dev);
        assert_eq!(
            row_span(&SingleProcess, 3),
            RowSpan {
                offset: 0,
                local: 3,
                total: 3
            }
        );
        let g = gather_rows_tracked(&SingleProcess, t.clone());
        assert_eq!(g.to_data(), t.to_data());
        assert_eq!(mean_share(&SingleProcess, 0.0), 1.0);
        assert_eq!(SingleProcess.all_gather_host(&[1.0, 2.0]), vec![1.0, 2.0]);
    }
}
