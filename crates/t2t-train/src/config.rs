//! The resolved configuration of a training run, with timm's flag names.
//!
//! A run's settings come from, in increasing priority: the recipe preset,
//! a config file (`-c`, TOML or YAML), and command-line flags. The resolved
//! result is saved as `config.toml` in the output directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use t2t_models::registry::DataConfig;

use crate::TrainError;

/// Which images to train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// The built-in generated texture set (no files).
    Synthetic,
    Cifar10,
    Cifar100,
    /// `root/{train,val}/<class>/*.jpg`.
    Folder,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Recipe preset the defaults came from.
    pub preset: String,
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
    /// `adamw` (timm's parameter groups) or `sgd` (momentum, decay on everything).
    pub opt: String,
    pub momentum: f64,
    /// Fine-tuning: the learning rate of all but the head is `lr × transfer_ratio`.
    pub transfer_ratio: Option<f64>,
    /// Keys (prefixes) of parameters to keep frozen, e.g. `tokens_to_token` or `blocks.0.`.
    pub freeze: Vec<String>,
    /// Change the learning rate once an epoch (PyTorch's `CosineAnnealingLR`).
    pub lr_per_epoch: bool,

    /// `pad_crop` (CIFAR style: pad 4, random crop, flip) or `rrc`
    /// (RandomResizedCrop + flip + RandAugment, the ImageNet recipe).
    pub train_transform: String,
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
}

/// Names of the presets `--preset` accepts.
pub const PRESETS: &[&str] = &["builtin", "cifar", "imagenet", "transfer"];

/// The settings of a preset for `model`, as a JSON object to overlay.
pub fn preset(name: &str, model: &str) -> Result<Value, TrainError> {
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
        "builtin" => json!({
            "dataset": "synthetic", "epochs": 10, "cooldown_epochs": 0, "warmup_epochs": 1,
            "synthetic_train_size": 3072, "synthetic_val_size": 512,
            "lr": 2e-3, "weight_decay": 0.05, "batch_size": 64, "train_transform": "pad_crop",
            "aa": "", "reprob": 0.0, "smoothing": 0.1, "mixup": 0.0, "cutmix": 0.0,
            "drop_path": 0.0, "model_ema": true, "model_ema_decay": 0.98, "val_split": "test",
        }),
        // From scratch on CIFAR at 32x32 (ours; see README).
        "cifar" => json!({
            "dataset": "cifar10", "epochs": 200, "cooldown_epochs": 0, "warmup_epochs": 5,
            "lr": 1e-3, "weight_decay": 0.05, "batch_size": 128, "train_transform": "pad_crop",
            "aa": "", "reprob": 0.0, "smoothing": 0.1, "mixup": 0.0,
            "cutmix": 0.0, "drop_path": 0.1, "model_ema": true, "model_ema_decay": 0.9998,
            "val_split": "test",
        }),
        // The paper's ImageNet recipe (REFERENCE.md §2.1): batch 512 as 64 x 8 accumulation.
        "imagenet" => {
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
        "transfer" => json!({
            "dataset": "cifar10", "img_size": 224, "epochs": 60, "cooldown_epochs": 0,
            "warmup_epochs": 0, "lr": 0.05, "warmup_lr": 0.05, "min_lr": 2e-4,
            "lr_per_epoch": true, "opt": "sgd", "momentum": 0.9, "weight_decay": 5e-4,
            "transfer_ratio": 0.01, "freeze": ["cls_token", "norm."], "batch_size": 64,
            "train_transform": "pad_crop", "crop_pad": 28, "aa": "", "reprob": 0.0,
            "smoothing": 0.0, "mixup": 0.0, "cutmix": 0.0, "drop_path": 0.1, "crop_pct": 1.0,
            "model_ema": false, "model_ema_decay": 0.9998, "val_split": "test",
            "mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010],
        }),
        other => {
            return Err(TrainError::Config(format!(
                "--preset {other:?}: unknown (known: {})",
                PRESETS.join(", ")
            )))
        }
    };
    Ok(overlay(common, specific))
}

/// The largest share of a run's epochs that a preset's warm-up takes: a
/// 5-epoch warm-up written for 200 epochs would be a third of a 15-epoch run.
pub const MAX_WARMUP_FRACTION: f64 = 0.2;

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

/// Reads a TOML or YAML config file (by extension) as a JSON object.
pub fn read_config_file(path: &Path) -> Result<Value, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let bad = |e: String| {
        TrainError::Config(format!(
            "{}: {}",
            path.display(),
            e.lines().next().unwrap_or("")
        ))
    };
    let value: Value = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => toml::from_str(&text).map_err(|e| bad(e.to_string()))?,
        Some("yaml" | "yml") => serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?,
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

impl DatasetKind {
    pub fn parse(name: &str) -> Result<Self, TrainError> {
        serde_json::from_value(Value::String(name.to_string())).map_err(|_| {
            TrainError::Config(format!(
                "--dataset {name:?}: known datasets are synthetic, cifar10, cifar100, folder"
            ))
        })
    }
}

impl TrainConfig {
    /// Preset, then file, then flags. A preset's warm-up is capped to
    /// [`MAX_WARMUP_FRACTION`] of the run's epochs; one given in the file or
    /// the flags is kept as given.
    pub fn resolve(
        preset_name: &str,
        model: &str,
        file: Option<&Path>,
        flags: Value,
    ) -> Result<Self, TrainError> {
        let mut value = preset(preset_name, model)?;
        let mut warmup_given = flags.get("warmup_epochs").is_some();
        if let Some(file) = file {
            let settings = read_config_file(file)?;
            warmup_given |= settings.get("warmup_epochs").is_some();
            value = overlay(value, settings);
        }
        value = overlay(value, flags);
        let mut config: Self = serde_json::from_value(value)
            .map_err(|e| TrainError::Config(format!("config: {e}")))?;
        if !warmup_given {
            config.warmup_epochs = config.warmup_epochs.min(max_preset_warmup(config.epochs));
        }
        Ok(config)
    }

    /// The model's data settings with this run's `mean`, `std` and `crop_pct`.
    pub fn data_config(&self, model: &DataConfig) -> DataConfig {
        model.with_overrides(self.mean, self.std, self.crop_pct)
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
        let c = TrainConfig::resolve("imagenet", "t2t_vit_14", None, json!({"lr": 1e-3})).unwrap();
        assert_eq!(
            (c.lr, c.weight_decay, c.epochs, c.cooldown_epochs),
            (1e-3, 0.05, 300, 10)
        );
        assert_eq!(c.batch_size * c.grad_accum_steps, 512);
        assert_eq!(c.model_ema_decay, 0.99996);
        let c = TrainConfig::resolve("imagenet", "t2t_vit_t_24", None, json!({})).unwrap();
        assert_eq!((c.lr, c.weight_decay), (5e-4, 0.065));
        let c = TrainConfig::resolve("imagenet", "t2t_vit_7", None, json!({})).unwrap();
        assert_eq!((c.lr, c.weight_decay), (1e-3, 0.03));
        assert!(TrainConfig::resolve("nope", "t2t_vit_7", None, json!({})).is_err());
    }

    #[test]
    fn transfer_preset_follows_the_official_script() {
        let c = TrainConfig::resolve("transfer", "t2t_vit_14", None, json!({})).unwrap();
        assert_eq!(
            (c.opt.as_str(), c.lr, c.weight_decay, c.momentum),
            ("sgd", 0.05, 5e-4, 0.9)
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
    fn preset_warmup_is_capped_to_a_fifth_of_the_run_unless_given() {
        let c = TrainConfig::resolve("cifar", "t2t_vit_7_cifar", None, json!({})).unwrap();
        assert_eq!(
            (c.epochs, c.warmup_epochs, c.model_ema_warmup),
            (200, 5, true)
        );
        let c =
            TrainConfig::resolve("cifar", "t2t_vit_7_cifar", None, json!({"epochs": 15})).unwrap();
        assert_eq!(c.warmup_epochs, 3);
        let c =
            TrainConfig::resolve("cifar", "t2t_vit_7_cifar", None, json!({"epochs": 4})).unwrap();
        assert_eq!(c.warmup_epochs, 0);
        let given = json!({"epochs": 15, "warmup_epochs": 5});
        let c = TrainConfig::resolve("cifar", "t2t_vit_7_cifar", None, given).unwrap();
        assert_eq!(c.warmup_epochs, 5);
    }

    #[test]
    fn config_files_overlay_the_preset_and_typos_are_errors() {
        let dir = std::env::temp_dir().join(format!("t2t-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml_file = dir.join("run.toml");
        std::fs::write(&toml_file, "epochs = 3\nlr = 0.01\n").unwrap();
        let c = TrainConfig::resolve(
            "builtin",
            "t2t_vit_7_cifar",
            Some(&toml_file),
            json!({"epochs": 5}),
        )
        .unwrap();
        assert_eq!((c.epochs, c.lr), (5, 0.01));
        let yaml_file = dir.join("args.yaml");
        std::fs::write(&yaml_file, "warmup-epochs: 2\nsmoothing: 0.2\n").unwrap();
        let c = TrainConfig::resolve("builtin", "t2t_vit_7_cifar", Some(&yaml_file), json!({}))
            .unwrap();
        assert_eq!((c.warmup_epochs, c.smoothing), (2, 0.2));
        std::fs::write(&toml_file, "epoch = 3\n").unwrap();
        let err = TrainConfig::resolve("builtin", "t2t_vit_7_cifar", Some(&toml_file), json!({}))
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `epoch`"), "{err}");
        // The saved config reads back as the same run.
        let c = TrainConfig::resolve("cifar", "t2t_vit_7_cifar", None, json!({})).unwrap();
        std::fs::write(&toml_file, c.to_toml()).unwrap();
        assert_eq!(
            TrainConfig::resolve("builtin", "x", Some(&toml_file), json!({})).unwrap(),
            c
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
