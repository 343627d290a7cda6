use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use t2t_models::device::Target;
use t2t_models::registry::ModelConfig;
use t2t_models::{ModelError, ModelKwarg};
use t2t_train::config::{DatasetKind, TrainLayer};

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
    /// Train a model (default: a small T2T-ViT on the built-in dataset).
    Train(Box<TrainArgs>),
    /// Top-1, top-5 and loss of a checkpoint on a dataset.
    Validate(ValidateArgs),
    /// Import a checkpoint (.pth, .pth.tar, .pdparams, .safetensors) to safetensors, executing nothing.
    Convert(ConvertArgs),
    /// Classify images: top-k classes with probabilities.
    Predict(PredictArgs),
    /// Pre-logits embeddings (and chosen block outputs) of images, as safetensors with a CSV of the files.
    Embed(EmbedArgs),
    /// Pictures of what a model attends to and computes: attention rollout,
    /// per-head attention, block feature maps, FViT's additive weights.
    Visualize(Box<VisualizeArgs>),
    /// Measure throughput (median of timed runs after warm-up) and peak memory.
    Bench(BenchArgs),
    /// Write the model with its weights as an ONNX file, for ONNX Runtime and other servers.
    Export(ExportArgs),
}

/// Which model to build, named as an argument (`t2t info MODEL`).
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Registered model name (see `t2t models`).
    pub model: String,
    #[command(flatten)]
    pub overrides: ModelOverrides,
}

/// Which model to build, named by a flag (`t2t predict --model MODEL`).
#[derive(Args, Debug, Clone)]
pub struct ModelFlagArgs {
    /// Registered model name (see `t2t models`).
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub overrides: ModelOverrides,
}

/// Where a command runs.
#[derive(Args, Debug, Clone, Default)]
pub struct DeviceArgs {
    /// cpu, or gpu: the first Vulkan adapter, through burn's wgpu backend
    /// (a build with `--features t2t/gpu`).
    #[arg(
        long,
        default_value = "cpu",
        value_parser = PossibleValuesParser::new(["cpu", "gpu"])
            .map(|name| Target::parse(&name).expect("one of the listed names")),
    )]
    pub device: Target,
}

/// Changes to a model's evaluation transform.
#[derive(Args, Debug, Clone, Default)]
pub struct EvalTransformArgs {
    /// Resize to img_size / crop_pct before the centre crop.
    #[arg(long)]
    pub crop_pct: Option<f64>,
    /// Normalisation mean (default: the model's).
    #[arg(long, num_args = 3)]
    pub mean: Option<Vec<f64>>,
    /// Normalisation standard deviation (default: the model's).
    #[arg(long, num_args = 3)]
    pub std: Option<Vec<f64>>,
}

/// Changes to a registered configuration.
#[derive(Args, Debug, Clone, Default)]
pub struct ModelOverrides {
    /// Input image side; must be a multiple of the model's total stride.
    #[arg(long)]
    pub img_size: Option<usize>,
    /// Number of classes of the head.
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Overrides of the model configuration, e.g. `depth=2 embed_dim=384`.
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
    pub model_kwargs: Vec<ModelKwarg>,
}

impl ModelOverrides {
    /// `--model-kwargs` (the model's own settings, by name), then the
    /// image side and the classes, whose flags win.
    pub fn apply(&self, config: &mut ModelConfig) -> Result<(), ModelError> {
        let sizes = [
            self.img_size.map(ModelKwarg::ImgSize),
            self.num_classes.map(ModelKwarg::NumClasses),
        ];
        let kwargs: Vec<ModelKwarg> = (self.model_kwargs.iter().copied())
            .chain(sizes.into_iter().flatten())
            .collect();
        config.apply(&kwargs)
    }
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
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Weights with the official PyTorch names, in any importable format.
    #[arg(long)]
    pub weights: PathBuf,
    /// File with `__input` and reference `__*` activations (default: the weights file).
    /// Weights it carries override those of --weights.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Largest accepted absolute difference.
    #[arg(long, default_value_t = 1e-4)]
    pub atol: f64,
    /// Use the raw weights of a checkpoint that also holds EMA weights.
    #[arg(long)]
    pub no_ema: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelFlagArgs,
    /// Images per run.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// Time training steps (forward, backward, AdamW) instead of inference.
    #[arg(long)]
    pub train: bool,
    /// Untimed runs before measuring.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed runs; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

/// `t2t train`. Every setting left out comes from the config file (`-c`),
/// else from the preset; timm's flag names.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Config file (TOML or YAML) with settings under these flags' names.
    #[arg(short = 'c', long = "config", conflicts_with = "resume")]
    pub config_file: Option<PathBuf>,
    /// Continue a run from its directory or checkpoint, exactly where it stopped.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Replace the run already in the output directory (its files are removed first).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Print the result as one JSON line on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where to train; a run may resume on another device.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// The run's settings; each one left out comes from the config file, else the preset.
    #[command(flatten)]
    pub settings: TrainLayer,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub model: ModelFlagArgs,
    /// Weights to evaluate (a run's checkpoint, or any importable weights file).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The dataset (its layout under --data-dir).
    #[arg(long, value_enum, default_value_t = DatasetKind::Folder)]
    pub dataset: DatasetKind,
    /// Dataset root; for folder, the images are under DATA_DIR/SPLIT/<class>/.
    #[arg(long, visible_alias = "data")]
    pub data_dir: Option<PathBuf>,
    /// Split to evaluate: the ImageFolder subfolder, or `train`/`test` of CIFAR and the built-in set.
    #[arg(long, default_value = "val")]
    pub split: String,
    /// File with one class name per line: the label order of an ImageFolder.
    #[arg(long)]
    pub class_map: Option<PathBuf>,
    /// Evaluate the raw weights even when EMA weights are present. By
    /// default a run's checkpoint gives the weights it recorded as better.
    #[arg(long, conflicts_with = "ema")]
    pub no_ema: bool,
    /// Evaluate the EMA weights of a checkpoint; an error where there are none.
    #[arg(long)]
    pub ema: bool,
    #[command(flatten)]
    pub transform: EvalTransformArgs,
    /// Images per batch.
    #[arg(short = 'b', long, default_value_t = 64)]
    pub batch_size: usize,
    /// Size of the built-in dataset's split (synthetic only).
    #[arg(long, default_value_t = 1000)]
    pub synthetic_size: usize,
    /// Seed of the built-in dataset.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Weights (any importable format; EMA weights when present).
    #[arg(long)]
    pub weights: PathBuf,
    /// The ONNX file to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// ONNX operator set (17 to 21).
    #[arg(long, default_value_t = 17)]
    pub opset: i64,
    /// Use the raw weights of a checkpoint that also holds EMA weights.
    #[arg(long)]
    pub no_ema: bool,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Checkpoint to import.
    pub input: PathBuf,
    /// Safetensors file to write, with the official PyTorch names.
    pub output: PathBuf,
    /// Take the raw weights even when EMA weights are present.
    #[arg(long)]
    pub no_ema: bool,
    /// Check that the weights load into this model before writing.
    #[arg(long)]
    pub model: Option<String>,
    /// Overrides of the model configuration, as with every other command.
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE", requires = "model")]
    pub model_kwargs: Vec<ModelKwarg>,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

/// A model with its weights, and the images to run through its eval
/// transform (`t2t predict`, `t2t embed`).
#[derive(Args, Debug)]
pub struct ImageRunArgs {
    #[command(flatten)]
    pub model: ModelFlagArgs,
    /// Weights (any importable format; EMA weights when present).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Images, folders of images, or glob patterns.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Use the raw weights of a checkpoint that also holds EMA weights.
    #[arg(long)]
    pub no_ema: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub transform: EvalTransformArgs,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub run: ImageRunArgs,
    /// Classes listed per image.
    #[arg(long, default_value_t = 5)]
    pub topk: usize,
    /// Class names, one per line (default: ImageNet-1k for 1000-class models, else indices).
    #[arg(long)]
    pub class_map: Option<PathBuf>,
    /// Print CSV (file,rank,index,class,prob) instead of a table.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub run: ImageRunArgs,
    /// Safetensors file to write: `features` [N, tokens, C] (the final norm's
    /// output), `pre_logits` [N, C] (the head's input) and `blocks.{i}`.
    /// The file names go to the same path with the extension `.csv`.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also store the output tokens of these blocks (counted from 0), e.g. `0,3,6`.
    #[arg(long, value_delimiter = ',', value_name = "I,J,...")]
    pub layers: Vec<usize>,
    /// Images per batch.
    #[arg(short = 'b', long, default_value_t = 32)]
    pub batch_size: usize,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

/// A picture `t2t visualize` draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum VisualKind {
    /// Attention rollout over all blocks, the class token's row over the image.
    Rollout,
    /// The class token's attention to the patches, per head of one block.
    Heads,
    /// The first 64 channels of chosen blocks' tokens on the patch grid
    /// (and T2T-ViT's token maps after each soft split and T2T layer).
    Features,
    /// FViT's additive-attention weights α (queries) and β (keys) per head.
    Additive,
}

/// How `--kind rollout` merges a block's heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HeadFusionArg {
    Mean,
    Max,
    Min,
}

#[derive(Args, Debug)]
pub struct VisualizeArgs {
    #[command(flatten)]
    pub run: ImageRunArgs,
    /// Folder for the PNGs (created when missing).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Pictures to draw (default: every kind the model has).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KIND,...")]
    pub kind: Vec<VisualKind>,
    /// Rollout: the fraction of each block's lowest fused weights set to 0.
    #[arg(long, default_value_t = 0.9)]
    pub discard_ratio: f64,
    /// Rollout: how a block's heads are merged.
    #[arg(long, value_enum, default_value_t = HeadFusionArg::Mean)]
    pub head_fusion: HeadFusionArg,
    /// The block (counted from 0) of `heads` and `additive` (default: the last).
    #[arg(long)]
    pub block: Option<usize>,
    /// The blocks (counted from 0) of `features` (default: first, middle and last).
    #[arg(long, value_delimiter = ',', value_name = "I,J,...")]
    pub layers: Vec<usize>,
    /// Also write the arrays behind every picture, and each preprocessed
    /// input, to this safetensors file.
    #[arg(long, value_name = "FILE.safetensors")]
    pub save_maps: Option<PathBuf>,
    /// Another registered model whose feature maps of the same images go
    /// beside this model's, as in the paper's Figure 2.
    #[arg(long, requires = "other_checkpoint", value_name = "OTHER_MODEL")]
    pub compare: Option<String>,
    /// The weights of `--compare`'s model.
    #[arg(long, requires = "compare")]
    pub other_checkpoint: Option<PathBuf>,
    /// Overrides of `--compare`'s model configuration, as `--model-kwargs`.
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE", requires = "compare")]
    pub other_model_kwargs: Vec<ModelKwarg>,
}
