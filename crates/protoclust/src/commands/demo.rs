//! `protoclust demo`: SwAV on the built-in shapes data set, random init vs trained, by kNN.

use crate::config::{MonitorSection, RunConfig, TrainSection};
use crate::data_spec::{DataKind, DataSpec};
use crate::{device, runner};
use anyhow::Result;
use protoclust_data::transform::{ColorJitter, Normalize};
use protoclust_data::views::{CenterView, CropGroup, MultiCrop, Photometric};
use protoclust_methods::swav::SwavConfig;
use protoclust_methods::Method;
use protoclust_nn::backbone::ResNetConfig;
use protoclust_nn::heads::MlpConfig;
use protoclust_nn::optim::{LarsConfig, OptimConfig, OptimKind, ScheduleConfig};
use std::path::PathBuf;
use std::time::Instant;

/// The demo's configuration: a narrow ResNet-18 on 32-pixel shapes, CPU-sized.
pub fn demo_config(out: PathBuf, epochs: u64) -> RunConfig {
    let synthetic = |len, seed| DataSpec {
        kind: DataKind::Synthetic,
        len,
        size: 32,
        seed,
        ..Default::default()
    };
    let normalize = Normalize {
        mean: [0.5, 0.5, 0.5],
        std: [0.25, 0.25, 0.25],
    };
    RunConfig {
        method: "swav".into(),
        seed: 0,
        data: synthetic(2048, 0),
        loader: protoclust_data::loader::LoaderConfig {
            batch_size: 128,
            ..Default::default()
        },
        swav: SwavConfig {
            backbone: ResNetConfig {
                depth: 18,
                width: 8,
                small_stem: true,
                stem_padding: None,
                zero_init_residual: false,
            },
            // 128 prototypes (about one per sample of a batch) over a 64-d head: with 512
            // prototypes the small shapes set left most of them unused and learning stalled.
            projector: MlpConfig {
                hidden: vec![512],
                out_dim: 64,
                batch_norm: true,
            },
            prototypes: 128,
            queue_length: 0,
            // Fixed random prototypes (the SwAV paper's ablation): with learnt ones, some seeds
            // collapsed them onto each other a few epochs after the freeze ended (loss stuck at
            // ln 128, predictions uniform) and ended near their random init (docs/results.md).
            fixed_prototypes: true,
            freeze_prototypes_iterations: 0,
            views: MultiCrop {
                crops: vec![CropGroup {
                    count: 2,
                    size: 32,
                    scale: [0.3, 1.0],
                }],
                // Every shape image has its own random colours, the cue two crops of one image
                // share most: full-circle hue, strong saturation jitter and grayscale half the
                // time take it away, so shape and stripes carry the swap (docs/results.md: with
                // CIFAR-strength colour, seeds 1 and 2 ended 9 points below random init).
                // Brightness and contrast stay at CIFAR strength: ImageNet's 0.8 on 32-px
                // images drove the embeddings together within the first epoch.
                photometric: Photometric {
                    blur_p: 0.0,
                    jitter: ColorJitter {
                        brightness: 0.4,
                        contrast: 0.4,
                        saturation: 0.8,
                        hue: 0.5,
                        p: 0.8,
                    },
                    grayscale_p: 0.5,
                    normalize: normalize.clone(),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        },
        // SwAV's LARS recipe as in configs/swav_cifar10.toml (solo-learn's eta 0.02, clipped).
        optim: OptimConfig {
            kind: OptimKind::Lars,
            lr: 0.3,
            weight_decay: 1e-6,
            lars: LarsConfig {
                trust_coefficient: 0.02,
                clip: true,
                exclude_bias_and_norm: true,
                ..Default::default()
            },
            ..Default::default()
        },
        schedule: ScheduleConfig {
            warmup_epochs: 3.0,
            final_lr: 3e-4,
            ..Default::default()
        },
        train: TrainSection {
            epochs,
            run_dir: out,
            checkpoint_every_epochs: 0,
            log_every: 4,
            ..Default::default()
        },
        monitor: MonitorSection {
            every_epochs: 0,
            train: Some(synthetic(2048, 0)),
            test: Some(synthetic(768, 1)),
            knn: vec![(20, 0.07), (200, 0.1)],
            batch_size: 256,
        },
        eval_view: CenterView {
            resize: 32,
            size: 32,
            normalize,
            ..Default::default()
        },
        linear: Default::default(),
        odc: Default::default(),
        deepcluster: Default::default(),
        deepclusterv2: Default::default(),
        jigclu: Default::default(),
        slotcon: Default::default(),
    }
}

/// Runs the demo and prints where its outputs went.
pub fn run(out: PathBuf, epochs: u64, overrides: &[String]) -> Result<()> {
    let t0 = Instant::now();
    let text = toml::to_string(&demo_config(out.clone(), epochs))?;
    let cfg = crate::config::parse(&text, "demo config", overrides)?;
    let dev = device::select()?;
    let mon = runner::monitor(&RunConfig {
        monitor: MonitorSection {
            every_epochs: 1,
            ..cfg.monitor.clone()
        },
        ..cfg.clone()
    })?
    .expect("demo monitor is configured");
    eprintln!(
        "protoclust demo: SwAV, ResNet-18 (width {}, small stem) on {} synthetic 32px shapes ({} classes), {} epochs on {}",
        cfg.swav.backbone.width,
        cfg.data.len,
        protoclust_data::source::synthetic::CLASSES.len(),
        epochs,
        device::describe(&dev)
    );
    let (swav, _) = runner::build(&cfg)?;
    let random = swav.init_model(cfg.seed, &dev.clone().autodiff())?;
    let before = mon
        .evaluate(&random.backbone, &dev)
        .map_err(anyhow::Error::msg)?;
    eprintln!(
        "random-init encoder: kNN top-1 {:.2}% (held-out shapes)",
        before[0].top1
    );
    let summary = runner::run(&cfg, None, false, &dev)?;
    let after = mon
        .evaluate(&summary.model, &dev)
        .map_err(anyhow::Error::msg)?;
    let classes = mon.train.num_classes().unwrap_or(0);
    println!();
    println!("| encoder | kNN top-1 (k=20, T=0.07) | kNN top-1 (k=200, T=0.1) |");
    println!("|---|---|---|");
    println!(
        "| random init | {:.2}% | {:.2}% |",
        before[0].top1, before[1].top1
    );
    println!(
        "| SwAV, {} epochs | {:.2}% | {:.2}% |",
        summary.epochs, after[0].top1, after[1].top1
    );
    println!();
    println!(
        "chance is {:.1}%; trained in {:.0}s ({:.0}s in all).",
        100.0 / classes.max(1) as f64,
        summary.wall_seconds,
        t0.elapsed().as_secs_f64()
    );
    println!(
        "outputs: {} (checkpoint {}, metrics {}, config {})",
        out.display(),
        summary.last_checkpoint.display(),
        out.join("metrics.jsonl").display(),
        out.join("config.toml").display()
    );
    let index =
        crate::commands::report::run(&crate::commands::report::ReportArgs::quick(out.clone()))?;
    println!(
        "report (curves, cluster grids, kNN sweep, feature map): open {}",
        index.display()
    );
    Ok(())
}
