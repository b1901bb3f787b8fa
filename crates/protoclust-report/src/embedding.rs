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
            // 30 distinct points per group (duplicates leave t-SNE's perplexity ill-posed).
            let (u, v) = ((i % 30) as f32 * 0.004, ((i * 7) % 30) as f32 * 0.003);
            if i < 30 {
                data.extend_from_slice(&[1.0, u, 0.0, v]);
            } else {
                data.extend_from_slice(&[0.0, u, 1.0, v]);
            }
        }
        let cfg = TsneConfig {
            epochs: 500,
            ..Default::default()
        };
        let y = tsne_2d(&data, 4, &cfg).unwrap();
        // Every point's nearest neighbour in the map is of its own group. (bhtsne's
        // vantage-point tree draws from an unseeded generator, so the layout differs between
        // runs, and a group may come out as more than one island.)
        let d2 = |i: usize, j: usize| (y[i].0 - y[j].0).powi(2) + (y[i].1 - y[j].1).powi(2);
        for i in 0..60 {
            let nearest = (0..60)
                .filter(|&j| j != i)
                .min_by(|&a, &b| d2(i, a).total_cmp(&d2(i, b)))
                .unwrap();
            assert_eq!(
                i < 30,
                nearest < 30,
                "point {i}'s nearest neighbour is {nearest}"
            );
        }
        assert!(tsne_2d(&data[..12], 4, &cfg).is_none());
    }
}
