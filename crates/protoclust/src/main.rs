//! `protoclust`: learn visual representations from unlabelled images by clustering.

use anyhow::Result;
use clap::{Parser, Subcommand};
use protoclust::commands;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "protoclust",
    version,
    about = "Learn visual representations from unlabelled images by clustering"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a method from a TOML config.
    Train {
        /// Config file (see configs/).
        config: PathBuf,
        /// Override a config value: --set section.key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Continue from a checkpoint (default: the run directory's last checkpoint).
        #[arg(long, num_args = 0..=1, value_name = "CHECKPOINT")]
        resume: Option<Option<PathBuf>>,
        /// Start from a released checkpoint or another run's (weights, heads, prototypes;
        /// optimiser and schedule fresh): sets train.init.
        #[arg(long, value_name = "CHECKPOINT")]
        init: Option<PathBuf>,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
    },
    /// Evaluate a checkpoint or exported backbone.
    Eval {
        #[command(subcommand)]
        what: EvalCommand,
    },
    /// The cluster of every image of a data set, streamed to CSV or JSON lines.
    Assign(commands::assign::AssignArgs),
    /// Write pooled backbone features of a data set to safetensors.
    Extract {
        /// Checkpoint or exported backbone.
        model: PathBuf,
        /// Data: cifar10:FILE[,FILE] | cifar100:FILE | stl10:X[,Y] | folder:DIR | synthetic:LEN[:SIZE[:SEED]].
        #[arg(long)]
        data: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Float type of the convolutions: f32, or bf16 as PyTorch's autocast (bf16 products,
        /// f32 sums; on the CPU it needs AVX512-BF16).
        #[arg(long, default_value = "f32")]
        precision: protoclust_nn::precision::Precision,
    },
    /// Export the backbone: torchvision-named safetensors, or ONNX (images in, features out).
    Export {
        /// Training checkpoint.
        checkpoint: PathBuf,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Output format: safetensors or onnx.
        #[arg(long, default_value = "safetensors")]
        format: String,
    },
    /// Read a released checkpoint (SwAV, DeepCluster-v2, JigClu, SlotCon, mmselfsup ODC/SwAV,
    /// lightly, solo-learn or VISSL SwAV/DC-v2, or any ResNet trunk; PyTorch or safetensors)
    /// into a protoclust checkpoint.
    Import {
        /// The released file (.pth, .pth.tar, .ckpt, .torch, .safetensors).
        source: PathBuf,
        /// Output checkpoint (.safetensors).
        #[arg(long)]
        out: PathBuf,
        /// Read it as this layout instead of the one its names say (also --method).
        #[arg(long, value_enum, alias = "method")]
        release: Option<protoclust::import::Release>,
    },
    /// SwAV on the built-in shapes data set: random init vs trained, in a few minutes on a CPU.
    Demo {
        /// Output directory.
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
        /// Training epochs.
        #[arg(long, default_value_t = 25)]
        epochs: u64,
        /// Override a demo config value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Evaluate a run and write <run-dir>/report/index.html (curves, cluster grids, feature
    /// map, kNN sweep, linear probe, semi-supervised, clustering metrics, config).
    Report {
        #[command(flatten)]
        args: commands::report::ReportArgs,
    },
    /// Measure images/s of the training step and the augmentation pipeline.
    Bench {
        /// Config file.
        #[arg(default_value = "configs/swav_cifar10.toml")]
        config: PathBuf,
        /// Override a config value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Timed training steps.
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Batches through the augmentation pipeline.
        #[arg(long, default_value_t = 4)]
        pipeline_batches: usize,
        /// Instead: time k-means on N×D features into K clusters, given as NxDxK.
        #[arg(long, value_name = "NxDxK")]
        kmeans: Option<String>,
        /// Also time each op of the backbone step (conv forward, weight and input gradient,
        /// BatchNorm), the project's kernels beside burn-flex's.
        #[arg(long)]
        ops: bool,
        /// Also time every convolution shape of the backbone on each algorithm that computes
        /// it (Winograd, direct, channels-last, lowering): the measurement behind the per-shape
        /// choice.
        #[arg(long)]
        routes: bool,
        /// Instead: time pooled-feature inference (eval mode) of a ResNet with random weights
        /// (--depth, --width, --size, --batch, --batches, --path).
        #[arg(long)]
        infer: bool,
        /// ResNet depth for --infer.
        #[arg(long, default_value_t = 50)]
        depth: usize,
        /// Base width for --infer.
        #[arg(long, default_value_t = 64)]
        width: usize,
        /// Image side in pixels for --infer.
        #[arg(long, default_value_t = 224)]
        size: usize,
        /// Images per pass for --infer.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Timed passes for --infer (after one warm-up pass).
        #[arg(long, default_value_t = 3)]
        batches: usize,
        /// The network --infer runs.
        #[arg(long, value_enum, default_value = "folded")]
        path: commands::bench_infer::InferPath,
        /// Float type of the convolutions for --infer: f32, or bf16 (AVX512-BF16 on the CPU).
        #[arg(long, default_value = "f32")]
        precision: protoclust_nn::precision::Precision,
    },
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Weighted kNN on frozen, L2-normalised features (--sweep: k 1..200 × T 0.02..0.2 on
    /// backbone and head features).
    Knn {
        #[command(flatten)]
        target: commands::eval::Target,
        /// Neighbour counts, paired with --t.
        #[arg(long, value_delimiter = ',', default_value = "200,20")]
        k: Vec<usize>,
        /// Temperatures, paired with --k.
        #[arg(long, value_delimiter = ',', default_value = "0.1,0.07")]
        t: Vec<f64>,
        /// The standard sweep instead of --k/--t, on backbone and head features.
        #[arg(long)]
        sweep: bool,
    },
    /// Unsupervised semantic segmentation: k-means on dense features, Hungarian-matched to the
    /// mask classes; mIoU, pixel accuracy and image | truth | prediction PNGs.
    Segment {
        /// Checkpoint or exported backbone (with --random-init: a config file).
        model: PathBuf,
        #[command(flatten)]
        args: commands::segment::SegmentArgs,
    },
    /// Linear probe (SGD momentum 0.9, cosine, no weight decay, RandomResizedCrop + flip,
    /// lr grid chosen on a held-out 10% of the training split); top-1/top-5.
    Linear {
        #[command(flatten)]
        target: commands::eval::Target,
        #[command(flatten)]
        args: commands::eval::LinearArgs,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Fine-tune backbone + linear head on class-balanced 1% / 10% of the training labels.
    Semisup {
        #[command(flatten)]
        target: commands::eval::Target,
        #[command(flatten)]
        args: commands::eval::SemiSupArgs,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// NMI, ARI and Hungarian accuracy of the method's assignments and of k-means on features.
    Cluster {
        #[command(flatten)]
        target: commands::eval::Target,
        /// Seed of k-means.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Everything: kNN sweeps, clustering metrics, linear probe, semi-supervised.
    All {
        #[command(flatten)]
        target: commands::eval::Target,
        #[command(flatten)]
        linear: commands::eval::LinearArgs,
        #[command(flatten)]
        semisup: commands::eval::SemiSupArgs,
        /// Skip the linear probe.
        #[arg(long)]
        no_linear: bool,
        /// Skip the semi-supervised runs.
        #[arg(long)]
        no_semisup: bool,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn main() {
    protoclust::allocator::keep_freed_blocks();
    let cli = Cli::parse();
    let choices = [
        protoclust_nn::kernels::KernelChoice::from_env().err(),
        protoclust_nn::kernels::ConvAlgorithm::from_env().err(),
        protoclust_nn::kernels::isa::VectorWidth::from_env().err(),
    ];
    if let Some(e) = choices.into_iter().flatten().next() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    let result: Result<()> = match cli.command {
        Command::Train {
            config,
            set,
            resume,
            init,
            quiet,
        } => commands::train::run(&config, &set, resume, init, quiet),
        Command::Eval { what } => match what {
            EvalCommand::Knn {
                target,
                k,
                t,
                sweep,
            } => commands::eval::knn(&target, &k, &t, sweep),
            EvalCommand::Segment { model, args } => commands::segment::run(&model, &args),
            EvalCommand::Linear { target, args, seed } => {
                commands::eval::linear(&target, &args, seed)
            }
            EvalCommand::Semisup { target, args, seed } => {
                commands::eval::semisup(&target, &args, seed)
            }
            EvalCommand::Cluster { target, seed } => commands::eval::cluster(&target, seed),
            EvalCommand::All {
                target,
                linear,
                semisup,
                no_linear,
                no_semisup,
                seed,
            } => commands::eval::all(
                &target,
                (!no_linear).then_some(&linear),
                (!no_semisup).then_some(&semisup),
                seed,
            ),
        },
        Command::Assign(args) => commands::assign::run(&args).map(|(rows, used)| {
            println!(
                "assign: {rows} images into {used} clusters: {}",
                args.out.display()
            );
        }),
        Command::Extract {
            model,
            data,
            out,
            precision,
        } => commands::extract::run(&model, &data, &out, precision),
        Command::Export {
            checkpoint,
            out,
            format,
        } => commands::export::run(&checkpoint, &out, &format),
        Command::Import {
            source,
            out,
            release,
        } => commands::import::run(&source, &out, release),
        Command::Report { args } => commands::report::run(&args).map(|index| {
            println!("report: {}", index.display());
        }),
        Command::Demo { out, epochs, set } => commands::demo::run(out, epochs, &set),
        Command::Bench {
            config,
            set,
            steps,
            pipeline_batches,
            kmeans,
            ops,
            routes,
            infer,
            depth,
            width,
            size,
            batch,
            batches,
            path,
            precision,
        } => match kmeans {
            Some(shape) => commands::bench::kmeans(&shape),
            None if infer => commands::bench_infer::run(
                commands::bench_infer::InferShape {
                    depth,
                    width,
                    size,
                    batch,
                    batches,
                },
                path,
                precision,
            ),
            None => commands::bench::run(
                &config,
                &set,
                steps,
                pipeline_batches,
                commands::bench::Extra { ops, routes },
            ),
        },
    };
    if let Err(e) = result {
        eprintln!("error: {}", protoclust::error_line(&e));
        std::process::exit(1);
    }
}
