//! `protoclust bench`: images per second of a method's training step (SwAV, JigClu, SlotCon) and of its
//! augmentation pipeline; with `--kmeans`, the time of k-means on synthetic features.

use crate::config::RunConfig;
use crate::{config, device, runner};
use anyhow::Result;
use burn::tensor::Device;
use protoclust_data::loader::Loader;
use protoclust_methods::jigclu::JigClu;
use protoclust_methods::slotcon::SlotCon;
use protoclust_methods::swav::Swav;
use protoclust_methods::{Method, StepContext};
use protoclust_nn::collective::World;
use protoclust_nn::kernels::timing::{self, Kernel};
use protoclust_nn::ops::host;
use protoclust_nn::optim::loss_scale::LossScaler;
use protoclust_nn::optim::Optimizer;
use protoclust_train::engine::views_to_tensors;
use protoclust_train::step;
use std::path::Path;
use std::time::Instant;

/// Throughput of one method on one config.
struct Measured {
    pipeline_ips: f64,
    step_ips: f64,
    views: usize,
    backbone_passes: usize,
    layout: String,
    /// (images, pixels, passes) of the backbone passes with a backward, for `--ops`.
    pass_shape: (usize, usize, usize),
    /// Seconds per step in each phase.
    phases: Phases,
}

/// Seconds per training step spent in each of its phases (flex runs eagerly, so the clock
/// between phases is exact there; on lazy backends the update phase absorbs queued work).
#[derive(Debug, Clone, Copy, Default)]
struct Phases {
    forward: f64,
    backward: f64,
    update: f64,
    /// Seconds per step inside each CPU kernel ([`Kernel::ALL`] order; zeros off flex).
    kernels: [f64; Kernel::ALL.len()],
    /// Device-to-host reads per step (each one waits for the device's queue).
    host_reads: f64,
}

/// Pipeline and step throughput of `method` (steps timed after two warm-up steps).
fn measure<M: Method>(
    method: &mut M,
    loader: &Loader,
    cfg: &RunConfig,
    steps: usize,
    pipeline_batches: usize,
    ad: &Device,
) -> Result<(f64, f64, Phases)> {
    let bs = cfg.loader.batch_size;
    // Augmentation pipeline: decode + all views + photometric, in parallel.
    let order = loader.order(0);
    let n = (pipeline_batches.max(1) * bs).min(order.len());
    let t = Instant::now();
    let mut batches = Vec::new();
    for chunk in order[..n].chunks(bs) {
        batches.push(loader.load(0, chunk)?);
    }
    let pipeline_ips = n as f64 / t.elapsed().as_secs_f64();

    // Training step: forward, backward, optimiser, on a prepared batch.
    let mut model = method.init_model(cfg.seed, ad)?;
    let mut opt = Optimizer::new(cfg.optim.clone());
    let mut scaler = LossScaler::for_precision(cfg.train.precision);
    let batch = &batches[0];
    let views = views_to_tensors(batch, ad);
    let mut time = 0.0;
    let mut phases = Phases::default();
    let warmup = 2;
    for i in 0..steps + warmup {
        let ctx = StepContext {
            iteration: 1_000_000 + i as u64,
            epoch: 0,
            iters_per_epoch: 1,
            device: ad.clone(),
            seed: cfg.seed,
        };
        let in_kernels = timing::totals();
        let reads_before = host::reads();
        let t = Instant::now();
        // The training loop's own step (its one host read included), phase by phase.
        let fwd = step::forward(method, model, &views, batch, &ctx, cfg.train.precision)?;
        let t_fwd = t.elapsed().as_secs_f64();
        let grads = step::backward(
            &*method,
            &fwd.model,
            fwd.out.loss,
            scaler.as_ref(),
            &ctx,
            &World::Single,
        );
        let t_bwd = t.elapsed().as_secs_f64();
        model = step::update(
            method,
            fwd.model,
            grads,
            scaler.as_mut(),
            &mut opt,
            0.01,
            &ctx,
        )
        .0;
        // Wait for the update (lazy backends) before stopping the clock.
        let _ = M::backbone(&model)
            .conv1
            .weight
            .val()
            .sum()
            .into_scalar::<f32>();
        if i >= warmup {
            let total = t.elapsed().as_secs_f64();
            time += total;
            phases.forward += t_fwd / steps as f64;
            phases.backward += (t_bwd - t_fwd) / steps as f64;
            phases.update += (total - t_bwd) / steps as f64;
            phases.host_reads += (host::reads() - reads_before) as f64 / steps as f64;
            for (acc, (now, then)) in phases
                .kernels
                .iter_mut()
                .zip(timing::totals().iter().zip(in_kernels))
            {
                *acc += (now - then) / steps as f64;
            }
        }
    }
    Ok((pipeline_ips, (steps * batch.len()) as f64 / time, phases))
}

/// Tables `bench` prints after the step's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extra {
    /// Per-op rows of the backbone step (`--ops`).
    pub ops: bool,
    /// Per-shape rows of every convolution algorithm (`--routes`).
    pub routes: bool,
}

/// Measures and prints a table.
pub fn run(
    path: &Path,
    overrides: &[String],
    steps: usize,
    pipeline_batches: usize,
    extra: Extra,
) -> Result<()> {
    let cfg = config::load(path, overrides)?;
    let dev = device::select()?;
    let ad = dev.clone().autodiff();
    let m = match cfg.method.as_str() {
        "swav" => {
            let mut swav = Swav::new(cfg.swav.clone(), cfg.loader.batch_size);
            let loader = runner::loader_for(&cfg, &swav)?;
            let (p, s, phases) = measure(&mut swav, &loader, &cfg, steps, pipeline_batches, &ad)?;
            let sizes: Vec<String> = cfg
                .swav
                .views
                .crops
                .iter()
                .map(|c| format!("{}x{}", c.count, c.size))
                .collect();
            Measured {
                pipeline_ips: p,
                step_ips: s,
                phases,
                views: cfg.swav.views.total(),
                backbone_passes: cfg.swav.views.total(),
                layout: format!("crops {}", sizes.join("+")),
                pass_shape: cfg
                    .swav
                    .views
                    .crops
                    .first()
                    .map_or((0, 0, 0), |c| (c.count * cfg.loader.batch_size, c.size, 1)),
            }
        }
        "jigclu" => {
            let mut jig = JigClu::new(cfg.jigclu.clone());
            let loader = runner::loader_for(&cfg, &jig)?;
            let (p, s, phases) = measure(&mut jig, &loader, &cfg, steps, pipeline_batches, &ad)?;
            let v = &cfg.jigclu.views;
            Measured {
                pipeline_ips: p,
                step_ips: s,
                phases,
                views: v.count(),
                backbone_passes: 1,
                pass_shape: (cfg.loader.batch_size, v.grid * v.size, 1),
                layout: format!(
                    "{0}x{0} patches of {1} px -> one {2}-px montage per image",
                    v.grid,
                    v.size,
                    v.grid * v.size
                ),
            }
        }
        "slotcon" => {
            let mut sc = SlotCon::new(cfg.slotcon.clone(), cfg.train.epochs);
            let loader = runner::loader_for(&cfg, &sc)?;
            let (p, s, phases) = measure(&mut sc, &loader, &cfg, steps, pipeline_batches, &ad)?;
            Measured {
                pipeline_ips: p,
                step_ips: s,
                phases,
                views: 2,
                backbone_passes: 4,
                pass_shape: (cfg.loader.batch_size, cfg.slotcon.views.size, 2),
                layout: format!(
                    "2 overlapping {0}-px views, student and teacher",
                    cfg.slotcon.views.size
                ),
            }
        }
        other => anyhow::bail!(
            "bench measures the swav, jigclu and slotcon training steps; {other} needs its whole-data-set \
             pass first (time a short `train` run instead)"
        ),
    };
    let b = cfg.backbone();
    println!(
        "protoclust bench: {} ({} on ResNet-{} width {}, {}, batch {}, {} threads, device {}, precision {}, kernels' vectors {})",
        path.display(),
        cfg.method,
        b.depth,
        b.width,
        m.layout,
        cfg.loader.batch_size,
        rayon::current_num_threads(),
        device::describe(&dev),
        cfg.train.precision,
        protoclust_nn::kernels::isa::VectorWidth::current()
    );
    println!("| what | images/s | views/s | backbone passes per image |");
    println!("|---|---|---|---|");
    println!(
        "| {} augmentation pipeline (protoclust) | {:.1} | {:.1} | – |",
        cfg.method,
        m.pipeline_ips,
        m.pipeline_ips * m.views as f64
    );
    println!(
        "| {} training step (protoclust) | {:.1} | {:.1} | {} |",
        cfg.method,
        m.step_ips,
        m.step_ips * m.views as f64,
        m.backbone_passes
    );
    if let Some(mb) = peak_rss_mb() {
        println!("| peak RSS of the process (VmHWM) | {mb:.0} MB | – | – |");
    }
    print_phases(&m.phases);
    if extra.ops || extra.routes {
        let (images, size, passes) = m.pass_shape;
        #[cfg(feature = "flex")]
        {
            if extra.ops {
                println!();
                super::bench_ops::run(b, images, size, passes, 3)?;
            }
            if extra.routes {
                println!();
                super::bench_ops::routes(b, images, size, 3)?;
            }
        }
        #[cfg(not(feature = "flex"))]
        anyhow::bail!("bench --ops/--routes time the CPU kernels: build with the `flex` feature ({images} x {size} px, {passes} passes)");
    }
    Ok(())
}

/// Where a step's time goes: its phases, and the CPU kernels inside it against the rest.
fn print_phases(ph: &Phases) {
    let step = ph.forward + ph.backward + ph.update;
    println!();
    println!(
        "| step, s per step | forward + loss | backward | optimiser update | total | host reads per step |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| phases | {:.3} | {:.3} | {:.3} | {step:.3} | {} |",
        ph.forward, ph.backward, ph.update, ph.host_reads
    );
    let inside: f64 = ph.kernels.iter().sum();
    if inside == 0.0 {
        return;
    }
    println!();
    println!("| inside the step | s per step | share of the step |");
    println!("|---|---|---|");
    for (k, s) in Kernel::ALL.iter().zip(ph.kernels) {
        println!("| {} | {s:.3} | {:.1}% |", k.name(), 100.0 * s / step);
    }
    println!(
        "| everything else (autodiff, heads, loss, optimiser, pooling) | {:.3} | {:.1}% |",
        step - inside,
        100.0 * (step - inside) / step
    );
}

/// The process's peak resident set size in MB (Linux `VmHWM`), if the kernel reports it.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
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
