use std::path::Path;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use t2t_data::Shard;
use t2t_models::device::Placement;
use t2t_models::import::{adapt_for_finetuning, WeightsChoice};
use t2t_models::registry::{self, ModelSpec};
use t2t_models::weights::{load_state_dict, state_dict};
use t2t_models::ModelKwarg;
use t2t_train::checkpoint::{self, run_dir};
use t2t_train::config::{choice_name, flag, DatasetKind, Recipe, TrainConfig, TrainLayer};
use t2t_train::data::{eval_loader_config, open_datasets, train_loader_config, LoaderSource};
use t2t_train::distributed::Collective;
use t2t_train::metrics::{EpochRow, EvalMetrics};
use t2t_train::run_dir::{clear_run, run_files, RunLock};
use t2t_train::trainer::{BatchSource, Observer, Outcome, RunOptions, StepReport, Trainer};

use super::{check_image_model, load_weights, open_device, print_json};
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

/// The observer of the processes that do not lead a shared run.
struct Silent;

impl Observer for Silent {
    fn step(&mut self, _: &StepReport) {}
    fn epoch(&mut self, _: &EpochRow) {}
    fn message(&mut self, _: &str) {}
}

/// Trains a model; under `mpirun` the processes share every batch, and
/// process 0 alone writes the run directory and talks to the user.
pub fn run(args: TrainArgs, processes: Rc<dyn Collective>) -> Result<ExitCode> {
    let leads = processes.leads();
    let placement = open_device(&args.device)?;
    let device = placement.device.clone().autodiff();
    // A stop requested for the first part of a run does not carry over to its resumption.
    let options = |config: &TrainConfig| RunOptions {
        recovery_interval: config.run.recovery_interval,
        stop_after_steps: match args.resume {
            Some(_) => args.settings.run.stop_after_steps,
            None => config.run.stop_after_steps,
        },
    };
    let (mut config, _lock) = set_up_run(&args, &*processes)?;
    let mut spec = run_model(&config)?;
    let img_size = spec.config.img_size();
    let datasets = open_datasets(&config, img_size)?;
    if datasets.val.is_empty() {
        bail!(
            "the evaluation split {:?} holds no image: nothing to evaluate the run on",
            config.data.val_split
        );
    }
    // The head follows the dataset unless asked otherwise.
    let classes = *config
        .model
        .num_classes
        .get_or_insert(datasets.num_classes());
    let source = config.sources.entry("num_classes".into());
    source.or_insert_with(|| "the dataset".into());
    spec.config.apply(&[ModelKwarg::NumClasses(classes)])?;
    let resumed = match &args.resume {
        Some(path) => Some(Trainer::resume(path, &device, options(&config))?),
        None => None,
    };
    let run_world_size = resumed
        .as_ref()
        .map_or(processes.world_size(), |t| t.state.world_size);
    let batch_size = batch_per_process(&config, run_world_size, &*processes)?;
    let shard = Shard {
        index: processes.rank(),
        count: processes.world_size(),
    };
    let data = config.data_config(&spec.data);
    let mut train_config = train_loader_config(&config, &data, img_size, classes)?;
    train_config.batch_size = batch_size;
    train_config.shard = shard;
    let train = LoaderSource::new(Arc::clone(&datasets.train), train_config)?;
    let mut eval_config = eval_loader_config(&data, batch_size, img_size, classes)?;
    eval_config.workers = config.data.workers;
    eval_config.shard = shard;
    let val = LoaderSource::new(Arc::clone(&datasets.val), eval_config)?;
    let trainer = match (resumed, &args.resume) {
        (Some(trainer), Some(path)) => {
            check_matches_state(&config, &spec, train.batches_per_epoch(), &trainer)?;
            continue_run(&args, path, &config, trainer, leads)
        }
        _ => start(
            &config,
            &spec,
            &device,
            train.batches_per_epoch(),
            options(&config),
            leads,
        )?,
    };
    let mut trainer = trainer.shared_with(Rc::clone(&processes))?;

    let steps_per_epoch = train
        .batches_per_epoch()
        .div_ceil(trainer.state.recipe.grad_accum_steps) as u64;
    if leads {
        warn_about_ema_horizon(&config, steps_per_epoch * trainer.state.total_epochs as u64);
        eprintln!(
            "training {} ({:.2}M params) on {:?} with {} ({}): {} train / {} eval images, {} epochs, output {}",
            config.model.model,
            t2t_models::complexity::param_counts(&trainer.model).all as f64 / 1e6,
            config.data.dataset,
            placement.backend,
            placement.adapter,
            datasets.train.len(),
            val_len(&config),
            trainer.state.total_epochs,
            trainer.output.display()
        );
        if processes.world_size() > 1 {
            eprintln!(
                "data parallel: {} processes of {batch_size} images each, batches of {} images per optimizer step",
                processes.world_size(),
                batch_size * processes.world_size() * trainer.state.recipe.grad_accum_steps
            );
        }
        if config.data.hflip > 0.0 {
            eprintln!(
                "augmentation: {} with horizontal flips at p = {} (--hflip 0 turns them off for images that are not mirror-symmetric)",
                choice_name(config.data.train_transform),
                config.data.hflip
            );
        }
    }
    let mut observer: Box<dyn Observer> = match leads {
        true => Box::new(Progress { bar: None }),
        false => Box::new(Silent),
    };
    let started = std::time::Instant::now();
    let outcome = trainer.run(&train, Some(&val), observer.as_mut())?;
    let seconds = started.elapsed().as_secs_f64();
    if !leads {
        return Ok(ExitCode::SUCCESS);
    }
    if let Outcome::Stopped { step } = outcome {
        eprintln!(
            "stopped after step {step}; continue with: t2t train --resume {}",
            trainer.output.display()
        );
    }
    let written: Vec<&str> = ["summary.csv", "curves.png", "last", "best"]
        .into_iter()
        .filter(|name| trainer.output.join(name).exists())
        .collect();
    if args.json {
        print_json(&summary(&trainer, &placement, seconds, &outcome, &written));
    } else {
        eprintln!("{}", closing_line(&trainer, seconds, &written));
    }
    Ok(ExitCode::SUCCESS)
}

/// The run's settings, and its directory locked by process 0, which
/// creates or recovers it while the other processes wait.
fn set_up_run(
    args: &TrainArgs,
    processes: &dyn Collective,
) -> Result<(TrainConfig, Option<RunLock>)> {
    if processes.leads() {
        let (config, lock) = match &args.resume {
            Some(path) => open_run(args, path)?,
            None => create_run(args)?,
        };
        processes.barrier();
        return Ok((config, Some(lock)));
    }
    processes.barrier();
    let config = match &args.resume {
        Some(path) => run_config(&run_dir(path))?,
        None => new_config(args)?,
    };
    Ok((config, None))
}

fn count_processes(n: usize) -> String {
    match n {
        1 => "1 process".to_string(),
        n => format!("{n} processes"),
    }
}

/// The images each process takes per micro-batch. A run keeps its batch
/// of `batch_size × processes` images: resumed on another number of
/// processes, each takes an equal share of it, or the run is refused.
fn batch_per_process(
    config: &TrainConfig,
    run_world_size: usize,
    processes: &dyn Collective,
) -> Result<usize> {
    let world_size = processes.world_size();
    if run_world_size == world_size {
        return Ok(config.recipe.batch_size);
    }
    let batch = config.recipe.batch_size * run_world_size;
    if !batch.is_multiple_of(world_size) {
        bail!(
            "the run trained on {} with batches of {batch} images; {} cannot share {batch} images equally, \
             resume it on a number of processes that divides {batch}",
            count_processes(run_world_size),
            count_processes(world_size),
        );
    }
    let share = batch / world_size;
    if processes.leads() {
        eprintln!(
            "the run trained on {} of {} images; it continues on {} of {share} images, \
             with the same batches of {batch} (results agree up to rounding; mixup pairs images within each process's share)",
            count_processes(run_world_size),
            config.recipe.batch_size,
            count_processes(world_size),
        );
    }
    Ok(share)
}

/// The run's result as JSON: the best evaluation (what the `best`
/// checkpoint holds, and what `t2t validate` of the run directory gives),
/// the last epoch's raw and EMA evaluations, and each process's checksum
/// of its final parameters (all equal: the processes trained one model).
fn summary(
    trainer: &Trainer,
    placement: &Placement,
    seconds: f64,
    outcome: &Outcome,
    written: &[&str],
) -> Value {
    let state = &trainer.state;
    let last = state.history.last();
    let metrics = |m: &EvalMetrics| json!({"top1": m.top1, "top5": m.top5, "loss": m.loss});
    let best = state.best.as_ref();
    json!({
        "epochs": state.history.len(),
        "train_loss": last.map(|row| row.train_loss),
        "top1": best.map(|b| b.eval.top1),
        "top5": best.map(|b| b.eval.top5),
        "eval_loss": best.map(|b| b.eval.loss),
        "weights": best.map(|b| b.weights.name()),
        "best_epoch": best.map(|b| b.epoch),
        "final": {
            "raw": last.map(|row| metrics(&row.eval)),
            "ema": last.and_then(|row| row.ema.as_ref().map(metrics)),
        },
        "seconds": seconds,
        "train_seconds": trainer.timing.steps,
        "sync_seconds": trainer.timing.sync,
        "output": trainer.output,
        "written": written,
        "finished": matches!(outcome, Outcome::Finished),
        "processes": trainer.checksums.len(),
        "checksums": trainer.checksums.iter().map(|c| format!("{c:016x}")).collect::<Vec<_>>(),
        "backend": placement.backend,
        "adapter": placement.adapter,
    })
}

/// The closing summary for people: the best result and the last epoch's.
fn closing_line(trainer: &Trainer, seconds: f64, written: &[&str]) -> String {
    let state = &trainer.state;
    let best = match &state.best {
        Some(best) => format!(
            "best top-1 {:.2} top-5 {:.2} ({} weights, epoch {}, saved as best)",
            best.eval.top1,
            best.eval.top5,
            best.weights.name(),
            best.epoch + 1
        ),
        None => "no epoch finished, nothing evaluated yet".to_string(),
    };
    let last = match state.history.last() {
        Some(row) => {
            let ema = row
                .ema
                .map(|e| format!(", EMA {:.2}", e.top1))
                .unwrap_or_default();
            format!("; last epoch top-1 raw {:.2}{ema}", row.eval.top1)
        }
        None => String::new(),
    };
    format!(
        "done in {seconds:.0} s: {best}{last}; written in {}: {}",
        trainer.output.display(),
        written.join(", ")
    )
}

/// Warns when the EMA averages over more steps than the run has.
fn warn_about_ema_horizon(config: &TrainConfig, steps: u64) {
    if !config.recipe.model_ema {
        return;
    }
    let horizon = t2t_train::ema::horizon(config.recipe.model_ema_decay);
    if horizon <= steps as f64 {
        return;
    }
    let consequence = match config.recipe.model_ema_warmup {
        true => "the EMA warm-up lets the average follow the weights early on",
        false => "without --model-ema-warmup the EMA weights stay near their initialisation",
    };
    eprintln!(
        "warning: --model-ema-decay {} averages over about {horizon:.0} steps, more than this run's {steps}; {consequence}",
        config.recipe.model_ema_decay
    );
}

/// The settings and the locked output directory of a new run. A directory
/// that holds a run already is only reused when asked to (`--overwrite`).
fn create_run(args: &TrainArgs) -> Result<(TrainConfig, RunLock)> {
    let config = new_config(args)?;
    let output = &config.run.output;
    std::fs::create_dir_all(output).with_context(|| output.display().to_string())?;
    let lock = RunLock::acquire(output)?;
    recover_run(output)?;
    let existing = run_files(output);
    if !existing.is_empty() {
        if !args.overwrite {
            bail!(
                "{} holds a run already ({}); continue it with --resume {0}, or replace it with --overwrite",
                output.display(),
                existing
                    .iter()
                    .filter_map(|path| path.file_name()?.to_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        clear_run(output)?;
        eprintln!(
            "--overwrite: removed the earlier run in {}",
            output.display()
        );
    }
    Ok((config, lock))
}

/// The settings and the locked directory of the run to continue. Flags
/// that would change the run are refused, except the few that may differ.
fn open_run(args: &TrainArgs, path: &Path) -> Result<(TrainConfig, RunLock)> {
    if !path.exists() {
        bail!(
            "--resume {}: no such run directory or checkpoint",
            path.display()
        );
    }
    let run = run_dir(path);
    let lock = RunLock::acquire(&run)?;
    recover_run(&run)?;
    let config = run_config(&run)?;
    refuse_changed_settings(args, &config)?;
    if let Some(epochs) = args.settings.recipe.epochs {
        Recipe {
            epochs,
            ..config.recipe.clone()
        }
        .validate()?;
    }
    Ok((config, lock))
}

/// Completes or undoes a checkpoint save that a killed run left unfinished,
/// and removes the other files it was writing.
fn recover_run(run: &Path) -> Result<()> {
    for note in checkpoint::recover(run)? {
        eprintln!("{note}");
    }
    Ok(())
}

/// Settings a resumed run may take from the command line: they change how
/// it runs, not what it computes (`--epochs` stretches the run, with a warning).
const CHANGEABLE_ON_RESUME: &[&str] =
    &["epochs", "workers", "recovery_interval", "stop_after_steps"];

/// Refuses flags given with `--resume` whose value differs from the run's.
fn refuse_changed_settings(args: &TrainArgs, config: &TrainConfig) -> Result<()> {
    let run = serde_json::to_value(config)?;
    let Value::Object(flags) = serde_json::to_value(&args.settings)? else {
        unreachable!("the flags serialise as a map");
    };
    for (key, value) in flags {
        if CHANGEABLE_ON_RESUME.contains(&key.as_str()) || run.get(&key) == Some(&value) {
            continue;
        }
        let changeable: Vec<String> = CHANGEABLE_ON_RESUME.iter().map(|key| flag(key)).collect();
        bail!(
            "{} {value} differs from the resumed run's {} (its config.toml); a resumed run keeps its settings, only {} may change",
            flag(&key),
            run.get(&key).unwrap_or(&Value::Null),
            changeable.join(", ")
        );
    }
    Ok(())
}

/// Refuses a run whose `config.toml` describes another run than its
/// checkpoint: another model, recipe or schedule.
fn check_matches_state(
    config: &TrainConfig,
    spec: &ModelSpec,
    batches_per_epoch: usize,
    trainer: &Trainer,
) -> Result<()> {
    let state = &trainer.state;
    let recipe = &config.recipe;
    let pairs = [
        ("model", json!(config.model.model), json!(state.model_name)),
        (
            "model configuration",
            json!(spec.config),
            json!(state.model_config),
        ),
        ("recipe", json!(recipe), json!(state.recipe)),
        (
            "learning-rate schedule (learning rates, epochs, batch size, dataset size)",
            json!(recipe.schedule(batches_per_epoch)),
            json!(state.schedule),
        ),
    ];
    for (what, in_config, in_state) in pairs {
        if in_config != in_state {
            bail!(
                "{}: config.toml and the checkpoint describe different runs: {what} {in_config} in config.toml, {in_state} in the checkpoint",
                trainer.output.display()
            );
        }
    }
    Ok(())
}

fn val_len(config: &TrainConfig) -> String {
    match config.data.dataset {
        DatasetKind::Synthetic => config.data.synthetic_val_size.to_string(),
        _ => "all".to_string(),
    }
}

/// The model of a run: its registered name with the run's overrides. The
/// recipe's `--drop` and `--drop-path` come first, so that the same rates
/// given in `--model-kwargs` (the user's own words for this model) win.
fn run_model(config: &TrainConfig) -> Result<ModelSpec> {
    let model = &config.model;
    let mut spec = registry::find(&model.model)?;
    spec.config.apply(&[
        ModelKwarg::DropRate(model.drop),
        ModelKwarg::DropPathRate(model.drop_path),
    ])?;
    let overrides = ModelOverrides {
        img_size: model.img_size,
        num_classes: model.num_classes,
        model_kwargs: model.model_kwargs.clone(),
    };
    overrides.apply(&mut spec.config)?;
    check_image_model(spec)
}

/// The settings of a new run: preset, then config file, then flags.
fn new_config(args: &TrainArgs) -> Result<TrainConfig> {
    Ok(TrainConfig::resolve(
        args.settings.clone(),
        args.config_file.as_deref(),
    )?)
}

/// The resolved settings saved in run directory `run`.
fn run_config(run: &Path) -> Result<TrainConfig> {
    let config_file = run.join("config.toml");
    TrainConfig::resolve(TrainLayer::default(), Some(&config_file))
        .with_context(|| format!("{}: the run's resolved config", config_file.display()))
}

fn start(
    config: &TrainConfig,
    spec: &ModelSpec,
    device: &Device,
    batches_per_epoch: usize,
    options: RunOptions,
    leads: bool,
) -> Result<Trainer> {
    // The initial weights come from the run's seed, drawn by the CPU
    // backend's generator whatever the device, so that a seed starts the
    // same run everywhere. Parameters initialise lazily: draw them all now,
    // right after seeding.
    let cpu = Device::flex().autodiff();
    cpu.seed(config.recipe.seed);
    let mut model = spec.config.init(&cpu)?.materialize();
    if let Some(path) = &config.model.initial_checkpoint {
        let mut imported = load_weights(path, WeightsChoice::Preferred)?;
        for note in adapt_for_finetuning(&model, &mut imported.dict, &imported.source)? {
            if leads {
                eprintln!("{note}");
            }
        }
        model = load_state_dict(model, &imported.dict, &imported.source)?;
    }
    if *device != cpu {
        model = load_state_dict(
            spec.config.init(device)?,
            &state_dict(&model),
            "the initial weights",
        )?;
    }
    let trainer = Trainer::new(
        model,
        &config.model.model,
        spec.config.clone(),
        &config.recipe,
        batches_per_epoch,
        &config.run.output,
        options,
    );
    if leads {
        t2t_models::weights::write_atomically(
            &config.run.output.join("config.toml"),
            config.to_toml().as_bytes(),
        )?;
    }
    Ok(trainer)
}

/// The resumed `trainer`, run for `--epochs` when given.
fn continue_run(
    args: &TrainArgs,
    path: &Path,
    config: &TrainConfig,
    mut trainer: Trainer,
    leads: bool,
) -> Trainer {
    if let Some(epochs) = args.settings.recipe.epochs {
        let total = epochs + config.recipe.cooldown_epochs;
        if total != trainer.state.total_epochs && leads {
            eprintln!(
                "warning: --epochs {epochs} differs from the run's {}; the learning-rate schedule keeps its original length",
                config.recipe.epochs
            );
        }
        trainer.state.total_epochs = total;
    }
    if leads {
        eprintln!(
            "resuming {} at epoch {}, batch {} (step {})",
            run_dir(path).display(),
            trainer.state.epoch + 1,
            trainer.state.next_batch,
            trainer.state.step
        );
    }
    trainer
}
