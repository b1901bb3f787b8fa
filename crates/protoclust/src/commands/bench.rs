//! `protoclust bench`: images per second of the SwAV training step and of the multi-crop
//! pipeline; with `--kmeans`, the time of k-means on synthetic features.

use crate::{config, device, runner};
use anyhow::Result;
use burn::optim::GradientsParams;
use protoclust_methods::{Method, StepContext};
use protoclust_nn::optim::Optimizer;
use protoclust_train::engine::views_to_tensors;
use std::path::Path;
use std::time::Instant;

/// Measures and prints a table.
pub fn run(path: &Path, overrides: &[String], steps: usize, pipeline_batches: usize) -> Result<()> {
    let cfg = config::load(path, overrides)?;
    let dev = device::select()?;
    let ad = dev.clone().autodiff();
    let (mut swav, loader) = runner::build(&cfg)?;
    let bs = cfg.loader.batch_size;
    let crops = cfg.swav.views.total();
    let threads = rayon::current_num_threads();

    // Multi-crop pipeline: decode + all crops + photometric, in parallel.
    let order = loader.order(0);
    let n = (pipeline_batches * bs).min(order.len());
    let t = Instant::now();
    let mut batches = Vec::new();
    for chunk in order[..n].chunks(bs) {
        batches.push(loader.load(0, chunk)?);
    }
    let pipe_ips = n as f64 / t.elapsed().as_secs_f64();

    // Training step: forward, backward, optimiser, on prepared batches.
    let mut model = swav.init_model(cfg.seed, &ad)?;
    let mut opt = Optimizer::new(cfg.optim.clone());
    let batch = &batches[0];
    let views = views_to_tensors(batch, &ad);
    let mut time = 0.0;
    let warmup = 2;
    for i in 0..steps + warmup {
        let ctx = StepContext {
            iteration: 1_000_000,
            epoch: 0,
            iters_per_epoch: 1,
            device: ad.clone(),
            seed: cfg.seed,
        };
        let t = Instant::now();
        model = swav.before_forward(model, &ctx);
        let out = swav.forward(&model, &views, batch, &ctx)?;
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        model = opt.step(model, grads, 0.01);
        let _ = model.prototypes.weight.val().sum().into_scalar::<f32>();
        if i >= warmup {
            time += t.elapsed().as_secs_f64();
        }
    }
    let step_ips = (steps * batch.len()) as f64 / time;
    let sizes: Vec<String> = cfg
        .swav
        .views
        .crops
        .iter()
        .map(|c| format!("{}x{}", c.count, c.size))
        .collect();
    println!(
        "protoclust bench: {} (backbone ResNet-{} width {}, crops {}, batch {bs}, {} threads, device {})",
        path.display(),
        cfg.swav.backbone.depth,
        cfg.swav.backbone.width,
        sizes.join("+"),
        threads,
        device::describe(&dev)
    );
    println!("| what | images/s | crops/s |");
    println!("|---|---|---|");
    println!(
        "| multi-crop pipeline (protoclust) | {pipe_ips:.1} | {:.1} |",
        pipe_ips * crops as f64
    );
    println!(
        "| SwAV training step (protoclust) | {step_ips:.1} | {:.1} |",
        step_ips * crops as f64
    );
    Ok(())
}

/// Times k-means (k-means++ seeding, 20 Lloyd iterations, one restart) on N × D features drawn
/// around K random centres; `shape` is `NxDxK`.
pub fn kmeans(shape: &str) -> Result<()> {
    use protoclust_nn::cluster::{kmeans, KMeansConfig};
    use rand::{Rng, SeedableRng};
    let dims: Vec<usize> = shape
        .split('x')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--kmeans {shape}: expected NxDxK, e.g. 50000x256x1000"))?;
    let [n, d, k] = dims[..] else {
        anyhow::bail!("--kmeans {shape}: expected three numbers NxDxK");
    };
    let dev = device::select()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let centres: Vec<f32> = (0..k * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut v = Vec::with_capacity(n * d);
    for _ in 0..n {
        let c = rng.random_range(0..k);
        for j in 0..d {
            v.push(centres[c * d + j] + rng.random_range(-0.5..0.5));
        }
    }
    let x = protoclust_nn::ops::host::matrix(v, n, d, &dev);
    let cfg = KMeansConfig {
        k,
        max_iterations: 20,
        restarts: 1,
        tolerance: 0.0,
        ..Default::default()
    };
    let t = Instant::now();
    let r = kmeans(&x, &cfg)?;
    let secs = t.elapsed().as_secs_f64();
    // Seeding alone (plus one assignment): no Lloyd iteration.
    let t = Instant::now();
    let _ = kmeans(
        &x,
        &KMeansConfig {
            max_iterations: 0,
            ..cfg.clone()
        },
    )?;
    let seed_secs = t.elapsed().as_secs_f64();
    println!(
        "protoclust bench --kmeans: {n} x {d} features, K = {k}, {} threads, device {}",
        rayon::current_num_threads(),
        device::describe(&dev)
    );
    println!("| what | total s | seeding s | Lloyd iterations | s / Lloyd iteration |");
    println!("|---|---|---|---|---|");
    println!(
        "| k-means++ + Lloyd (protoclust) | {secs:.2} | {seed_secs:.2} | {} | {:.3} |",
        r.iterations,
        (secs - seed_secs).max(0.0) / r.iterations.max(1) as f64
    );
    Ok(())
}
