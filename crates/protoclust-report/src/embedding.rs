//! A 2-D map of feature vectors (Barnes-Hut t-SNE, bhtsne) on cosine geometry.

use rand::{Rng, SeedableRng};

/// t-SNE settings.
#[derive(Debug, Clone, Copy)]
pub struct TsneConfig {
    /// Target perplexity (lowered for small inputs).
    pub perplexity: f32,
    /// Gradient steps.
    pub epochs: usize,
    /// Barnes-Hut accuracy/speed trade-off.
    pub theta: f32,
    /// Seed of the initial layout.
    pub seed: u64,
}

impl Default for TsneConfig {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            epochs: 1000,
            theta: 0.5,
            seed: 0,
        }
    }
}

/// Embeds the L2-normalised rows of `data` (N × `dim`) in 2-D; None for fewer than 8 rows.
pub fn tsne_2d(data: &[f32], dim: usize, cfg: &TsneConfig) -> Option<Vec<(f64, f64)>> {
    let dim = dim.max(1);
    let rows: Vec<Vec<f32>> = data
        .chunks_exact(dim)
        .map(|r| {
            let n = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            r.iter().map(|v| v / n).collect()
        })
        .collect();
    let n = rows.len();
    if n < 8 {
        return None;
    }
    // bhtsne needs n - 1 >= 3 · perplexity.
    let perplexity = cfg.perplexity.min(((n - 1) / 3) as f32 - 1.0).max(1.0);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let init: Vec<f32> = (0..2 * n).map(|_| rng.random_range(-1e-2..1e-2)).collect();
    let samples: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
    let y = bhtsne::tSNE::new(&samples)
        .embedding_dim(2)
        .perplexity(perplexity)
        .epochs(cfg.epochs)
        .initial_embedding(init)
        .barnes_hut(cfg.theta, |a: &&[f32], b: &&[f32]| {
            a.iter()
                .zip(b.iter())
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt()
        })
        .embedding();
    Some(
        y.chunks_exact(2)
            .map(|p| (p[0] as f64, p[1] as f64))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separated_groups_stay_separated_in_the_map() {
        // Two groups of 30 points around orthogonal directions.
        let mut data = Vec::new();
        for i in 0..60 {
            let jitter = (i % 7) as f32 * 0.01;
            if i < 30 {
                data.extend_from_slice(&[1.0, jitter, 0.0, 0.02]);
            } else {
                data.extend_from_slice(&[0.0, jitter, 1.0, 0.02]);
            }
        }
        let cfg = TsneConfig {
            epochs: 500,
            ..Default::default()
        };
        let y = tsne_2d(&data, 4, &cfg).unwrap();
        let centre = |r: std::ops::Range<usize>| {
            let n = r.len() as f64;
            r.fold((0.0, 0.0), |a, i| (a.0 + y[i].0 / n, a.1 + y[i].1 / n))
        };
        let (a, b) = (centre(0..30), centre(30..60));
        let between = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
        let spread = (0..30)
            .map(|i| ((y[i].0 - a.0).powi(2) + (y[i].1 - a.1).powi(2)).sqrt())
            .fold(0.0, f64::max);
        assert!(between > 2.0 * spread, "between {between}, spread {spread}");
        assert!(tsne_2d(&data[..12], 4, &cfg).is_none());
    }
}
