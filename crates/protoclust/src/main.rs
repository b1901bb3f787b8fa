//! `protoclust`: learn visual representations from unlabelled images by clustering.

use anyhow::Result;
use clap::{Parser, Subcommand};
use protoclust::commands;
use protoclust_eval::LinearProbeConfig;
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
        /// No progress output.
        #[arg(long)]
        quiet: bool,
    },
    /// Evaluate a checkpoint or exported backbone.
    Eval {
        #[command(subcommand)]
        what: EvalCommand,
    },
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
    },
    /// Export the backbone with torchvision parameter names.
    Export {
        /// Training checkpoint.
        checkpoint: PathBuf,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Output format.
        #[arg(long, default_value = "safetensors")]
        format: String,
    },
    /// SwAV on the built-in shapes data set: random init vs trained, in a few minutes on a CPU.
    Demo {
        /// Output directory.
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
        /// Training epochs.
        #[arg(long, default_value_t = 15)]
        epochs: u64,
        /// Override a demo config value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
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
    },
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Weighted kNN on frozen, L2-normalised features.
    Knn {
        /// Checkpoint or exported backbone.
        model: PathBuf,
        /// Labelled memory bank (default: the run's monitor.train).
        #[arg(long)]
        train: Option<String>,
        /// Labelled queries (default: the run's monitor.test).
        #[arg(long)]
        test: Option<String>,
        /// Neighbour counts, paired with --t.
        #[arg(long, value_delimiter = ',', default_value = "200,20")]
        k: Vec<usize>,
        /// Temperatures, paired with --k.
        #[arg(long, value_delimiter = ',', default_value = "0.1,0.07")]
        t: Vec<f64>,
    },
    /// Unsupervised semantic segmentation: k-means on dense features, Hungarian-matched to the
    /// mask classes; mIoU, pixel accuracy and image | truth | prediction PNGs.
    Segment {
        /// Checkpoint or exported backbone (with --random-init: a config file).
        model: PathBuf,
        #[command(flatten)]
        args: commands::segment::SegmentArgs,
    },
    /// Linear classifier on frozen features.
    Linear {
        /// Checkpoint or exported backbone.
        model: PathBuf,
        /// Labelled training split (default: the run's monitor.train).
        #[arg(long)]
        train: Option<String>,
        /// Labelled test split (default: the run's monitor.test).
        #[arg(long)]
        test: Option<String>,
        /// Epochs.
        #[arg(long, default_value_t = 100)]
        epochs: usize,
        /// Learning rate.
        #[arg(long, default_value_t = 0.1)]
        lr: f64,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::Train {
            config,
            set,
            resume,
            quiet,
        } => commands::train::run(&config, &set, resume, quiet),
        Command::Eval { what } => match what {
            EvalCommand::Knn {
                model,
                train,
                test,
                k,
                t,
            } => commands::eval::knn(&model, train.as_deref(), test.as_deref(), &k, &t),
            EvalCommand::Segment { model, args } => commands::segment::run(&model, &args),
            EvalCommand::Linear {
                model,
                train,
                test,
                epochs,
                lr,
                seed,
            } => commands::eval::linear(
                &model,
                train.as_deref(),
                test.as_deref(),
                &LinearProbeConfig {
                    epochs,
                    lr,
                    seed,
                    ..Default::default()
                },
            ),
        },
        Command::Extract { model, data, out } => commands::extract::run(&model, &data, &out),
        Command::Export {
            checkpoint,
            out,
            format,
        } => commands::export::run(&checkpoint, &out, &format),
        Command::Demo { out, epochs, set } => commands::demo::run(out, epochs, &set),
        Command::Bench {
            config,
            set,
            steps,
            pipeline_batches,
            kmeans,
        } => match kmeans {
            Some(shape) => commands::bench::kmeans(&shape),
            None => commands::bench::run(&config, &set, steps, pipeline_batches),
        },
    };
    if let Err(e) = result {
        // One line: the chain of contexts, outermost first.
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
