use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use t2t_models::device::Target;
use t2t_models::registry::ModelConfig;
use t2t_models::ModelError;
use t2t_train::config::{DatasetKind, OptimizerKind, Preset, TrainTransformKind};

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
    pub model_kwargs: Vec<String>,
}

impl ModelOverrides {
    /// `--model-kwargs` (the model's own settings, by name), then the
    /// image side and the classes, whose flags win.
    pub fn apply(&self, config: &mut ModelConfig) -> Result<(), ModelError> {
        config.apply_kwargs(&self.model_kwargs)?;
        config.set_size(self.img_size, self.num_classes)
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
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelFlagArgs,
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
    #[arg(long)]
    pub json: bool,
}

/// `t2t train`. Every setting left out comes from the config file (`-c`),
/// else from the preset; timm's flag names.
#[derive(Args, Debug, Serialize)]
pub struct TrainArgs {
    /// Recipe preset (builtin without data, cifar for CIFAR, imagenet for a folder).
    #[arg(long, value_enum, conflicts_with = "resume")]
    #[serde(skip)]
    pub preset: Option<Preset>,
    /// Config file (TOML or YAML) with settings under these flags' names.
    #[arg(short = 'c', long = "config", conflicts_with = "resume")]
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    /// Continue a run from its directory or checkpoint, exactly where it stopped.
    #[arg(long)]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Replace the run already in the output directory (its files are removed first).
    #[arg(long, conflicts_with = "resume")]
    #[serde(skip)]
    pub overwrite: bool,
    /// Print the result as one JSON line on stdout.
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
    /// Where to train; a run may resume on another device.
    #[command(flatten)]
    #[serde(skip)]
    pub device: DeviceArgs,

    /// Model to train (see `t2t models`); the preset's when left out.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Model settings, e.g. depth=4 drop_path_rate=0.2 (they win over --drop and --drop-path).
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_kwargs: Option<Vec<String>>,
    /// Input image side; the model's default when left out.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub img_size: Option<usize>,
    /// Classes of the head; the dataset's when left out.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<usize>,
    /// Start from these weights (any importable format).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_checkpoint: Option<PathBuf>,
    /// The dataset (its layout under --data-dir).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetKind>,
    /// Dataset root (CIFAR binary folder, or an ImageFolder with train/ and val/).
    #[arg(long, visible_alias = "data")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Split (ImageFolder subfolder) to train on.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_split: Option<String>,
    /// Split (ImageFolder subfolder) to evaluate on after every epoch.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_split: Option<String>,
    /// File with one class name per line: the label order of an ImageFolder.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_map: Option<PathBuf>,
    /// Images in the built-in dataset's train split.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthetic_train_size: Option<usize>,
    /// Images in the built-in dataset's test split.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthetic_val_size: Option<usize>,
    /// Epochs of the cosine schedule (cooldown epochs come after).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Epochs at --min-lr after the schedule.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_epochs: Option<usize>,
    /// Epochs of linear warm-up from --warmup-lr (a preset's is capped at a fifth of the run).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_epochs: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Learning rate at the end of the cosine and during cooldown.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_lr: Option<f64>,
    /// Learning rate the warm-up starts from.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_lr: Option<f64>,
    /// Decoupled weight decay (not on biases, 1-D parameters or cls_token).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// AdamW epsilon.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_eps: Option<f64>,
    /// AdamW betas.
    #[arg(long, num_args = 2)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_betas: Option<Vec<f64>>,
    /// Clip the global gradient norm (torch's clip_grad_norm_).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip_grad: Option<f64>,
    /// Images per batch of this process: a step takes batch × processes × --grad-accum-steps images.
    #[arg(short = 'b', long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Batches whose gradients are summed into one optimizer step.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_accum_steps: Option<usize>,
    /// The optimizer.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt: Option<OptimizerKind>,
    /// SGD momentum.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// Fine-tuning: learning rate of all but the head = lr x ratio.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_ratio: Option<f64>,
    /// Keep parameters whose names start with these prefixes frozen.
    #[arg(long, num_args = 1..)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze: Option<Vec<String>>,
    /// Change the learning rate once an epoch instead of every step.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_per_epoch: Option<bool>,
    /// The training augmentation.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_transform: Option<TrainTransformKind>,
    /// Zero padding of the pad_crop transform.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop_pad: Option<usize>,
    /// Normalisation mean per channel; the model's when left out.
    #[arg(long, num_args = 3)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f64>>,
    /// Normalisation standard deviation per channel; the model's when left out.
    #[arg(long, num_args = 3)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f64>>,
    /// RandomResizedCrop area range (rrc).
    #[arg(long, num_args = 2)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<Vec<f64>>,
    /// RandomResizedCrop aspect-ratio range (rrc).
    #[arg(long, num_args = 2)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Vec<f64>>,
    /// Probability of a horizontal flip (0.5 in every preset); 0 for images
    /// that are not mirror-symmetric (digits, text, some medical images).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hflip: Option<f64>,
    /// RandAugment spec, e.g. rand-m9-mstd0.5-inc1 ("" for none).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aa: Option<String>,
    /// Colour jitter strength (rrc without RandAugment; 0 for none).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color_jitter: Option<f64>,
    /// Random-erasing probability (rrc).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reprob: Option<f64>,
    /// Label smoothing.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoothing: Option<f64>,
    /// Mixup alpha (0 for none).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mixup: Option<f64>,
    /// CutMix alpha (0 for none).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cutmix: Option<f64>,
    /// Probability that a batch is mixed at all.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mixup_prob: Option<f64>,
    /// Probability of CutMix rather than mixup when both are on.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mixup_switch_prob: Option<f64>,
    /// Evaluation centre-crop fraction: resize to img_size / crop_pct, then crop; the model's when left out.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop_pct: Option<f64>,
    /// Dropout rate of the model (drop_rate).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop: Option<f64>,
    /// Stochastic-depth rate of the model (drop_path_rate).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_path: Option<f64>,
    /// Keep and evaluate an exponential moving average of the weights.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_ema: Option<bool>,
    /// EMA decay per optimizer step.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_ema_decay: Option<f64>,
    /// Ramp the EMA decay up as min(decay, (1 + t) / (10 + t)) at step t, so
    /// that short runs get a meaningful average (on in every preset).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_ema_warmup: Option<bool>,
    /// Seed of the initial weights, the data order, augmentation and dropout.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Data-loading threads.
    #[arg(short = 'j', long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Run directory (checkpoints, logs, summary.csv, curves.png).
    #[arg(short = 'o', long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
    /// Save the `last` checkpoint every N optimizer steps too.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_interval: Option<u64>,
    /// End the run after N optimizer steps in all, leaving a resumable checkpoint.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_after_steps: Option<u64>,
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
    #[arg(long, default_value = "val")]
    pub split: String,
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
    #[arg(short = 'b', long, default_value_t = 64)]
    pub batch_size: usize,
    /// Size of the built-in dataset's split (synthetic only).
    #[arg(long, default_value_t = 1000)]
    pub synthetic_size: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
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
    #[arg(long, num_args = 1.., value_name = "KEY=VALUE", requires = "model")]
    pub model_kwargs: Vec<String>,
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
    #[arg(long, default_value_t = 5)]
    pub topk: usize,
    /// Class names, one per line (default: ImageNet-1k for 1000-class models, else indices).
    #[arg(long)]
    pub class_map: Option<PathBuf>,
    /// Print CSV (file,rank,index,class,prob) instead of a table.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
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
    #[arg(short = 'b', long, default_value_t = 32)]
    pub batch_size: usize,
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
    pub other_model_kwargs: Vec<String>,
}
