//! `protoclust bench`: images per second of the SwAV training step and of the multi-crop pipeline.

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
