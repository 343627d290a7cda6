//! The resolved configuration of a training run, with timm's flag names.
//!
//! A run's settings come from, in increasing priority: the recipe preset,
//! a config file (`-c`, TOML or YAML), and command-line flags. The resolved
//! result is saved as `config.toml` in the output directory.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use t2t_data::transforms::{EvalTransform, RandAugment};
use t2t_models::registry::{DataConfig, CIFAR_MEAN, CIFAR_STD};

use crate::optim::{AdamWConfig, OptimizerConfig, SgdConfig};
use crate::trainer::Recipe;
use crate::TrainError;

/// Which images to train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// The built-in generated texture set (no files).
    Synthetic,
    /// CIFAR-10 in its binary layout.
    Cifar10,
    /// CIFAR-100 in its binary layout.
    Cifar100,
    /// `root/{train,val}/<class>/*.jpg`.
    Folder,
}

/// The recipe a run's defaults come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The default run: a small T2T-ViT on the built-in textures.
    Builtin,
    /// 32×32 from scratch.
    Cifar,
    /// The paper's ImageNet recipe.
    Imagenet,
    /// The official CIFAR fine-tuning script.
    Transfer,
}

/// The optimizer of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW with timm's parameter groups.
    Adamw,
    /// SGD with momentum, decay on everything.
    Sgd,
}

/// The training augmentation of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TrainTransformKind {
    /// CIFAR style: zero-pad, random crop, flip.
    #[value(name = "pad_crop")]
    PadCrop,
    /// RandomResizedCrop, flip, RandAugment, random erasing (the ImageNet recipe).
    Rrc,
}

/// The command-line name of a closed choice, as `config.toml` writes it too.
pub fn choice_name(choice: impl ValueEnum) -> String {
    choice
        .to_possible_value()
        .expect("no choice is hidden")
        .get_name()
        .to_string()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Recipe preset the defaults came from.
    pub preset: Preset,
    pub model: String,
    pub model_kwargs: Vec<String>,
    pub img_size: Option<usize>,
    pub num_classes: Option<usize>,
    pub initial_checkpoint: Option<PathBuf>,

    pub dataset: DatasetKind,
    pub data_dir: Option<PathBuf>,
    pub train_split: String,
    pub val_split: String,
    pub class_map: Option<PathBuf>,
    /// Sizes of the built-in dataset's splits.
    pub synthetic_train_size: usize,
    pub synthetic_val_size: usize,

    pub epochs: usize,
    pub cooldown_epochs: usize,
    pub warmup_epochs: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_lr: f64,
    pub weight_decay: f64,
    pub opt_eps: f64,
    pub opt_betas: [f64; 2],
    pub clip_grad: Option<f64>,
    pub batch_size: usize,
    pub grad_accum_steps: usize,
    pub opt: OptimizerKind,
    pub momentum: f64,
    /// Fine-tuning: the learning rate of all but the head is `lr × transfer_ratio`.
    pub transfer_ratio: Option<f64>,
    /// Keys (prefixes) of parameters to keep frozen, e.g. `tokens_to_token` or `blocks.0.`.
    pub freeze: Vec<String>,
    /// Change the learning rate once an epoch (PyTorch's `CosineAnnealingLR`).
    pub lr_per_epoch: bool,

    pub train_transform: TrainTransformKind,
    /// Zero padding of `pad_crop` (4 at 32×32; the transfer recipe pads 224 by 28).
    pub crop_pad: usize,
    /// Normalisation; the model's own statistics when unset.
    pub mean: Option<[f64; 3]>,
    pub std: Option<[f64; 3]>,
    pub scale: [f64; 2],
    pub ratio: [f64; 2],
    pub hflip: f64,
    /// RandAugment spec (timm's `--aa`), e.g. `rand-m9-mstd0.5-inc1`; empty for none.
    pub aa: String,
    pub color_jitter: f64,
    pub reprob: f64,
    pub smoothing: f64,
    pub mixup: f64,
    pub cutmix: f64,
    pub mixup_prob: f64,
    pub mixup_switch_prob: f64,
    pub crop_pct: Option<f64>,

    pub drop: f64,
    pub drop_path: f64,
    pub model_ema: bool,
    pub model_ema_decay: f64,
    /// Ramp the EMA decay up as `min(decay, (1 + t) / (10 + t))` at step `t`
    /// (timm's `--model-ema-warmup`). Absent from runs made before it existed,
    /// which averaged without it.
    #[serde(default)]
    pub model_ema_warmup: bool,

    pub seed: u64,
    pub workers: usize,
    pub output: PathBuf,
    pub recovery_interval: Option<u64>,
    pub stop_after_steps: Option<u64>,
    /// Where each setting came from: `preset NAME`, `file PATH` or `flag`
    /// (absent from runs made before it was recorded).
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
}

/// Bounds that keep step counts and sizes far from overflow and from
/// allocations no machine can make; real runs stay orders of magnitude below.
const MAX_EPOCHS: usize = 1_000_000;
const MAX_BATCH: usize = 1 << 16;
const MAX_IMAGE_SIDE: usize = 1 << 14;
const MAX_WORKERS: usize = 1024;

/// `Err` naming `flag` and its `value` unless `valid`; `range` says what is.
fn check(
    flag: &str,
    value: impl std::fmt::Debug,
    valid: bool,
    range: impl FnOnce() -> String,
) -> Result<(), TrainError> {
    if valid {
        return Ok(());
    }
    Err(TrainError::Config(format!(
        "{flag} {value:?}: must be {}",
        range()
    )))
}

/// The settings of a preset for `model`, as a JSON object to overlay.
pub fn preset(name: Preset, model: &str) -> Value {
    let common = json!({
        "preset": name, "model": model, "model_kwargs": [], "img_size": null, "num_classes": null,
        "initial_checkpoint": null, "data_dir": null, "train_split": "train", "val_split": "val",
        "class_map": null, "synthetic_train_size": 6000, "synthetic_val_size": 1000,
        "min_lr": 1e-5, "warmup_lr": 1e-6, "opt_eps": 1e-8, "opt_betas": [0.9, 0.999],
        "clip_grad": null, "grad_accum_steps": 1, "opt": "adamw", "momentum": 0.9,
        "transfer_ratio": null, "freeze": [], "lr_per_epoch": false, "crop_pad": 4, "mean": null, "std": null, "scale": [0.08, 1.0], "ratio": [0.75, 4.0 / 3.0],
        "hflip": 0.5, "color_jitter": 0.4, "mixup_prob": 1.0, "mixup_switch_prob": 0.5,
        "crop_pct": null, "drop": 0.0, "model_ema_warmup": true, "seed": 42, "workers": 2, "output": "output/train",
        "recovery_interval": null, "stop_after_steps": null,
    });
    let specific = match name {
        // The default run: a small T2T-ViT learns the built-in textures in minutes on 2 cores.
        // No flips: a flipped `diagonal` texture is an `antidiagonal` one.
        Preset::Builtin => json!({
            "dataset": "synthetic", "epochs": 10, "cooldown_epochs": 0, "warmup_epochs": 1, "hflip": 0.0,
            "synthetic_train_size": 3072, "synthetic_val_size": 512,
            "lr": 2e-3, "weight_decay": 0.05, "batch_size": 64, "train_transform": "pad_crop",
            "aa": "", "reprob": 0.0, "smoothing": 0.1, "mixup": 0.0, "cutmix": 0.0,
            "drop_path": 0.0, "model_ema": true, "model_ema_decay": 0.98, "val_split": "test",
        }),
        // From scratch on CIFAR at 32x32 (ours; see README).
        Preset::Cifar => json!({
            "dataset": "cifar10", "epochs": 200, "cooldown_epochs": 0, "warmup_epochs": 5,
            "lr": 1e-3, "weight_decay": 0.05, "batch_size": 128, "train_transform": "pad_crop",
            "aa": "", "reprob": 0.0, "smoothing": 0.1, "mixup": 0.0,
            "cutmix": 0.0, "drop_path": 0.1, "model_ema": true, "model_ema_decay": 0.9998,
            "val_split": "test",
        }),
        // The paper's ImageNet recipe (REFERENCE.md §2.1): batch 512 as 64 x 8 accumulation.
        Preset::Imagenet => {
            let (lr, weight_decay) = imagenet_lr_wd(model);
            json!({
                "dataset": "folder", "epochs": 300, "cooldown_epochs": 10, "warmup_epochs": 10,
                "lr": lr, "weight_decay": weight_decay, "batch_size": 64, "grad_accum_steps": 8,
                "train_transform": "rrc", "aa": "rand-m9-mstd0.5-inc1", "reprob": 0.25,
                "smoothing": 0.1, "mixup": 0.8, "cutmix": 1.0, "drop_path": 0.1,
                "model_ema": true, "model_ema_decay": 0.99996,
            })
        }
        // The official CIFAR fine-tuning (`transfer_learning.py`, REFERENCE.md §2.2):
        // 32x32 upsampled to 224, SGD, head lr 0.05 and backbone 0.01x, cosine per
        // epoch to 2e-4 over 60 epochs, plain cross entropy, CIFAR statistics. The
        // script leaves cls_token and the final norm out of every group: frozen.
        Preset::Transfer => json!({
            "dataset": "cifar10", "img_size": 224, "epochs": 60, "cooldown_epochs": 0,
            "warmup_epochs": 0, "lr": 0.05, "warmup_lr": 0.05, "min_lr": 2e-4,
            "lr_per_epoch": true, "opt": "sgd", "momentum": 0.9, "weight_decay": 5e-4,
            "transfer_ratio": 0.01, "freeze": ["cls_token", "norm."], "batch_size": 64,
            "train_transform": "pad_crop", "crop_pad": 28, "aa": "", "reprob": 0.0,
            "smoothing": 0.0, "mixup": 0.0, "cutmix": 0.0, "drop_path": 0.1, "crop_pct": 1.0,
            "model_ema": false, "model_ema_decay": 0.9998, "val_split": "test",
            "mean": CIFAR_MEAN, "std": CIFAR_STD,
        }),
    };
    overlay(common, specific)
}

/// The largest share of a run's epochs that a preset's warm-up takes: a
/// 5-epoch warm-up written for 200 epochs would be a third of a 15-epoch run.
pub const MAX_WARMUP_FRACTION: f64 = 0.2;

/// Refuses a closed-choice setting that holds none of its choices, naming
/// its flag and the choices; serde's own error would name neither.
fn check_choices(settings: &Value) -> Result<(), TrainError> {
    fn one<T: ValueEnum + DeserializeOwned>(settings: &Value, key: &str) -> Result<(), TrainError> {
        let Some(given) = settings.get(key) else {
            return Ok(());
        };
        if serde_json::from_value::<T>(given.clone()).is_ok() {
            return Ok(());
        }
        let choices: Vec<String> = T::value_variants()
            .iter()
            .map(|c| choice_name(c.clone()))
            .collect();
        Err(TrainError::Config(format!(
            "--{} {given}: must be one of {}",
            key.replace('_', "-"),
            choices.join(", ")
        )))
    }
    one::<Preset>(settings, "preset")?;
    one::<DatasetKind>(settings, "dataset")?;
    one::<OptimizerKind>(settings, "opt")?;
    one::<TrainTransformKind>(settings, "train_transform")
}

/// A preset's warm-up epochs for a run of `epochs`, at most.
fn max_preset_warmup(epochs: usize) -> usize {
    (epochs as f64 * MAX_WARMUP_FRACTION).floor() as usize
}

/// Learning rate and weight decay of the T2T-ViT ImageNet recipe by model size.
fn imagenet_lr_wd(model: &str) -> (f64, f64) {
    let size = model
        .trim_start_matches("t2t_vit_")
        .trim_start_matches("t_");
    match size.split('_').next().unwrap_or("") {
        "7" | "10" | "12" => (1e-3, 0.03),
        "14" => (5e-4, 0.05),
        "19" | "24" => (5e-4, 0.065),
        _ => (5e-4, 0.05),
    }
}

/// `base` with every key of `top` replaced (objects are not merged deeper).
pub fn overlay(mut base: Value, top: Value) -> Value {
    if let (Some(base_map), Value::Object(top_map)) = (base.as_object_mut(), top) {
        for (key, value) in top_map {
            base_map.insert(key, value);
        }
    }
    base
}

/// The largest config file read. A real one holds a few dozen settings (a
/// few KiB); the cap keeps a hostile file from costing memory or parse time.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The deepest nesting a YAML config may have. Settings are at most a list
/// deep; the YAML parser takes quadratic time in the depth, so a hostile
/// file is refused before it reaches the parser.
const MAX_YAML_DEPTH: usize = 64;

/// Reads a TOML or YAML config file (by extension) as a JSON object.
pub fn read_config_file(path: &Path) -> Result<Value, TrainError> {
    let text = read_bounded(path)?;
    let bad = |e: String| {
        TrainError::Config(format!(
            "{}: {}",
            path.display(),
            e.lines().next().unwrap_or("")
        ))
    };
    let value: Value = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => toml::from_str(&text).map_err(|e| bad(e.to_string()))?,
        Some("yaml" | "yml") => {
            let depth = yaml_depth_bound(&text);
            if depth > MAX_YAML_DEPTH {
                return Err(bad(format!(
                    "nested about {depth} levels deep; a config nests at most {MAX_YAML_DEPTH}"
                )));
            }
            serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?
        }
        _ => {
            return Err(TrainError::Config(format!(
                "{}: config files are .toml, .yaml or .yml",
                path.display()
            )))
        }
    };
    match value {
        // timm's args.yaml spells flags with dashes or underscores.
        Value::Object(map) => Ok(Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.replace('-', "_"), v))
                .collect::<Map<_, _>>(),
        )),
        _ => Err(bad("not a table of settings".to_string())),
    }
}

/// The text of a config file, refused past [`MAX_CONFIG_BYTES`] without
/// reading more than that.
fn read_bounded(path: &Path) -> Result<String, TrainError> {
    let file = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| TrainError::io(path, e))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(TrainError::Config(format!(
            "{}: larger than {} KiB; a config file holds a few settings",
            path.display(),
            MAX_CONFIG_BYTES >> 10
        )));
    }
    Ok(text)
}

/// An upper bound of the nesting depth of YAML `text`, in one pass: on each
/// line, the indentation (every block level indents by at least a column),
/// the block indicators (`- `, `? `) that open compact nested collections,
/// and the flow brackets still open. Brackets inside quoted strings count
/// too, which can only overestimate.
fn yaml_depth_bound(text: &str) -> usize {
    let mut open_brackets = 0usize;
    let mut deepest = 0;
    for line in text.lines() {
        let content = line.trim_start_matches([' ', '\t']);
        if content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        let mut rest = content;
        let mut indicators = 0;
        while let Some(after) = ["-", "?"].iter().find_map(|i| {
            rest.strip_prefix(i)
                .filter(|a| a.is_empty() || a.starts_with([' ', '\t']))
        }) {
            indicators += 1;
            rest = after.trim_start_matches([' ', '\t']);
        }
        let mut line_brackets = open_brackets;
        for c in rest.chars() {
            match c {
                '[' | '{' => {
                    open_brackets += 1;
                    line_brackets = line_brackets.max(open_brackets);
                }
                ']' | '}' => open_brackets = open_brackets.saturating_sub(1),
                _ => {}
            }
        }
        deepest = deepest.max(indent + indicators + line_brackets);
    }
    deepest
}

impl TrainConfig {
    /// Preset, then file, then flags. A preset's warm-up is capped to
    /// [`MAX_WARMUP_FRACTION`] of the run's epochs; one given in the file or
    /// the flags is kept as given.
    pub fn resolve(
        preset_name: Preset,
        model: &str,
        file: Option<&Path>,
        flags: Value,
    ) -> Result<Self, TrainError> {
        let mut value = preset(preset_name, model);
        let mut sources = BTreeMap::new();
        let mut record = |layer: &Value, source: &str| {
            if let Value::Object(settings) = layer {
                for key in settings.keys().filter(|k| *k != "sources") {
                    sources.insert(key.clone(), source.to_string());
                }
            }
        };
        record(&value, &format!("preset {}", choice_name(preset_name)));
        let mut saved_sources = None;
        if let Some(file) = file {
            let settings = read_config_file(file)?;
            record(&settings, &format!("file {}", file.display()));
            // A run's own config.toml says where its settings first came from.
            saved_sources = settings.get("sources").cloned();
            value = overlay(value, settings);
        }
        record(&flags, "flag");
        value = overlay(value, flags);
        check_choices(&value)?;
        let mut config: Self = serde_json::from_value(value)
            .map_err(|e| TrainError::Config(format!("config: {e}")))?;
        config.sources = match saved_sources {
            Some(saved) => serde_json::from_value(saved)
                .map_err(|e| TrainError::Config(format!("config: sources: {e}")))?,
            None => sources,
        };
        if config.sources["warmup_epochs"].starts_with("preset") {
            let capped = config.warmup_epochs.min(max_preset_warmup(config.epochs));
            if capped != config.warmup_epochs {
                config.warmup_epochs = capped;
                let source = config.sources.entry("warmup_epochs".into()).or_default();
                source.push_str(", capped to a fifth of the epochs");
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Refuses settings that have no meaning, naming the flag and its valid
    /// range. Runs on every resolved configuration, a resumed run's included.
    pub fn validate(&self) -> Result<(), TrainError> {
        let Self {
            preset: _,
            model: _,
            model_kwargs: _,
            img_size,
            num_classes,
            initial_checkpoint: _,
            dataset,
            data_dir: _,
            train_split: _,
            val_split: _,
            class_map: _,
            synthetic_train_size,
            synthetic_val_size,
            epochs,
            cooldown_epochs,
            warmup_epochs,
            lr,
            min_lr,
            warmup_lr,
            weight_decay,
            opt_eps,
            opt_betas,
            clip_grad,
            batch_size,
            grad_accum_steps,
            opt: _,
            momentum,
            transfer_ratio,
            freeze: _,
            lr_per_epoch: _,
            train_transform: _,
            crop_pad,
            mean,
            std,
            scale,
            ratio,
            hflip,
            aa,
            color_jitter,
            reprob,
            smoothing,
            mixup,
            cutmix,
            mixup_prob,
            mixup_switch_prob,
            crop_pct,
            drop,
            drop_path,
            model_ema: _,
            model_ema_decay,
            model_ema_warmup: _,
            seed: _,
            workers,
            output: _,
            recovery_interval,
            stop_after_steps,
            sources: _,
        } = self;
        let counts = [
            ("--epochs", *epochs, 1, MAX_EPOCHS),
            ("--cooldown-epochs", *cooldown_epochs, 0, MAX_EPOCHS),
            ("--warmup-epochs", *warmup_epochs, 0, MAX_EPOCHS),
            ("--batch-size", *batch_size, 1, MAX_BATCH),
            ("--grad-accum-steps", *grad_accum_steps, 1, MAX_BATCH),
            ("--crop-pad", *crop_pad, 0, MAX_IMAGE_SIDE),
            ("--workers", *workers, 0, MAX_WORKERS),
            ("--img-size", img_size.unwrap_or(1), 1, MAX_IMAGE_SIDE),
        ];
        for (flag, value, low, high) in counts {
            check(flag, value, (low..=high).contains(&value), || {
                format!("in [{low}, {high}]")
            })?;
        }
        if let Some(classes) = num_classes {
            check("--num-classes", classes, *classes >= 1, || {
                "at least 1".into()
            })?;
        }
        if *dataset == DatasetKind::Synthetic {
            for (flag, size) in [
                ("--synthetic-train-size", synthetic_train_size),
                ("--synthetic-val-size", synthetic_val_size),
            ] {
                check(flag, size, *size >= 1, || "at least 1".into())?;
            }
        }
        for (flag, steps) in [
            ("--recovery-interval", recovery_interval),
            ("--stop-after-steps", stop_after_steps),
        ] {
            if let Some(steps) = steps {
                check(flag, steps, *steps >= 1, || "at least 1".into())?;
            }
        }

        let positive = [
            ("--lr", Some(*lr)),
            ("--opt-eps", Some(*opt_eps)),
            ("--clip-grad", *clip_grad),
        ];
        for (flag, value) in positive {
            if let Some(value) = value {
                check(flag, value, value.is_finite() && value > 0.0, || {
                    "a finite number > 0".into()
                })?;
            }
        }
        let non_negative = [
            ("--min-lr", Some(*min_lr)),
            ("--warmup-lr", Some(*warmup_lr)),
            ("--weight-decay", Some(*weight_decay)),
            ("--transfer-ratio", *transfer_ratio),
            ("--color-jitter", Some(*color_jitter)),
            ("--mixup", Some(*mixup)),
            ("--cutmix", Some(*cutmix)),
        ];
        for (flag, value) in non_negative {
            if let Some(value) = value {
                check(flag, value, value.is_finite() && value >= 0.0, || {
                    "a finite number >= 0".into()
                })?;
            }
        }
        let closed_unit = [
            ("--hflip", *hflip),
            ("--reprob", *reprob),
            ("--mixup-prob", *mixup_prob),
            ("--mixup-switch-prob", *mixup_switch_prob),
            ("--model-ema-decay", *model_ema_decay),
        ];
        for (flag, value) in closed_unit {
            check(flag, value, (0.0..=1.0).contains(&value), || {
                "in [0, 1]".into()
            })?;
        }
        // A value of 1 would drop everything, smooth every label away or
        // freeze the moments.
        let half_open_unit = [
            ("--smoothing", *smoothing),
            ("--drop", *drop),
            ("--drop-path", *drop_path),
            ("--momentum", *momentum),
            ("--opt-betas (first)", opt_betas[0]),
            ("--opt-betas (second)", opt_betas[1]),
        ];
        for (flag, value) in half_open_unit {
            check(flag, value, (0.0..1.0).contains(&value), || {
                "in [0, 1)".into()
            })?;
        }
        if let Some(crop_pct) = crop_pct {
            // The bound of the evaluation transform that will use it.
            let lowest = EvalTransform::MIN_CROP_PCT;
            check(
                "--crop-pct",
                crop_pct,
                (lowest..=1.0).contains(crop_pct),
                || format!("in [{lowest}, 1]"),
            )?;
        }
        check(
            "--scale",
            scale,
            0.0 < scale[0] && scale[0] <= scale[1] && scale[1] <= 1.0,
            || "two numbers with 0 < min <= max <= 1".into(),
        )?;
        check(
            "--ratio",
            ratio,
            0.0 < ratio[0] && ratio[0] <= ratio[1] && ratio[1].is_finite(),
            || "two finite numbers with 0 < min <= max".into(),
        )?;
        if let Some(mean) = mean {
            check("--mean", mean, mean.iter().all(|m| m.is_finite()), || {
                "three finite numbers".into()
            })?;
        }
        if let Some(std) = std {
            check(
                "--std",
                std,
                std.iter().all(|s| s.is_finite() && *s > 0.0),
                || "three finite numbers > 0".into(),
            )?;
        }
        if !aa.is_empty() {
            RandAugment::parse(aa)?;
        }
        Ok(())
    }

    /// The model's data settings with this run's `mean`, `std` and `crop_pct`.
    pub fn data_config(&self, model: &DataConfig) -> DataConfig {
        model.with_overrides(self.mean, self.std, self.crop_pct)
    }

    /// The recipe knobs of the training loop.
    pub fn recipe(&self) -> Recipe {
        Recipe {
            epochs: self.epochs,
            cooldown_epochs: self.cooldown_epochs,
            warmup_epochs: self.warmup_epochs,
            lr: self.lr,
            min_lr: self.min_lr,
            warmup_lr: self.warmup_lr,
            optim: match self.opt {
                OptimizerKind::Adamw => OptimizerConfig::AdamW(AdamWConfig {
                    betas: (self.opt_betas[0], self.opt_betas[1]),
                    eps: self.opt_eps,
                    weight_decay: self.weight_decay,
                }),
                OptimizerKind::Sgd => OptimizerConfig::Sgd(SgdConfig {
                    momentum: self.momentum,
                    weight_decay: self.weight_decay,
                }),
            },
            transfer_ratio: self.transfer_ratio,
            freeze: self.freeze.clone(),
            lr_per_epoch: self.lr_per_epoch,
            grad_accum_steps: self.grad_accum_steps,
            clip_grad: self.clip_grad,
            model_ema_decay: self.model_ema.then_some(self.model_ema_decay),
            model_ema_warmup: self.model_ema_warmup,
            seed: self.seed,
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_resolve_and_flags_win() {
        let c = TrainConfig::resolve(Preset::Imagenet, "t2t_vit_14", None, json!({"lr": 1e-3}))
            .unwrap();
        assert_eq!(
            (c.lr, c.weight_decay, c.epochs, c.cooldown_epochs),
            (1e-3, 0.05, 300, 10)
        );
        assert_eq!(c.batch_size * c.grad_accum_steps, 512);
        assert_eq!(c.model_ema_decay, 0.99996);
        let c = TrainConfig::resolve(Preset::Imagenet, "t2t_vit_t_24", None, json!({})).unwrap();
        assert_eq!((c.lr, c.weight_decay), (5e-4, 0.065));
        let c = TrainConfig::resolve(Preset::Imagenet, "t2t_vit_7", None, json!({})).unwrap();
        assert_eq!((c.lr, c.weight_decay), (1e-3, 0.03));
    }

    #[test]
    fn the_builtin_preset_keeps_mirror_image_classes_apart() {
        let c =
            TrainConfig::resolve(Preset::Builtin, "t2t_vit_lite_cifar", None, json!({})).unwrap();
        assert_eq!(c.hflip, 0.0);
        let c = TrainConfig::resolve(Preset::Cifar, "t2t_vit_7_cifar", None, json!({})).unwrap();
        assert_eq!(c.hflip, 0.5);
    }

    #[test]
    fn transfer_preset_follows_the_official_script() {
        let c = TrainConfig::resolve(Preset::Transfer, "t2t_vit_14", None, json!({})).unwrap();
        assert_eq!(
            (c.opt, c.lr, c.weight_decay, c.momentum),
            (OptimizerKind::Sgd, 0.05, 5e-4, 0.9)
        );
        assert_eq!(
            (c.transfer_ratio, c.epochs, c.min_lr, c.lr_per_epoch),
            (Some(0.01), 60, 2e-4, true)
        );
        assert_eq!(
            (c.img_size, c.crop_pad, c.batch_size, c.smoothing),
            (Some(224), 28, 64, 0.0)
        );
        assert_eq!(c.freeze, ["cls_token", "norm."]);
    }

    #[test]
    fn the_resolved_config_says_where_each_setting_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.yaml");
        std::fs::write(&file, "lr: 0.002\nsmoothing: 0.2\n").unwrap();
        let flags = json!({"smoothing": 0.3, "epochs": 15});
        let c = TrainConfig::resolve(Preset::Cifar, "t2t_vit_7_cifar", Some(&file), flags).unwrap();
        let source = |key: &str| c.sources[key].as_str();
        assert_eq!(source("weight_decay"), "preset cifar");
        assert_eq!(source("lr"), format!("file {}", file.display()));
        assert_eq!((source("smoothing"), c.smoothing), ("flag", 0.3));
        assert_eq!(source("epochs"), "flag");
        assert_eq!(
            (source("warmup_epochs"), c.warmup_epochs),
            ("preset cifar, capped to a fifth of the epochs", 3)
        );
        // A run's config.toml keeps its sources when it is read back.
        let saved = dir.path().join("config.toml");
        std::fs::write(&saved, c.to_toml()).unwrap();
        let again = TrainConfig::resolve(Preset::Builtin, "", Some(&saved), json!({})).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn preset_warmup_is_capped_to_a_fifth_of_the_run_unless_given() {
        let c = TrainConfig::resolve(Preset::Cifar, "t2t_vit_7_cifar", None, json!({})).unwrap();
        assert_eq!(
            (c.epochs, c.warmup_epochs, c.model_ema_warmup),
            (200, 5, true)
        );
        let c = TrainConfig::resolve(
            Preset::Cifar,
            "t2t_vit_7_cifar",
            None,
            json!({"epochs": 15}),
        )
        .unwrap();
        assert_eq!(c.warmup_epochs, 3);
        let c = TrainConfig::resolve(Preset::Cifar, "t2t_vit_7_cifar", None, json!({"epochs": 4}))
            .unwrap();
        assert_eq!(c.warmup_epochs, 0);
        let given = json!({"epochs": 15, "warmup_epochs": 5});
        let c = TrainConfig::resolve(Preset::Cifar, "t2t_vit_7_cifar", None, given).unwrap();
        assert_eq!(c.warmup_epochs, 5);
    }

    #[test]
    fn config_files_overlay_the_preset_and_typos_are_errors() {
        let dir = std::env::temp_dir().join(format!("t2t-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml_file = dir.join("run.toml");
        std::fs::write(&toml_file, "epochs = 3\nlr = 0.01\n").unwrap();
        let c = TrainConfig::resolve(
            Preset::Builtin,
            "t2t_vit_7_cifar",
            Some(&toml_file),
            json!({"epochs": 5}),
        )
        .unwrap();
        assert_eq!((c.epochs, c.lr), (5, 0.01));
        let yaml_file = dir.join("args.yaml");
        std::fs::write(&yaml_file, "warmup-epochs: 2\nsmoothing: 0.2\n").unwrap();
        let c = TrainConfig::resolve(
            Preset::Builtin,
            "t2t_vit_7_cifar",
            Some(&yaml_file),
            json!({}),
        )
        .unwrap();
        assert_eq!((c.warmup_epochs, c.smoothing), (2, 0.2));
        std::fs::write(&toml_file, "epoch = 3\n").unwrap();
        let err = TrainConfig::resolve(
            Preset::Builtin,
            "t2t_vit_7_cifar",
            Some(&toml_file),
            json!({}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `epoch`"), "{err}");
        // The saved config reads back as the same run.
        let c = TrainConfig::resolve(Preset::Cifar, "t2t_vit_7_cifar", None, json!({})).unwrap();
        std::fs::write(&toml_file, c.to_toml()).unwrap();
        assert_eq!(
            TrainConfig::resolve(Preset::Builtin, "x", Some(&toml_file), json!({})).unwrap(),
            c
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn meaningless_values_are_refused_with_the_flag_and_range() {
        let refused = [
            (
                json!({"lr": -1.0}),
                "--lr -1.0: must be a finite number > 0",
            ),
            (
                json!({"weight_decay": -5.0}),
                "--weight-decay -5.0: must be a finite number >= 0",
            ),
            (
                json!({"smoothing": 2.0}),
                "--smoothing 2.0: must be in [0, 1)",
            ),
            (json!({"reprob": 2.0}), "--reprob 2.0: must be in [0, 1]"),
            (
                json!({"model_ema_decay": 2.0}),
                "--model-ema-decay 2.0: must be in [0, 1]",
            ),
            (json!({"scale": [1.0, 0.0]}), "--scale [1.0, 0.0]: must be"),
            (json!({"ratio": [0.0, 0.0]}), "--ratio [0.0, 0.0]: must be"),
            (
                json!({"grad_accum_steps": 0}),
                "--grad-accum-steps 0: must be in [1,",
            ),
            (
                json!({"mixup": -1.0}),
                "--mixup -1.0: must be a finite number >= 0",
            ),
            (
                json!({"momentum": 5.0}),
                "--momentum 5.0: must be in [0, 1)",
            ),
            (
                json!({"crop_pct": -1.0}),
                "--crop-pct -1.0: must be in [0.001, 1]",
            ),
            (
                json!({"crop_pct": 0.0}),
                "--crop-pct 0.0: must be in [0.001, 1]",
            ),
            (json!({"aa": "rand-q3"}), "--aa"),
            (
                json!({"stop_after_steps": 0}),
                "--stop-after-steps 0: must be at least 1",
            ),
            (
                json!({"recovery_interval": 0}),
                "--recovery-interval 0: must be at least 1",
            ),
            (json!({"epochs": 0}), "--epochs 0: must be in [1,"),
            (json!({"batch_size": 0}), "--batch-size 0: must be in [1,"),
            (
                json!({"opt_betas": [0.9, 1.0]}),
                "--opt-betas (second) 1.0: must be in [0, 1)",
            ),
            (json!({"opt_eps": 0.0}), "--opt-eps 0.0: must be"),
            (json!({"clip_grad": -1.0}), "--clip-grad -1.0: must be"),
            (
                json!({"drop_path": 1.0}),
                "--drop-path 1.0: must be in [0, 1)",
            ),
            (
                json!({"color_jitter": -0.1}),
                "--color-jitter -0.1: must be",
            ),
            (
                json!({"mixup_prob": 1.5}),
                "--mixup-prob 1.5: must be in [0, 1]",
            ),
            (
                json!({"std": [1.0, 0.0, 1.0]}),
                "--std [1.0, 0.0, 1.0]: must be",
            ),
            (
                json!({"synthetic_val_size": 0}),
                "--synthetic-val-size 0: must be at least 1",
            ),
            (
                json!({"num_classes": 0}),
                "--num-classes 0: must be at least 1",
            ),
            (
                json!({"opt": "lamb"}),
                "--opt \"lamb\": must be one of adamw, sgd",
            ),
        ];
        for (flags, message) in refused {
            let err = TrainConfig::resolve(Preset::Builtin, "t2t_vit_7_cifar", None, flags.clone())
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{flags}: {err}");
        }
        for &preset in Preset::value_variants() {
            TrainConfig::resolve(preset, "t2t_vit_14", None, json!({})).unwrap();
        }
    }

    #[test]
    fn deep_or_huge_config_files_are_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("nested.yaml");
        let started = std::time::Instant::now();
        for text in [
            "a: ".to_string() + &"[".repeat(200_000),
            "a:\n".to_string() + &"- ".repeat(200_000) + "x\n",
            (0..200)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect(),
        ] {
            std::fs::write(&nested, text).unwrap();
            let err = read_config_file(&nested).unwrap_err().to_string();
            assert!(err.contains("a config nests at most 64"), "{err}");
        }
        assert!(started.elapsed().as_secs_f64() < 1.0);
        let huge = dir.path().join("huge.toml");
        std::fs::write(&huge, "# padding\n".repeat(200_000)).unwrap();
        let err = read_config_file(&huge).unwrap_err().to_string();
        assert!(err.contains("larger than 1024 KiB"), "{err}");
        // Ordinary nesting still reads.
        let fine = dir.path().join("fine.yaml");
        std::fs::write(&fine, "model-kwargs:\n  - depth=2\nmean: [0.5, 0.5, 0.5]\n").unwrap();
        let value = read_config_file(&fine).unwrap();
        assert_eq!(value["model_kwargs"], json!(["depth=2"]));
    }
}
