//! The training loop: micro-batches → accumulated gradients → clipping →
//! AdamW → EMA, with per-iteration learning rates, evaluation after every
//! epoch, and checkpoints that resume exactly (mid-epoch included).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use t2t_data::derive_seed;
use t2t_models::import::WeightsKind;
use t2t_models::layers::{set_stochastic, with_sample_keys};
use t2t_models::weights::{load_state_dict, map_keyed, KeyedMapper};
use t2t_models::{Model, ModelConfig};

use crate::checkpoint::{self, Best, TrainState};
use crate::config::Recipe;
use crate::distributed::{broadcast_weights, check_in_step, Collective, SingleProcess};
use crate::ema::ModelEma;
use crate::grads::Gradients;
use crate::loss::soft_target_cross_entropy;
use crate::metrics::{EpochRow, EvalAccumulator, EvalMetrics};
use crate::optim::Optimizer;
use crate::report;
use crate::TrainError;

/// A batch on the host: normalised images `[B, C, H, W]`, class labels and
/// the target distribution `[B, classes]` (smoothed or mixed).
pub struct HostBatch {
    pub images: Vec<f32>,
    /// Position in the epoch of the first sample: what keys each sample's
    /// training noise.
    pub first_position: usize,
    pub shape: [usize; 4],
    pub labels: Vec<usize>,
    pub targets: Vec<f32>,
    pub classes: usize,
}

impl HostBatch {
    fn images(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(self.images.clone(), self.shape), device)
    }

    fn targets(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(self.targets.clone(), [self.shape[0], self.classes]),
            device,
        )
    }
}

/// Where batches come from. Batch `i` of epoch `e` must be the same on every
/// call, so that a resumed run sees exactly the data it would have seen. An
/// error ends the epoch.
pub trait BatchSource {
    fn batches_per_epoch(&self) -> usize;
    fn epoch(
        &self,
        epoch: usize,
        start_batch: usize,
    ) -> Box<dyn Iterator<Item = Result<HostBatch, TrainError>> + '_>;
    /// Samples skipped as unreadable since the last call.
    fn take_skipped(&self) -> usize {
        0
    }
}

/// Progress of one optimizer step, for display.
pub struct StepReport {
    pub epoch: usize,
    pub total_epochs: usize,
    pub batch: usize,
    pub batches: usize,
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub img_per_s: f64,
}

/// Receives progress; the command line draws it.
pub trait Observer {
    fn step(&mut self, report: &StepReport);
    fn epoch(&mut self, row: &EpochRow);
    fn message(&mut self, text: &str);
}

/// Options that do not change the result of a run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Save `last` every this many optimizer steps.
    pub recovery_interval: Option<u64>,
    /// End the run after this many optimizer steps in total, leaving a
    /// resumable checkpoint.
    pub stop_after_steps: Option<u64>,
}

pub struct Trainer {
    pub model: Model,
    pub ema: Option<ModelEma>,
    pub optim: Optimizer,
    pub state: TrainState,
    pub output: PathBuf,
    device: Device,
    options: RunOptions,
    processes: Rc<dyn Collective>,
    /// The parameter checksums of the processes, by rank, at the latest check.
    pub checksums: Vec<u64>,
    /// Where this process's time went in this invocation.
    pub timing: Timing,
}

/// Seconds spent in the optimizer steps of a run, and the part of them spent
/// averaging gradients and losses over the processes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    pub steps: f64,
    pub sync: f64,
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    Finished,
    Stopped { step: u64 },
}

impl Trainer {
    /// A fresh run of `model` (built on an autodiff device).
    pub fn new(
        model: Model,
        model_name: &str,
        model_config: ModelConfig,
        recipe: &Recipe,
        batches_per_epoch: usize,
        output: &Path,
        options: RunOptions,
    ) -> Self {
        let schedule = recipe.schedule(batches_per_epoch);
        let device = model
            .devices()
            .into_iter()
            .next()
            .expect("a model lives on a device");
        let ema = recipe
            .ema_decay()
            .map(|decay| ModelEma::new(&model, decay, recipe.model_ema_warmup));
        Self {
            model: set_stochastic(freeze(model, &recipe.freeze), true),
            ema,
            optim: Optimizer::new(recipe.optimizer()),
            state: TrainState {
                model_name: model_name.to_string(),
                model_config,
                recipe: recipe.clone(),
                total_epochs: recipe.total_epochs(),
                schedule,
                epoch: 0,
                next_batch: 0,
                step: 0,
                epoch_loss_sum: 0.0,
                epoch_loss_count: 0,
                history: Vec::new(),
                best: None,
                world_size: 1,
            },
            output: output.to_path_buf(),
            device,
            options,
            processes: Rc::new(SingleProcess),
            checksums: Vec::new(),
            timing: Timing::default(),
        }
    }

    /// This run, trained by `processes` together: every process continues
    /// from process 0's weights, and the checkpoints record their number.
    pub fn shared_with(mut self, processes: Rc<dyn Collective>) -> Result<Self, TrainError> {
        self.model = broadcast_weights(self.model, &*processes)?;
        if let Some(ema) = self.ema.take() {
            self.ema = Some(ModelEma {
                model: broadcast_weights(ema.model, &*processes)?,
                ..ema
            });
        }
        self.state.world_size = processes.world_size();
        self.processes = processes;
        Ok(self)
    }

    /// Continues the run saved at `path` (a run directory or checkpoint file).
    pub fn resume(path: &Path, device: &Device, options: RunOptions) -> Result<Self, TrainError> {
        let loaded = checkpoint::load(path)?;
        let state = loaded.state;
        let source = path.display().to_string();
        let model = load_state_dict(state.model_config.init(device)?, &loaded.weights, &source)?;
        let ema = match (&loaded.ema, state.recipe.ema_decay()) {
            (Some(weights), Some(decay)) => Some(ModelEma {
                model: load_state_dict(
                    state.model_config.init(&device.clone().inner())?,
                    weights,
                    &source,
                )?,
                decay,
                warmup: state.recipe.model_ema_warmup,
            }),
            _ => None,
        };
        let mut optim = Optimizer::new(state.recipe.optimizer());
        optim.load_state(
            loaded.optimizer_steps,
            &loaded.moments,
            &device.clone().inner(),
        );
        let output = checkpoint::run_dir(path);
        Ok(Self {
            model: set_stochastic(freeze(model, &state.recipe.freeze), true),
            ema,
            optim,
            state,
            output,
            device: device.clone(),
            options,
            processes: Rc::new(SingleProcess),
            checksums: Vec::new(),
            timing: Timing::default(),
        })
    }

    pub fn run(
        &mut self,
        train: &dyn BatchSource,
        val: Option<&dyn BatchSource>,
        observer: &mut dyn Observer,
    ) -> Result<Outcome, TrainError> {
        if self.processes.leads() {
            std::fs::create_dir_all(&self.output).map_err(TrainError::io_at(&self.output))?;
        }
        let batches = train.batches_per_epoch();
        if batches == 0 {
            return Err(TrainError::Data(
                "the training set gives no batch (fewer images than the batch size?)".into(),
            ));
        }
        while self.state.epoch < self.state.total_epochs {
            let stopped_inside = self.train_epoch(train, batches, observer)?;
            if !stopped_inside {
                self.finish_epoch(train, val, observer)?;
            }
            if self.stop_due() && self.state.epoch < self.state.total_epochs {
                self.check_in_step("at the stop")?;
                return Ok(Outcome::Stopped {
                    step: self.state.step,
                });
            }
        }
        self.check_in_step("at the end of the run")?;
        Ok(Outcome::Finished)
    }

    /// Trains the rest of the current epoch; true when the run stops inside it.
    fn train_epoch(
        &mut self,
        train: &dyn BatchSource,
        batches: usize,
        observer: &mut dyn Observer,
    ) -> Result<bool, TrainError> {
        let accum = self.state.recipe.grad_accum_steps;
        let mut iterator = train.epoch(self.state.epoch, self.state.next_batch);
        while self.state.next_batch < batches {
            let group = accum.min(batches - self.state.next_batch);
            let started = Instant::now();
            let (mut grads, mut images, mut loss_sum) = (Gradients::default(), 0, 0.0);
            let mut first_non_finite = None;
            for micro in 0..group {
                let batch = iterator.next().ok_or_else(|| {
                    TrainError::Data("the loader ended before the epoch did".into())
                })??;
                let loss = self.micro_step(&batch, group, &mut grads);
                if !loss.is_finite() {
                    first_non_finite.get_or_insert((micro, loss));
                }
                loss_sum += loss;
                images += batch.shape[0];
            }
            // The step's loss and gradients are the averages over the processes.
            let sync_started = Instant::now();
            grads.average_over(&*self.processes);
            let world = self.processes.world_size();
            let mut totals = [loss_sum, images as f64];
            self.processes.sum_f64(&mut totals);
            self.timing.sync += sync_started.elapsed().as_secs_f64();
            let (loss_sum, images) = (totals[0] / world as f64, totals[1]);
            if !loss_sum.is_finite() {
                let (micro, value) = first_non_finite.unwrap_or((0, loss_sum));
                return Err(TrainError::NonFinite {
                    step: self.state.step + 1,
                    epoch: self.state.epoch,
                    batch: self.state.next_batch + micro,
                    value,
                });
            }
            let lr = self.state.schedule.lr_at(self.state.step);
            if let Some(max_norm) = self.state.recipe.clip_grad {
                grads.clip_global_norm(max_norm);
            }
            let ratio = self.state.recipe.transfer_ratio;
            let lr_scale = |key: &str| match ratio {
                Some(ratio) if !key.starts_with("head.") => ratio,
                _ => 1.0,
            };
            self.model = self.optim.step(self.model.clone(), &grads, lr, &lr_scale);
            if let Some(ema) = &mut self.ema {
                ema.update(&self.model, self.state.step);
            }
            self.state.step += 1;
            self.timing.steps += started.elapsed().as_secs_f64();
            self.state.next_batch += group;
            self.state.epoch_loss_sum += loss_sum;
            self.state.epoch_loss_count += group;
            let loss = loss_sum / group as f64;
            self.log_step(loss, lr)?;
            observer.step(&StepReport {
                epoch: self.state.epoch,
                total_epochs: self.state.total_epochs,
                batch: self.state.next_batch,
                batches,
                step: self.state.step,
                loss,
                lr,
                img_per_s: images / started.elapsed().as_secs_f64(),
            });
            if self.state.next_batch < batches && (self.stop_due() || self.recovery_due()) {
                self.save("last", self.latest_weights())?;
                if self.stop_due() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn stop_due(&self) -> bool {
        self.options
            .stop_after_steps
            .is_some_and(|n| self.state.step >= n)
    }

    fn recovery_due(&self) -> bool {
        self.options
            .recovery_interval
            .is_some_and(|n| self.state.step.is_multiple_of(n))
    }

    /// Forward and backward of one micro-batch; adds its gradients (scaled
    /// by 1/group) to `grads` and returns its loss. Dropout and drop-path
    /// masks are keyed by (seed, epoch, position of the sample in the
    /// epoch), so they do not depend on how the batch is split.
    fn micro_step(&mut self, batch: &HostBatch, group: usize, grads: &mut Gradients) -> f64 {
        let keys = (0..batch.shape[0])
            .map(|i| {
                let position = (batch.first_position + i) as u64;
                derive_seed(&[self.state.recipe.seed, self.state.epoch as u64, position])
            })
            .collect();
        let logits = with_sample_keys(keys, || self.model.forward(batch.images(&self.device)));
        let loss = soft_target_cross_entropy(logits, batch.targets(&self.device));
        let value = loss.clone().into_scalar::<f32>() as f64;
        let scaled = if group > 1 {
            loss.div_scalar(group as f64)
        } else {
            loss
        };
        grads.accumulate(Gradients::collect(&self.model, &scaled.backward()));
        value
    }

    /// Checks that every process holds the same parameters.
    fn check_in_step(&mut self, when: &str) -> Result<(), TrainError> {
        let ema = self.ema.as_ref().map(|ema| &ema.model);
        let models: Vec<&Model> = std::iter::once(&self.model).chain(ema).collect();
        self.checksums = check_in_step(&models, &*self.processes, when)?;
        Ok(())
    }

    fn finish_epoch(
        &mut self,
        train: &dyn BatchSource,
        val: Option<&dyn BatchSource>,
        observer: &mut dyn Observer,
    ) -> Result<(), TrainError> {
        let skipped = train.take_skipped();
        if skipped > 0 {
            observer.message(&format!(
                "epoch {}: skipped {skipped} unreadable images",
                self.state.epoch
            ));
        }
        let processes = &*self.processes;
        let eval = match val {
            Some(val) => evaluate(&self.model.valid(), val, processes)?,
            None => EvalMetrics::default(),
        };
        if eval.unreadable > 0 {
            observer.message(&format!(
                "epoch {}: evaluated {} images, left out {} unreadable",
                self.state.epoch, eval.images, eval.unreadable
            ));
        }
        let ema = match (val, &self.ema) {
            (Some(val), Some(ema)) => Some(evaluate(&ema.model, val, processes)?),
            _ => None,
        };
        let row = EpochRow {
            epoch: self.state.epoch,
            train_loss: self.state.epoch_loss_sum / self.state.epoch_loss_count.max(1) as f64,
            eval,
            lr: self.state.schedule.lr_at(self.state.step.saturating_sub(1)),
            ema,
        };
        observer.epoch(&row);
        let candidate = Best::of(&row);
        let improved = val.is_some()
            && self
                .state
                .best
                .is_none_or(|best| candidate.eval.top1 > best.eval.top1);
        self.state.history.push(row);
        self.state.epoch += 1;
        self.state.next_batch = 0;
        self.state.epoch_loss_sum = 0.0;
        self.state.epoch_loss_count = 0;
        if improved {
            self.state.best = Some(candidate);
        }
        self.check_in_step(&format!("after epoch {}", self.state.epoch))?;
        if !self.processes.leads() {
            return Ok(());
        }
        report::write_summary(&self.output, &self.state.history)?;
        if let Err(e) = report::plot_curves(&self.output.join("curves.png"), &self.state.history) {
            observer.message(&format!("curves.png not drawn: {e}"));
        }
        self.save("last", self.latest_weights())?;
        if improved {
            self.save("best", candidate.weights)?;
        }
        Ok(())
    }

    /// What `last` offers by default: the EMA weights where there are any.
    fn latest_weights(&self) -> WeightsKind {
        match self.ema {
            Some(_) => WeightsKind::Ema,
            None => WeightsKind::Raw,
        }
    }

    /// Saves checkpoint `name`; process 0 alone writes.
    fn save(&self, name: &str, preferred: WeightsKind) -> Result<(), TrainError> {
        if !self.processes.leads() {
            return Ok(());
        }
        checkpoint::save(
            &self.output,
            name,
            &self.model,
            self.ema.as_ref().map(|e| &e.model),
            preferred,
            &self.optim,
            &self.state,
        )
    }

    /// Appends `step,epoch,batch,loss,lr` to `train_log.csv`.
    fn log_step(&self, loss: f64, lr: f64) -> Result<(), TrainError> {
        if !self.processes.leads() {
            return Ok(());
        }
        let path = self.output.join("train_log.csv");
        let new = !path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        let header = if new {
            "step,epoch,batch,loss,lr\n"
        } else {
            ""
        };
        writeln!(
            file,
            "{header}{},{},{},{loss},{lr}",
            self.state.step, self.state.epoch, self.state.next_batch
        )
        .map_err(|e| TrainError::io(&path, e))
    }
}

/// Stops gradients for the parameters whose keys start with one of `prefixes`.
fn freeze(model: Model, prefixes: &[String]) -> Model {
    struct Freeze<'a>(&'a [String]);
    impl KeyedMapper for Freeze<'_> {
        fn map<const D: usize>(
            &mut self,
            key: &str,
            _: bool,
            param: Param<Tensor<D>>,
        ) -> Param<Tensor<D>> {
            match self.0.iter().any(|p| key.starts_with(p.as_str())) {
                true => param.set_require_grad(false),
                false => param,
            }
        }
    }
    if prefixes.is_empty() {
        return model;
    }
    map_keyed(model, &mut Freeze(prefixes))
}

/// Top-1, top-5 and cross entropy (hard labels) of `model` over `source`,
/// with the count of samples the source left out as unreadable. Each of
/// `processes` evaluates its shard of the batches, and every process gets
/// the totals.
pub fn evaluate(
    model: &Model,
    source: &dyn BatchSource,
    processes: &dyn Collective,
) -> Result<EvalMetrics, TrainError> {
    let device = model
        .devices()
        .into_iter()
        .next()
        .expect("a model lives on a device");
    let mut acc = EvalAccumulator::default();
    // Only this pass's unreadable samples count.
    source.take_skipped();
    for batch in source.epoch(0, 0) {
        let batch = batch?;
        let logits = model.forward(batch.images(&device));
        let one_hot = crate::loss::smoothed_targets(&batch.labels, batch.classes, 0.0, &device);
        let loss = soft_target_cross_entropy(logits.clone(), one_hot).into_scalar::<f32>() as f64;
        acc.add(loss, logits, &batch.labels);
    }
    let mut unreadable = [source.take_skipped() as f64];
    processes.sum_f64(&mut unreadable);
    Ok(EvalMetrics {
        unreadable: unreadable[0] as usize,
        ..acc.summed_over(processes).finish()
    })
}
