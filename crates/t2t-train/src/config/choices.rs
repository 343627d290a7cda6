//! The closed choices of a run: clap values and serde names at once.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

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
