use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use t2t_models::import::adapt_for_finetuning;
use t2t_models::registry::ModelSpec;
use t2t_models::weights::load_state_dict;
use t2t_train::checkpoint::run_dir;
use t2t_train::config::{DatasetKind, TrainConfig};
use t2t_train::data::{eval_loader_config, open_datasets, train_loader_config, LoaderSource};
use t2t_train::metrics::EpochRow;
use t2t_train::optim::{AdamWConfig, OptimizerConfig, SgdConfig};
use t2t_train::trainer::{BatchSource, Observer, Outcome, Recipe, RunOptions, StepReport, Trainer};

use super::{load_weights, print_json, resolve_model};
use crate::cli::{ModelOverrides, TrainArgs};

/// Draws a progress bar per epoch and prints a line per finished epoch.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Observer for Progress {
    fn step(&mut self, r: &StepReport) {
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(r.batches as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("epoch {}/{}", r.epoch + 1, r.total_epochs));
            bar
        });
        bar.set_position(r.batch as u64);
        bar.set_message(format!(
            "loss {:.4} lr {:.2e} {:.0} img/s",
            r.loss, r.lr, r.img_per_s
        ));
    }

    fn epoch(&mut self, row: &EpochRow) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let ema = row
            .ema
            .map(|e| format!("  EMA top-1 {:.2} top-5 {:.2}", e.top1, e.top5))
            .unwrap_or_default();
        eprintln!(
            "epoch {:>3}: train loss {:.4}  eval loss {:.4} top-1 {:.2} top-5 {:.2}{ema}  lr {:.2e}",
            row.epoch + 1,
            row.train_loss,
            row.eval.loss,
            row.eval.top1,
            row.eval.top5,
            row.lr
        );
    }

    fn message(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
}

/// The preset when none is named: the built-in run without data, else by dataset.
fn default_preset(args: &TrainArgs) -> &'static str {
    match args.dataset.as_deref() {
        Some("cifar10" | "cifar100") => "cifar",
        Some("folder") => "imagenet",
        Some(_) => "builtin",
        None if args.data_dir.is_some() => "imagenet",
        None => "builtin",
    }
}

/// The model a preset trains when `--model` is not given.
fn default_model(preset: &str) -> &'static str {
    match preset {
        "imagenet" => "t2t_vit_14",
        "cifar" => "t2t_vit_7_cifar",
        _ => "t2t_vit_lite_cifar",
    }
}

pub fn run(args: TrainArgs) -> Result<ExitCode> {
    let device = Device::default().autodiff();
    // A stop requested for the first part of a run does not carry over to its resumption.
    let options = |config: &TrainConfig| RunOptions {
        recovery_interval: config.recovery_interval,
        stop_after_steps: match args.resume {
            Some(_) => args.stop_after_steps,
            None => config.stop_after_steps,
        },
    };
    let mut config = match &args.resume {
        Some(path) => run_config(path)?,
        None => new_config(&args)?,
    };
    let img_size = run_model(&config)?.config.img_size();
    let datasets = open_datasets(&config, img_size)?;
    // The head follows the dataset unless asked otherwise.
    config.num_classes.get_or_insert(datasets.num_classes());
    let spec = run_model(&config)?;
    let classes = spec.config.num_classes();
    let data = config.data_config(&spec.data);
    let train = LoaderSource::new(
        Arc::clone(&datasets.train),
        train_loader_config(&config, &data, img_size, classes)?,
    )?;
    let mut eval_config = eval_loader_config(&data, config.batch_size, img_size, classes)?;
    eval_config.workers = config.workers;
    let val = LoaderSource::new(Arc::clone(&datasets.val), eval_config)?;
    let mut trainer = match &args.resume {
        Some(path) => resume(&args, path, &config, &device, options(&config))?,
        None => start(
            &config,
            &spec,
            &device,
            train.batches_per_epoch(),
            options(&config),
        )?,
    };

    eprintln!(
        "training {} ({:.2}M params) on {:?}: {} train / {} eval images, {} epochs, output {}",
        config.model,
        t2t_models::complexity::param_counts(&trainer.model).all as f64 / 1e6,
        config.dataset,
        datasets.train.len(),
        val_len(&config),
        trainer.state.total_epochs,
        trainer.output.display()
    );
    let started = std::time::Instant::now();
    let outcome = trainer.run(&train, Some(&val), &mut Progress { bar: None })?;
    let seconds = started.elapsed().as_secs_f64();
    if let Outcome::Stopped { step } = outcome {
        eprintln!(
            "stopped after step {step}; continue with: t2t train --resume {}",
            trainer.output.display()
        );
    }
    let last = trainer.state.history.last().cloned().unwrap_or_default();
    let (weights, reported) = match last.ema {
        Some(ema) => ("ema", ema),
        None => ("raw", last.eval),
    };
    let summary = json!({
        "epochs": trainer.state.history.len(),
        "train_loss": last.train_loss,
        "top1": reported.top1,
        "top5": reported.top5,
        "eval_loss": reported.loss,
        "weights": weights,
        "raw_top1": last.eval.top1,
        "raw_top5": last.eval.top5,
        "best_top1": trainer.state.best_top1,
        "seconds": seconds,
        "output": trainer.output,
        "finished": matches!(outcome, Outcome::Finished),
    });
    if args.json {
        print_json(&summary);
    } else {
        eprintln!(
            "done in {:.0} s: top-1 {:.2} top-5 {:.2} ({weights} weights); summary.csv, curves.png and checkpoints in {}",
            seconds,
            reported.top1,
            reported.top5,
            trainer.output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn val_len(config: &TrainConfig) -> String {
    match config.dataset {
        DatasetKind::Synthetic => config.synthetic_val_size.to_string(),
        _ => "all".to_string(),
    }
}

/// The model of a run: its registered name with the run's overrides.
fn run_model(config: &TrainConfig) -> Result<ModelSpec> {
    let mut kwargs = config.model_kwargs.clone();
    kwargs.push(format!("drop_rate={}", config.drop));
    kwargs.push(format!("drop_path_rate={}", config.drop_path));
    let overrides = ModelOverrides {
        img_size: config.img_size,
        num_classes: config.num_classes,
        model_kwargs: kwargs,
    };
    resolve_model(&config.model, &overrides)
}

/// The settings of a new run: preset, then config file, then flags.
fn new_config(args: &TrainArgs) -> Result<TrainConfig> {
    let preset = args
        .preset
        .as_deref()
        .unwrap_or_else(|| default_preset(args));
    let model = args.model.as_deref().unwrap_or(default_model(preset));
    let flags = serde_json::to_value(args)?;
    let mut config = TrainConfig::resolve(preset, model, args.config_file.as_deref(), flags)?;
    if let Some(dataset) = &args.dataset {
        config.dataset = DatasetKind::parse(dataset)?;
    }
    Ok(config)
}

/// The resolved settings saved in a run's directory.
fn run_config(path: &Path) -> Result<TrainConfig> {
    let config_file = run_dir(path).join("config.toml");
    TrainConfig::resolve("builtin", "", Some(&config_file), serde_json::json!({}))
        .with_context(|| format!("{}: the run's resolved config", config_file.display()))
}

fn start(
    config: &TrainConfig,
    spec: &ModelSpec,
    device: &Device,
    batches_per_epoch: usize,
    options: RunOptions,
) -> Result<Trainer> {
    // The initial weights come from the run's seed too.
    device.seed(config.seed);
    // Parameters initialise lazily: draw them all now, right after seeding.
    let mut model = spec.config.init(device)?.materialize();
    if let Some(path) = &config.initial_checkpoint {
        let mut imported = load_weights(path, false)?;
        for note in adapt_for_finetuning(&model, &mut imported.dict) {
            eprintln!("{note}");
        }
        model = load_state_dict(model, &imported.dict, &imported.source)?;
    }
    let recipe = Recipe {
        epochs: config.epochs,
        cooldown_epochs: config.cooldown_epochs,
        warmup_epochs: config.warmup_epochs,
        lr: config.lr,
        min_lr: config.min_lr,
        warmup_lr: config.warmup_lr,
        optim: match config.opt.as_str() {
            "adamw" => OptimizerConfig::AdamW(AdamWConfig {
                betas: (config.opt_betas[0], config.opt_betas[1]),
                eps: config.opt_eps,
                weight_decay: config.weight_decay,
            }),
            "sgd" => OptimizerConfig::Sgd(SgdConfig {
                momentum: config.momentum,
                weight_decay: config.weight_decay,
            }),
            other => bail!("--opt {other:?}: known optimizers are adamw and sgd"),
        },
        transfer_ratio: config.transfer_ratio,
        freeze: config.freeze.clone(),
        lr_per_epoch: config.lr_per_epoch,
        grad_accum_steps: config.grad_accum_steps.max(1),
        clip_grad: config.clip_grad,
        model_ema_decay: config.model_ema.then_some(config.model_ema_decay),
        seed: config.seed,
    };
    let trainer = Trainer::new(
        model,
        &config.model,
        spec.config.clone(),
        &recipe,
        batches_per_epoch,
        &config.output,
        options,
    );
    std::fs::create_dir_all(&config.output).with_context(|| config.output.display().to_string())?;
    t2t_models::weights::write_atomically(
        &config.output.join("config.toml"),
        config.to_toml().as_bytes(),
    )?;
    Ok(trainer)
}

fn resume(
    args: &TrainArgs,
    path: &Path,
    config: &TrainConfig,
    device: &Device,
    options: RunOptions,
) -> Result<Trainer> {
    let mut trainer = Trainer::resume(path, device, options)?;
    if let Some(epochs) = args.epochs {
        let total = epochs + config.cooldown_epochs;
        if total != trainer.state.total_epochs {
            eprintln!(
                "warning: --epochs {epochs} differs from the run's {}; the learning-rate schedule keeps its original length",
                config.epochs
            );
            trainer.state.total_epochs = total;
        }
    }
    eprintln!(
        "resuming {} at epoch {}, batch {} (step {})",
        run_dir(path).display(),
        trainer.state.epoch + 1,
        trainer.state.next_batch,
        trainer.state.step
    );
    Ok(trainer)
}
