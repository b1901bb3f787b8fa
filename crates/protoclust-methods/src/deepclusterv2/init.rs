//! `init_memory`: the first memory bank, filled batch by batch from one pass over the epoch's
//! training batches before the first clustering.

use super::bank::MemoryBank;

/// A memory bank being filled as the official `init_memory` fills it: per batch, each crop of
/// `crops_for_assign` embedded on its own and in that order (a training-mode BatchNorm's
/// running statistics move once per crop), the rows written after the previous batch's.
pub struct MemoryInit {
    bank: MemoryBank,
    crops: Vec<usize>,
    next_row: usize,
}

impl MemoryInit {
    /// An empty bank of `size` rows × `dim` with one slot per crop of `crops`.
    pub fn new(crops: &[usize], size: usize, dim: usize) -> Self {
        Self {
            bank: MemoryBank::zeros(crops.len(), size, dim),
            crops: crops.to_vec(),
            next_row: 0,
        }
    }

    /// Adds one batch of the data-set images `indices`: `embed(crop)` gives that crop's
    /// `indices.len()` × dim embedding rows, and is called once per crop in order.
    pub fn add_batch(&mut self, indices: &[usize], mut embed: impl FnMut(usize) -> Vec<f32>) {
        let rows: Vec<Vec<f32>> = self.crops.iter().map(|&c| embed(c)).collect();
        self.bank.write(self.next_row, indices, &rows);
        self.next_row += indices.len();
    }

    /// The filled bank (rows past the last batch stay zero with index 0, as the official
    /// zero-initialised bank).
    pub fn finish(self) -> MemoryBank {
        self.bank
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_are_embedded_in_order_and_batches_follow_each_other() {
        let mut init = MemoryInit::new(&[0, 1], 5, 1);
        let mut calls = Vec::new();
        for (b, indices) in [vec![4usize, 2], vec![7, 1]].iter().enumerate() {
            init.add_batch(indices, |c| {
                calls.push((b, c));
                indices.iter().map(|&i| (10 * c + i) as f32).collect()
            });
        }
        assert_eq!(calls, [(0, 0), (0, 1), (1, 0), (1, 1)]);
        let bank = init.finish();
        assert_eq!(bank.index, [4, 2, 7, 1, 0]);
        assert_eq!(bank.embeddings[0], [4.0, 2.0, 7.0, 1.0, 0.0]);
        assert_eq!(bank.embeddings[1], [14.0, 12.0, 17.0, 11.0, 0.0]);
    }
}
