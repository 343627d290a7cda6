use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "t2t",
    version,
    about = "Tokens-to-Token ViT: train, evaluate, inspect, verify"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List registered models with their parameter and MAC counts.
    Models(ModelsArgs),
    /// Complexity report: parameters and MACs per stage, under both conventions.
    Info(InfoArgs),
    /// Run reference inputs through a model and compare with reference activations.
    Verify(VerifyArgs),
    /// Measure throughput (median of timed runs after warm-up) and peak memory.
    Bench(BenchArgs),
}

/// Which model to build.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Registered model name (see `t2t models`).
    pub model: String,
    /// Input image side; must be a multiple of the model's total stride.
    #[arg(long)]
    pub img_size: Option<usize>,
    /// Number of classes of the head.
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Overrides of the model configuration, e.g. `depth=2 embed_dim=384`.
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
    pub model_kwargs: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ModelsArgs {
    /// Only names matching this glob (`*` and `?`).
    #[arg(long)]
    pub filter: Option<String>,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Weights with the official PyTorch names.
    #[arg(long)]
    pub weights: PathBuf,
    /// File with `__input` and reference `__*` activations (default: the weights file).
    /// Weights it carries override those of --weights.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Largest accepted absolute difference.
    #[arg(long, default_value_t = 1e-4)]
    pub atol: f64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// Untimed runs before measuring.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed runs; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    #[arg(long)]
    pub json: bool,
}
