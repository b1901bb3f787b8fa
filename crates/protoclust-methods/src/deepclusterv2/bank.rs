//! The memory bank: per rank, the normalised embeddings of the crops used for clustering
//! (`crops_for_assign`) of every image of the epoch, with each row's data-set index.

use burn::tensor::{Device, Tensor, TensorData};

/// `slots` banks of `size` rows × `dim`, and the data-set index of each row.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryBank {
    /// Data-set index of every row (shared by the slots).
    pub index: Vec<i64>,
    /// Per slot (crop of `crops_for_assign`), `size` × `dim` row-major values.
    pub embeddings: Vec<Vec<f32>>,
    /// Embedding dimension.
    pub dim: usize,
}

impl MemoryBank {
    /// A zeroed bank (index 0 everywhere), as the official `init_memory` allocates it.
    pub fn zeros(slots: usize, size: usize, dim: usize) -> Self {
        Self {
            index: vec![0; size],
            embeddings: vec![vec![0.0; size * dim]; slots],
            dim,
        }
    }

    /// Rows per slot.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when the bank has no rows.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Writes rows `start..start + indices.len()`: their data-set indices and, per slot, the
    /// rows of `rows[slot]` (indices.len() × dim); rows past the end are dropped.
    pub fn write(&mut self, start: usize, indices: &[usize], rows: &[Vec<f32>]) {
        if start >= self.len() {
            return;
        }
        let end = (start + indices.len()).min(self.len());
        let n = end - start;
        for (i, &ix) in indices.iter().take(n).enumerate() {
            self.index[start + i] = ix as i64;
        }
        for (slot, r) in self.embeddings.iter_mut().zip(rows) {
            slot[start * self.dim..end * self.dim].copy_from_slice(&r[..n * self.dim]);
        }
    }

    /// Slot `j` as a size × dim tensor.
    pub fn slot_tensor(&self, j: usize, device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(self.embeddings[j].clone(), [self.len(), self.dim]),
            device,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_at_their_rows_and_stop_at_the_end() {
        let mut b = MemoryBank::zeros(2, 3, 2);
        b.write(1, &[7, 9, 11], &[vec![1.0; 6], vec![2.0; 6]]);
        assert_eq!(b.index, [0, 7, 9]);
        assert_eq!(b.embeddings[0], [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(b.embeddings[1], [0.0, 0.0, 2.0, 2.0, 2.0, 2.0]);
        b.write(3, &[1], &[vec![5.0; 2], vec![5.0; 2]]);
        b.write(4, &[1], &[vec![5.0; 2], vec![5.0; 2]]);
        assert_eq!(b.index, [0, 7, 9]);
    }
}
