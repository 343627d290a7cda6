//! The configuration of a training run, with timm's flag names.
//!
//! A run's settings fall into four concerns, one struct each: the model
//! ([`ModelSettings`]), the data ([`DataSettings`]), the optimisation
//! ([`Recipe`]) and the run itself ([`RunSettings`]). Each is written once,
//! with a layer of the same fields, all optional, which is at once the
//! command line's flags and a config file's table. A run's configuration is
//! its preset's layer, under the config file's (`-c`, TOML or YAML), under the
//! flags'; the result is saved as `config.toml` in the run directory, with
//! where each setting came from.

mod checks;
mod choices;
mod file;
mod presets;
pub(crate) mod settings;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};
use t2t_models::registry::DataConfig;
use t2t_models::ModelKwarg;

pub use choices::{choice_name, DatasetKind, OptimizerKind, Preset, TrainTransformKind};
pub use file::read_config_file;
pub use presets::{default_model, default_preset, preset};
use settings::settings;
pub use settings::{flag, Sources};

use crate::optim::{AdamWConfig, OptimizerConfig, SgdConfig};
use crate::schedule::CosineSchedule;
use crate::TrainError;

settings! {
    /// The run itself: its recipe preset, its directory and when it saves and stops.
    pub struct RunSettings / RunLayer ("Run") {
        /// Recipe preset (builtin without data, cifar for CIFAR, imagenet for a folder).
        #[arg(long, value_enum, conflicts_with = "resume")]
        required preset: Preset,
        /// Run directory (checkpoints, logs, summary.csv, curves.png).
        #[arg(short = 'o', long)]
        required output: PathBuf,
        /// Save the `last` checkpoint every N optimizer steps too.
        #[arg(long)]
        optional recovery_interval: u64,
        /// End the run after N optimizer steps in all, leaving a resumable checkpoint.
        #[arg(long)]
        optional stop_after_steps: u64,
    }
}

settings! {
    /// The model a run trains: a registered name and its changes.
    pub struct ModelSettings / ModelLayer ("Model") {
        /// Model to train (see `t2t models`); the preset's when left out.
        #[arg(long)]
        required model: String,
        /// Model settings, e.g. depth=4 drop_path_rate=0.2 (they win over --drop and --drop-path).
        #[arg(long, num_args = 1.., value_name = "KEY=VALUE")]
        required model_kwargs: Vec<ModelKwarg>,
        /// Input image side; the model's default when left out.
        #[arg(long)]
        optional img_size: usize,
        /// Classes of the head; the dataset's when left out.
        #[arg(long)]
        optional num_classes: usize,
        /// Start from these weights (any importable format).
        #[arg(long)]
        optional initial_checkpoint: PathBuf,
        /// Dropout rate of the model (drop_rate).
        #[arg(long)]
        required drop: f64,
        /// Stochastic-depth rate of the model (drop_path_rate).
        #[arg(long)]
        required drop_path: f64,
    }
}

settings! {
    /// The images a run learns from, how they are prepared and augmented,
    /// and the targets made of their labels.
    pub struct DataSettings / DataLayer ("Data") {
        /// The dataset (its layout under --data-dir).
        #[arg(long, value_enum)]
        required dataset: DatasetKind,
        /// Dataset root (CIFAR binary folder, or an ImageFolder with train/ and val/).
        #[arg(long, visible_alias = "data")]
        optional data_dir: PathBuf,
        /// Split (ImageFolder subfolder) to train on.
        #[arg(long)]
        required train_split: String,
        /// Split (ImageFolder subfolder) to evaluate on after every epoch.
        #[arg(long)]
        required val_split: String,
        /// File with one class name per line: the label order of an ImageFolder.
        #[arg(long)]
        optional class_map: PathBuf,
        /// Images in the built-in dataset's train split.
        #[arg(long)]
        required synthetic_train_size: usize,
        /// Images in the built-in dataset's test split.
        #[arg(long)]
        required synthetic_val_size: usize,
        /// Data-loading threads.
        #[arg(short = 'j', long)]
        required workers: usize,
        /// The training augmentation.
        #[arg(long, value_enum)]
        required train_transform: TrainTransformKind,
        /// Zero padding of the pad_crop transform.
        #[arg(long)]
        required crop_pad: usize,
        /// Normalisation mean per channel; the model's when left out.
        #[arg(long, num_args = 3)]
        optional mean: Vec<f64>,
        /// Normalisation standard deviation per channel; the model's when left out.
        #[arg(long, num_args = 3)]
        optional std: Vec<f64>,
        /// RandomResizedCrop area range (rrc).
        #[arg(long, num_args = 2)]
        required scale: Vec<f64>,
        /// RandomResizedCrop aspect-ratio range (rrc).
        #[arg(long, num_args = 2)]
        required ratio: Vec<f64>,
        /// Probability of a horizontal flip (0.5 in every preset but builtin);
        /// 0 for images that are not mirror-symmetric (digits, text, some medical images).
        #[arg(long)]
        required hflip: f64,
        /// RandAugment spec, e.g. rand-m9-mstd0.5-inc1 ("" for none).
        #[arg(long)]
        required aa: String,
        /// Colour jitter strength (rrc without RandAugment; 0 for none).
        #[arg(long)]
        required color_jitter: f64,
        /// Random-erasing probability (rrc).
        #[arg(long)]
        required reprob: f64,
        /// Label smoothing.
        #[arg(long)]
        required smoothing: f64,
        /// Mixup alpha (0 for none).
        #[arg(long)]
        required mixup: f64,
        /// CutMix alpha (0 for none).
        #[arg(long)]
        required cutmix: f64,
        /// Probability that a batch is mixed at all.
        #[arg(long)]
        required mixup_prob: f64,
        /// Probability of CutMix rather than mixup when both are on.
        #[arg(long)]
        required mixup_switch_prob: f64,
        /// Evaluation centre-crop fraction: resize to img_size / crop_pct, then crop; the model's when left out.
        #[arg(long)]
        optional crop_pct: f64,
    }
}

settings! {
    /// How a run optimises: schedule, optimizer, batch, EMA and seed. A
    /// checkpoint carries its run's recipe.
    pub struct Recipe / RecipeLayer ("Recipe") {
        /// Epochs of the cosine schedule (cooldown epochs come after).
        #[arg(long)]
        required epochs: usize,
        /// Epochs at --min-lr after the schedule.
        #[arg(long)]
        required cooldown_epochs: usize,
        /// Epochs of linear warm-up from --warmup-lr (a preset's is capped at a fifth of the run).
        #[arg(long)]
        required warmup_epochs: usize,
        /// Peak learning rate.
        #[arg(long)]
        required lr: f64,
        /// Learning rate at the end of the cosine and during cooldown.
        #[arg(long)]
        required min_lr: f64,
        /// Learning rate the warm-up starts from.
        #[arg(long)]
        required warmup_lr: f64,
        /// Change the learning rate once an epoch instead of every step.
        #[arg(long)]
        required lr_per_epoch: bool,
        /// The optimizer.
        #[arg(long, value_enum)]
        required opt: OptimizerKind,
        /// Decoupled weight decay (not on biases, 1-D parameters or cls_token).
        #[arg(long)]
        required weight_decay: f64,
        /// AdamW epsilon.
        #[arg(long)]
        required opt_eps: f64,
        /// AdamW betas.
        #[arg(long, num_args = 2)]
        required opt_betas: Vec<f64>,
        /// SGD momentum.
        #[arg(long)]
        required momentum: f64,
        /// Clip the global gradient norm (torch's clip_grad_norm_).
        #[arg(long)]
        optional clip_grad: f64,
        /// Images per batch of this process: a step takes batch × processes × --grad-accum-steps images.
        #[arg(short = 'b', long)]
        required batch_size: usize,
        /// Batches whose gradients are summed into one optimizer step.
        #[arg(long)]
        required grad_accum_steps: usize,
        /// Fine-tuning: learning rate of all but the head = lr × ratio.
        #[arg(long)]
        optional transfer_ratio: f64,
        /// Keep parameters whose names start with these prefixes frozen
        /// (e.g. `tokens_to_token` or `blocks.0.`).
        #[arg(long, num_args = 1..)]
        required freeze: Vec<String>,
        /// Keep and evaluate an exponential moving average of the weights.
        #[arg(long)]
        required model_ema: bool,
        /// EMA decay per optimizer step.
        #[arg(long)]
        required model_ema_decay: f64,
        /// Ramp the EMA decay up as min(decay, (1 + t) / (10 + t)) at step t, so
        /// that short runs get a meaningful average (on in every preset).
        #[arg(long)]
        required model_ema_warmup: bool,
        /// Seed of the initial weights, the data order, augmentation and dropout.
        #[arg(long)]
        required seed: u64,
    }
}

/// Every setting of a run, resolved; saved flat, as timm's `args.yaml`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainConfig {
    #[serde(flatten)]
    pub run: RunSettings,
    #[serde(flatten)]
    pub model: ModelSettings,
    #[serde(flatten)]
    pub data: DataSettings,
    #[serde(flatten)]
    pub recipe: Recipe,
    /// Where each setting came from: `preset NAME`, `file PATH` or `flag`.
    pub sources: Sources,
}

/// Some settings of a run: a preset's, a config file's or the flags'.
#[derive(Clone, Debug, Default, PartialEq, clap::Args, Serialize)]
pub struct TrainLayer {
    #[command(flatten)]
    #[serde(flatten)]
    pub run: RunLayer,
    #[command(flatten)]
    #[serde(flatten)]
    pub model: ModelLayer,
    #[command(flatten)]
    #[serde(flatten)]
    pub data: DataLayer,
    #[command(flatten)]
    #[serde(flatten)]
    pub recipe: RecipeLayer,
}

/// The key under which `config.toml` says where each setting came from.
const SOURCES_KEY: &str = "sources";

impl TrainLayer {
    /// `self` over `base`: each setting `self` holds replaces base's.
    pub fn over(self, base: Self) -> Self {
        Self {
            run: self.run.over(base.run),
            model: self.model.over(base.model),
            data: self.data.over(base.data),
            recipe: self.recipe.over(base.recipe),
        }
    }

    /// Notes in `sources` that the settings this layer holds came from `source`.
    fn record(&self, source: &str, sources: &mut Sources) {
        let keys = [
            self.run.keys_given(),
            self.model.keys_given(),
            self.data.keys_given(),
            self.recipe.keys_given(),
        ];
        for key in keys.concat() {
            sources.insert(key.to_string(), source.to_string());
        }
    }

    /// The settings of a config file's table; a key that names no setting
    /// is an error, as a mistyped flag would be.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, TrainError> {
        let known = [
            RunLayer::KEYS,
            ModelLayer::KEYS,
            DataLayer::KEYS,
            RecipeLayer::KEYS,
        ]
        .concat();
        if let Some(key) = map
            .keys()
            .find(|key| *key != SOURCES_KEY && !known.contains(&key.as_str()))
        {
            return Err(TrainError::Config(format!(
                "unknown setting `{key}`; the settings are the flags of `t2t train --help`"
            )));
        }
        Ok(Self {
            run: RunLayer::from_map(map)?,
            model: ModelLayer::from_map(map)?,
            data: DataLayer::from_map(map)?,
            recipe: RecipeLayer::from_map(map)?,
        })
    }

    fn resolve(self, sources: Sources) -> Result<TrainConfig, TrainError> {
        Ok(TrainConfig {
            run: self.run.resolve()?,
            model: self.model.resolve()?,
            data: self.data.resolve()?,
            recipe: self.recipe.resolve()?,
            sources,
        })
    }
}

/// The largest share of a run's epochs that a preset's warm-up takes: a
/// 5-epoch warm-up written for 200 epochs would be a third of a 15-epoch run.
pub const MAX_WARMUP_FRACTION: f64 = 0.2;

impl TrainConfig {
    /// The preset's settings, then the config file's, then the flags'. The
    /// preset is the one named (by a flag, else the file), else the one for
    /// the dataset; its model likewise. A preset's warm-up is capped to
    /// [`MAX_WARMUP_FRACTION`] of the run's epochs; one given in the file or
    /// the flags is kept as given.
    pub fn resolve(flags: TrainLayer, file: Option<&Path>) -> Result<Self, TrainError> {
        let (from_file, saved_sources) = match file {
            Some(path) => {
                let map = read_config_file(path)?;
                let saved_sources = map
                    .get(SOURCES_KEY)
                    .map(|saved| {
                        serde_json::from_value::<Sources>(saved.clone()).map_err(|e| {
                            TrainError::Config(format!("{}: sources: {e}", path.display()))
                        })
                    })
                    .transpose()?;
                (Some((TrainLayer::from_map(&map)?, path)), saved_sources)
            }
            None => (None, None),
        };
        // What the user said: the file, under the flags.
        let mut sources = Sources::new();
        let mut given = TrainLayer::default();
        if let Some((layer, path)) = from_file {
            layer.record(&format!("file {}", path.display()), &mut sources);
            given = layer;
        }
        flags.record("flag", &mut sources);
        let given = flags.over(given);

        let preset_name = given
            .run
            .preset
            .unwrap_or_else(|| default_preset(given.data.dataset, given.data.data_dir.is_some()));
        let model = match &given.model.model {
            Some(model) => model.clone(),
            None => default_model(preset_name).to_string(),
        };
        let preset_source = format!("preset {}", choice_name(preset_name));
        let base = preset(preset_name, &model);
        let mut preset_sources = Sources::new();
        base.record(&preset_source, &mut preset_sources);
        preset_sources.extend(sources);

        let mut config = given.over(base).resolve(preset_sources)?;
        if let Some(saved) = saved_sources {
            // A run's own config.toml says where its settings first came from.
            config.sources = saved;
        }
        if config.sources.get("warmup_epochs") == Some(&preset_source) {
            let capped = config
                .recipe
                .warmup_epochs
                .min(max_preset_warmup(config.recipe.epochs));
            if capped != config.recipe.warmup_epochs {
                config.recipe.warmup_epochs = capped;
                config.sources.insert(
                    "warmup_epochs".into(),
                    format!("{preset_source}, capped to a fifth of the epochs"),
                );
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Refuses settings that have no meaning, naming the flag and its valid
    /// range. Runs on every resolved configuration, a resumed run's included.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.run.validate()?;
        self.model.validate()?;
        self.data.validate()?;
        self.recipe.validate()
    }

    /// The model's data settings with this run's `mean`, `std` and `crop_pct`.
    pub fn data_config(&self, model: &DataConfig) -> DataConfig {
        let triple = |v: &Option<Vec<f64>>| v.as_deref().map(|v| [v[0], v[1], v[2]]);
        model.with_overrides(
            triple(&self.data.mean),
            triple(&self.data.std),
            self.data.crop_pct,
        )
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config serialises")
    }
}

/// A preset's warm-up epochs for a run of `epochs`, at most.
fn max_preset_warmup(epochs: usize) -> usize {
    (epochs as f64 * MAX_WARMUP_FRACTION).floor() as usize
}

impl Recipe {
    /// The optimizer with its settings.
    pub fn optimizer(&self) -> OptimizerConfig {
        match self.opt {
            OptimizerKind::Adamw => OptimizerConfig::AdamW(AdamWConfig {
                betas: (self.opt_betas[0], self.opt_betas[1]),
                eps: self.opt_eps,
                weight_decay: self.weight_decay,
            }),
            OptimizerKind::Sgd => OptimizerConfig::Sgd(SgdConfig {
                momentum: self.momentum,
                weight_decay: self.weight_decay,
            }),
        }
    }

    /// The EMA's decay, when the run keeps one.
    pub fn ema_decay(&self) -> Option<f64> {
        self.model_ema.then_some(self.model_ema_decay)
    }

    /// Epochs of the schedule including cooldown.
    pub fn total_epochs(&self) -> usize {
        self.epochs + self.cooldown_epochs
    }

    /// The learning-rate schedule of an epoch of `batches_per_epoch` micro-batches.
    pub fn schedule(&self, batches_per_epoch: usize) -> CosineSchedule {
        let steps_per_epoch = batches_per_epoch.div_ceil(self.grad_accum_steps) as u64;
        CosineSchedule {
            lr: self.lr,
            min_lr: self.min_lr,
            warmup_lr: self.warmup_lr,
            warmup_steps: self.warmup_epochs as u64 * steps_per_epoch,
            cosine_steps: self.epochs as u64 * steps_per_epoch,
            update_every: if self.lr_per_epoch {
                steps_per_epoch
            } else {
                1
            },
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;
    use serde_json::json;

    /// The resolved configuration of `settings` given as flags, over `file`.
    fn resolve(settings: Value, file: Option<&Path>) -> Result<TrainConfig, TrainError> {
        TrainConfig::resolve(TrainLayer::from_map(settings.as_object().unwrap())?, file)
    }

    #[test]
    fn a_preset_and_model_named_in_the_file_choose_the_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.yaml");
        std::fs::write(&file, "preset: imagenet\nmodel: t2t_vit_24\n").unwrap();
        let c = resolve(json!({}), Some(&file)).unwrap();
        assert_eq!(
            (c.run.preset, c.model.model.as_str()),
            (Preset::Imagenet, "t2t_vit_24")
        );
        assert_eq!((c.recipe.lr, c.recipe.weight_decay), (5e-4, 0.065));
        assert_eq!(c.sources["weight_decay"], "preset imagenet");
        // A flag names the model over the file.
        let c = resolve(json!({"model": "t2t_vit_7"}), Some(&file)).unwrap();
        assert_eq!((c.recipe.lr, c.recipe.weight_decay), (1e-3, 0.03));
        // Without a preset, the dataset chooses one.
        let c = resolve(json!({"dataset": "cifar10"}), None).unwrap();
        assert_eq!(
            (c.run.preset, c.model.model.as_str()),
            (Preset::Cifar, "t2t_vit_7_cifar")
        );
    }

    #[test]
    fn presets_resolve_and_flags_win() {
        let c = resolve(
            json!({"preset": "imagenet", "model": "t2t_vit_14", "lr": 1e-3}),
            None,
        )
        .unwrap();
        assert_eq!(
            (
                c.recipe.lr,
                c.recipe.weight_decay,
                c.recipe.epochs,
                c.recipe.cooldown_epochs
            ),
            (1e-3, 0.05, 300, 10)
        );
        assert_eq!(c.recipe.batch_size * c.recipe.grad_accum_steps, 512);
        assert_eq!(c.recipe.model_ema_decay, 0.99996);
        let c = resolve(json!({"preset": "imagenet", "model": "t2t_vit_t_24"}), None).unwrap();
        assert_eq!((c.recipe.lr, c.recipe.weight_decay), (5e-4, 0.065));
        let c = resolve(json!({"preset": "imagenet", "model": "t2t_vit_7"}), None).unwrap();
        assert_eq!((c.recipe.lr, c.recipe.weight_decay), (1e-3, 0.03));
    }

    #[test]
    fn the_builtin_preset_keeps_mirror_image_classes_apart() {
        let c = resolve(json!({}), None).unwrap();
        assert_eq!(c.data.hflip, 0.0);
        let c = resolve(json!({"preset": "cifar"}), None).unwrap();
        assert_eq!(c.data.hflip, 0.5);
    }

    #[test]
    fn transfer_preset_follows_the_official_script() {
        let c = resolve(json!({"preset": "transfer", "model": "t2t_vit_14"}), None).unwrap();
        assert_eq!(
            (
                c.recipe.opt,
                c.recipe.lr,
                c.recipe.weight_decay,
                c.recipe.momentum
            ),
            (OptimizerKind::Sgd, 0.05, 5e-4, 0.9)
        );
        assert_eq!(
            (
                c.recipe.transfer_ratio,
                c.recipe.epochs,
                c.recipe.min_lr,
                c.recipe.lr_per_epoch
            ),
            (Some(0.01), 60, 2e-4, true)
        );
        assert_eq!(
            (
                c.model.img_size,
                c.data.crop_pad,
                c.recipe.batch_size,
                c.data.smoothing
            ),
            (Some(224), 28, 64, 0.0)
        );
        assert_eq!(c.recipe.freeze, ["cls_token", "norm."]);
    }

    #[test]
    fn the_resolved_config_says_where_each_setting_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.yaml");
        std::fs::write(&file, "lr: 0.002\nsmoothing: 0.2\n").unwrap();
        let flags = json!({"preset": "cifar", "smoothing": 0.3, "epochs": 15});
        let c = resolve(flags, Some(&file)).unwrap();
        let source = |key: &str| c.sources[key].as_str();
        assert_eq!(source("weight_decay"), "preset cifar");
        assert_eq!(source("lr"), format!("file {}", file.display()));
        assert_eq!((source("smoothing"), c.data.smoothing), ("flag", 0.3));
        assert_eq!(source("epochs"), "flag");
        assert_eq!(
            (source("warmup_epochs"), c.recipe.warmup_epochs),
            ("preset cifar, capped to a fifth of the epochs", 3)
        );
        // A run's config.toml keeps its sources when it is read back.
        let saved = dir.path().join("config.toml");
        std::fs::write(&saved, c.to_toml()).unwrap();
        let again = resolve(json!({}), Some(&saved)).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn preset_warmup_is_capped_to_a_fifth_of_the_run_unless_given() {
        let c = resolve(json!({"preset": "cifar"}), None).unwrap();
        assert_eq!(
            (
                c.recipe.epochs,
                c.recipe.warmup_epochs,
                c.recipe.model_ema_warmup
            ),
            (200, 5, true)
        );
        let c = resolve(json!({"preset": "cifar", "epochs": 15}), None).unwrap();
        assert_eq!(c.recipe.warmup_epochs, 3);
        let c = resolve(json!({"preset": "cifar", "epochs": 4}), None).unwrap();
        assert_eq!(c.recipe.warmup_epochs, 0);
        let given = json!({"preset": "cifar", "epochs": 15, "warmup_epochs": 5});
        let c = resolve(given, None).unwrap();
        assert_eq!(c.recipe.warmup_epochs, 5);
    }

    #[test]
    fn config_files_overlay_the_preset_and_typos_are_errors() {
        let dir = std::env::temp_dir().join(format!("t2t-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml_file = dir.join("run.toml");
        std::fs::write(&toml_file, "epochs = 3\nlr = 0.01\n").unwrap();
        let c = resolve(json!({"epochs": 5}), Some(&toml_file)).unwrap();
        assert_eq!((c.recipe.epochs, c.recipe.lr), (5, 0.01));
        let yaml_file = dir.join("args.yaml");
        std::fs::write(&yaml_file, "warmup-epochs: 2\nsmoothing: 0.2\n").unwrap();
        let c = resolve(json!({}), Some(&yaml_file)).unwrap();
        assert_eq!((c.recipe.warmup_epochs, c.data.smoothing), (2, 0.2));
        std::fs::write(&toml_file, "epoch = 3\n").unwrap();
        let err = resolve(json!({}), Some(&toml_file)).unwrap_err();
        assert!(err.to_string().contains("unknown setting `epoch`"), "{err}");
        // The saved config reads back as the same run.
        let c = resolve(json!({"preset": "cifar"}), None).unwrap();
        std::fs::write(&toml_file, c.to_toml()).unwrap();
        assert_eq!(resolve(json!({}), Some(&toml_file)).unwrap(), c);
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
                "--opt \"lamb\": unknown variant `lamb`, expected `adamw` or `sgd`",
            ),
            (
                json!({"opt_betas": [0.9]}),
                "--opt-betas [0.9]: must be 2 numbers",
            ),
            (json!({"epochs": "ten"}), "--epochs \"ten\": invalid type"),
            (
                json!({"model_kwargs": ["depth=x"]}),
                "--model-kwargs [\"depth=x\"]: depth: cannot use 'x'",
            ),
        ];
        for (flags, message) in refused {
            let err = resolve(flags.clone(), None).unwrap_err().to_string();
            assert!(err.contains(message), "{flags}: {err}");
        }
        for &preset in Preset::value_variants() {
            resolve(json!({"preset": preset, "model": "t2t_vit_14"}), None).unwrap();
        }
    }
}
