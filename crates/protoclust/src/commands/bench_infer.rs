//! `protoclust bench --infer`: images per second of pooled-feature inference (eval mode) of a
//! ResNet with random weights, and the peak memory of the process.

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use protoclust_nn::backbone::{resnet, ResNetConfig};
use protoclust_nn::infer::{check_precision, InferenceResNet};
use protoclust_nn::precision::{with_precision, Precision};
use std::time::Instant;

/// What `bench --infer` runs.
#[derive(Debug, Clone, Copy)]
pub struct InferShape {
    /// 18, 34 or 50.
    pub depth: usize,
    /// Base width (64 in the papers).
    pub width: usize,
    /// Image side in pixels.
    pub size: usize,
    /// Images per forward pass.
    pub batch: usize,
    /// Timed passes (after one warm-up pass).
    pub batches: usize,
}

/// Which network runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InferPath {
    /// BatchNorm folded into the convolutions, channels-last (what `extract` runs on flex).
    Folded,
    /// The burn modules in eval mode (`ResNet::forward` on a `valid()` copy).
    Modules,
}

/// Times `path` on `shape` and prints one table row.
pub fn run(shape: InferShape, path: InferPath, precision: Precision) -> Result<()> {
    let config = ResNetConfig {
        depth: shape.depth,
        width: shape.width,
        small_stem: false,
        stem_padding: None,
        zero_init_residual: false,
    };
    let dev = crate::device::select()?;
    let net = resnet(&config, 0, &dev)?.valid();
    // Refuses a precision the device cannot run (bf16 without AVX512-BF16).
    check_precision(&dev, precision)?;
    let (n, s) = (shape.batch.max(1), shape.size);
    let x: Vec<f32> = (0..n * 3 * s * s)
        .map(|i| ((i as u64 * 2654435761 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let pass: Box<dyn Fn() -> usize> = match path {
        InferPath::Folded => {
            let folded = InferenceResNet::new(&net).context("bench --infer")?;
            let folded = match precision {
                Precision::Bf16 => folded.to_bf16(),
                _ => folded,
            };
            let x = x.clone();
            Box::new(move || folded.pooled(&x, n, s, s).len())
        }
        InferPath::Modules => {
            let dev: Device = dev.clone();
            Box::new(move || {
                let t = Tensor::<4>::from_data(TensorData::new(x.clone(), [n, 3, s, s]), &dev);
                let p = with_precision(precision, || net.forward(t).pooled);
                p.into_data().num_elements()
            })
        }
    };
    pass();
    let start = Instant::now();
    for _ in 0..shape.batches.max(1) {
        pass();
    }
    let ips = (shape.batches.max(1) * n) as f64 / start.elapsed().as_secs_f64();
    let path_name = match path {
        InferPath::Folded => "folded BatchNorm, channels-last",
        InferPath::Modules => "burn modules, eval mode",
    };
    println!(
        "| pooled-feature inference, ResNet-{} width {}, {s} px, batch {n}, {path_name}, {precision} (protoclust, {} threads) | {ips:.1} | {} |",
        shape.depth,
        shape.width,
        rayon::current_num_threads(),
        super::bench::peak_rss_mb().map_or("–".to_string(), |mb| format!("{mb:.0} MB"))
    );
    Ok(())
}
