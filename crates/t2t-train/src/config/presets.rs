//! The recipe presets: every setting of a run, for a preset and a model.

use std::path::PathBuf;

use t2t_data::stats::{CIFAR_MEAN, CIFAR_STD};

use super::{
    DataLayer, DatasetKind, ModelLayer, OptimizerKind, Preset, RecipeLayer, RunLayer, TrainLayer,
    TrainTransformKind,
};

/// The preset when none is named: the built-in run without data, else by dataset.
pub fn default_preset(dataset: Option<DatasetKind>, has_data_dir: bool) -> Preset {
    match dataset {
        Some(DatasetKind::Cifar10 | DatasetKind::Cifar100) => Preset::Cifar,
        Some(DatasetKind::Folder) => Preset::Imagenet,
        Some(DatasetKind::Synthetic) => Preset::Builtin,
        None if has_data_dir => Preset::Imagenet,
        None => Preset::Builtin,
    }
}

/// The model a preset trains when none is named.
pub fn default_model(preset: Preset) -> &'static str {
    match preset {
        Preset::Imagenet => "t2t_vit_14",
        Preset::Cifar => "t2t_vit_7_cifar",
        Preset::Builtin | Preset::Transfer => "t2t_vit_lite_cifar",
    }
}

/// Every setting of `preset` for `model`.
pub fn preset(preset: Preset, model: &str) -> TrainLayer {
    let common = common(preset, model);
    match preset {
        Preset::Builtin => builtin(common),
        Preset::Cifar => cifar(common),
        Preset::Imagenet => imagenet(common, model),
        Preset::Transfer => transfer(common),
    }
}

/// What the presets share: timm's defaults where a preset says nothing.
fn common(preset: Preset, model: &str) -> TrainLayer {
    TrainLayer {
        run: RunLayer {
            preset: Some(preset),
            output: Some(PathBuf::from("output/train")),
            recovery_interval: None,
            stop_after_steps: None,
        },
        model: ModelLayer {
            model: Some(model.to_string()),
            model_kwargs: Some(Vec::new()),
            drop: Some(0.0),
            drop_path: Some(0.1),
            ..ModelLayer::default()
        },
        data: DataLayer {
            train_split: Some("train".into()),
            val_split: Some("val".into()),
            synthetic_train_size: Some(6000),
            synthetic_val_size: Some(1000),
            workers: Some(2),
            crop_pad: Some(4),
            scale: Some(vec![0.08, 1.0]),
            ratio: Some(vec![0.75, 4.0 / 3.0]),
            hflip: Some(0.5),
            color_jitter: Some(0.4),
            aa: Some(String::new()),
            reprob: Some(0.0),
            smoothing: Some(0.1),
            mixup: Some(0.0),
            cutmix: Some(0.0),
            mixup_prob: Some(1.0),
            mixup_switch_prob: Some(0.5),
            ..DataLayer::default()
        },
        recipe: RecipeLayer {
            cooldown_epochs: Some(0),
            min_lr: Some(1e-5),
            warmup_lr: Some(1e-6),
            opt: Some(OptimizerKind::Adamw),
            opt_eps: Some(1e-8),
            opt_betas: Some(vec![0.9, 0.999]),
            momentum: Some(0.9),
            grad_accum_steps: Some(1),
            freeze: Some(Vec::new()),
            lr_per_epoch: Some(false),
            model_ema: Some(true),
            model_ema_warmup: Some(true),
            seed: Some(42),
            ..RecipeLayer::default()
        },
    }
}

/// The default run: a small T2T-ViT learns the built-in textures in minutes
/// on 2 cores. No flips: a flipped `diagonal` texture is an `antidiagonal` one.
fn builtin(common: TrainLayer) -> TrainLayer {
    TrainLayer {
        model: ModelLayer {
            drop_path: Some(0.0),
            ..common.model
        },
        data: DataLayer {
            dataset: Some(DatasetKind::Synthetic),
            val_split: Some("test".into()),
            synthetic_train_size: Some(3072),
            synthetic_val_size: Some(512),
            train_transform: Some(TrainTransformKind::PadCrop),
            hflip: Some(0.0),
            ..common.data
        },
        recipe: RecipeLayer {
            epochs: Some(10),
            warmup_epochs: Some(1),
            lr: Some(2e-3),
            weight_decay: Some(0.05),
            batch_size: Some(64),
            model_ema_decay: Some(0.98),
            ..common.recipe
        },
        ..common
    }
}

/// From scratch on CIFAR at 32×32 (ours; see README).
fn cifar(common: TrainLayer) -> TrainLayer {
    TrainLayer {
        data: DataLayer {
            dataset: Some(DatasetKind::Cifar10),
            val_split: Some("test".into()),
            train_transform: Some(TrainTransformKind::PadCrop),
            ..common.data
        },
        recipe: RecipeLayer {
            epochs: Some(200),
            warmup_epochs: Some(5),
            lr: Some(1e-3),
            weight_decay: Some(0.05),
            batch_size: Some(128),
            model_ema_decay: Some(0.9998),
            ..common.recipe
        },
        ..common
    }
}

/// The paper's ImageNet recipe (REFERENCE.md §2.1): batch 512 as 64 × 8
/// accumulation, learning rate and weight decay by model size.
fn imagenet(common: TrainLayer, model: &str) -> TrainLayer {
    let (lr, weight_decay) = imagenet_lr_wd(model);
    TrainLayer {
        data: DataLayer {
            dataset: Some(DatasetKind::Folder),
            train_transform: Some(TrainTransformKind::Rrc),
            aa: Some("rand-m9-mstd0.5-inc1".into()),
            reprob: Some(0.25),
            mixup: Some(0.8),
            cutmix: Some(1.0),
            ..common.data
        },
        recipe: RecipeLayer {
            epochs: Some(300),
            cooldown_epochs: Some(10),
            warmup_epochs: Some(10),
            lr: Some(lr),
            weight_decay: Some(weight_decay),
            batch_size: Some(64),
            grad_accum_steps: Some(8),
            model_ema_decay: Some(0.99996),
            ..common.recipe
        },
        ..common
    }
}

/// The official CIFAR fine-tuning (`transfer_learning.py`, REFERENCE.md §2.2):
/// 32×32 upsampled to 224, SGD, head lr 0.05 and backbone 0.01×, cosine per
/// epoch to 2e-4 over 60 epochs, plain cross entropy, CIFAR statistics. The
/// script leaves cls_token and the final norm out of every group: frozen.
fn transfer(common: TrainLayer) -> TrainLayer {
    TrainLayer {
        model: ModelLayer {
            img_size: Some(224),
            ..common.model
        },
        data: DataLayer {
            dataset: Some(DatasetKind::Cifar10),
            val_split: Some("test".into()),
            train_transform: Some(TrainTransformKind::PadCrop),
            crop_pad: Some(28),
            smoothing: Some(0.0),
            crop_pct: Some(1.0),
            mean: Some(CIFAR_MEAN.to_vec()),
            std: Some(CIFAR_STD.to_vec()),
            ..common.data
        },
        recipe: RecipeLayer {
            epochs: Some(60),
            warmup_epochs: Some(0),
            lr: Some(0.05),
            warmup_lr: Some(0.05),
            min_lr: Some(2e-4),
            lr_per_epoch: Some(true),
            opt: Some(OptimizerKind::Sgd),
            weight_decay: Some(5e-4),
            transfer_ratio: Some(0.01),
            freeze: Some(vec!["cls_token".into(), "norm.".into()]),
            batch_size: Some(64),
            model_ema: Some(false),
            model_ema_decay: Some(0.9998),
            ..common.recipe
        },
        ..common
    }
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
