//! Checkpoints: `NAME.safetensors` (the model under the official PyTorch
//! names), `NAME-ema.safetensors` (the EMA weights) and `NAME-state.safetensors`
//! (optimizer moments, with the schedule position, data order and history in
//! its metadata). Every file is written to a temporary name and renamed, and
//! all three carry the optimizer step they belong to.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use t2t_models::import::{WeightsKind, PREFERRED_WEIGHTS};
use t2t_models::weights::{read_safetensors, state_dict, write_safetensors, StateDict};
use t2t_models::{Model, ModelConfig};

use crate::metrics::{EpochRow, EvalMetrics};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::schedule::CosineSchedule;
use crate::TrainError;

/// Where a run stands: enough to continue it exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub model_name: String,
    pub model_config: ModelConfig,
    pub seed: u64,
    /// Epochs of the schedule including cooldown.
    pub total_epochs: usize,
    pub schedule: CosineSchedule,
    pub optim: OptimizerConfig,
    pub grad_accum_steps: usize,
    pub clip_grad: Option<f64>,
    pub ema_decay: Option<f64>,
    /// The EMA's decay warm-up (absent, and off, in runs made before it existed).
    #[serde(default)]
    pub ema_warmup: bool,
    pub transfer_ratio: Option<f64>,
    pub freeze: Vec<String>,
    /// The epoch in progress and the next batch of it to train on.
    pub epoch: usize,
    pub next_batch: usize,
    /// Optimizer steps done.
    pub step: u64,
    /// Running train-loss sum and count of the epoch in progress.
    pub epoch_loss_sum: f64,
    pub epoch_loss_count: usize,
    pub history: Vec<EpochRow>,
    /// The best evaluation so far, of the raw or the EMA weights: what the
    /// `best` checkpoint holds.
    #[serde(default)]
    pub best: Option<Best>,
}

/// An epoch's better evaluation, and which weights scored it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// Counted from 0, like `summary.csv`.
    pub epoch: usize,
    pub weights: WeightsKind,
    pub eval: EvalMetrics,
}

impl Best {
    /// The better of an epoch's raw and EMA evaluations; a tie goes to the EMA.
    pub fn of(row: &EpochRow) -> Self {
        let (weights, eval) = match row.ema {
            Some(ema) if ema.top1 >= row.eval.top1 => (WeightsKind::Ema, ema),
            _ => (WeightsKind::Raw, row.eval),
        };
        Self {
            epoch: row.epoch,
            weights,
            eval,
        }
    }
}

pub fn model_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.safetensors"))
}

pub fn ema_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}-ema.safetensors"))
}

pub fn state_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}-state.safetensors"))
}

fn weights_file(model: &Model, state: &TrainState) -> StateDict {
    let mut dict = state_dict(model);
    dict.metadata = HashMap::from([
        ("model".to_string(), state.model_name.clone()),
        (
            "model_config".to_string(),
            serde_json::to_string(&state.model_config).expect("serialisable"),
        ),
        ("step".to_string(), state.step.to_string()),
    ]);
    dict
}

/// Writes checkpoint `name` into `dir`; its weights file records which of
/// the raw and EMA weights a user of the checkpoint should take.
pub fn save(
    dir: &Path,
    name: &str,
    model: &Model,
    ema: Option<&Model>,
    preferred: WeightsKind,
    optim: &Optimizer,
    state: &TrainState,
) -> Result<(), TrainError> {
    let mut weights = weights_file(model, state);
    weights
        .metadata
        .insert(PREFERRED_WEIGHTS.to_string(), preferred.name().to_string());
    write_safetensors(&model_path(dir, name), &weights)?;
    if let Some(ema) = ema {
        write_safetensors(&ema_path(dir, name), &weights_file(ema, state))?;
    }
    let optimizer = StateDict {
        tensors: optim.state(),
        metadata: HashMap::from([
            (
                "train_state".to_string(),
                serde_json::to_string(state).expect("serialisable"),
            ),
            ("optimizer_steps".to_string(), optim.steps.to_string()),
            ("step".to_string(), state.step.to_string()),
        ]),
    };
    write_safetensors(&state_path(dir, name), &optimizer)?;
    Ok(())
}

/// A checkpoint read back for resuming.
pub struct Loaded {
    pub state: TrainState,
    pub weights: StateDict,
    pub ema: Option<StateDict>,
    pub optimizer_steps: u64,
    pub moments: BTreeMap<String, t2t_models::weights::HostTensor>,
}

/// Reads checkpoint `name` from `dir` (or, when `path` names a
/// `*.safetensors` model file of a run, the checkpoint it belongs to).
pub fn load(path: &Path) -> Result<Loaded, TrainError> {
    let (dir, name) = locate(path)?;
    let state_file = state_path(&dir, &name);
    if !state_file.is_file() {
        return Err(TrainError::Checkpoint(format!(
            "{}: no training state beside the weights; only a run's own checkpoints can be resumed",
            state_file.display()
        )));
    }
    let optimizer = read_safetensors(&state_file)?;
    let state: TrainState = optimizer
        .metadata
        .get("train_state")
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or_else(|| {
            TrainError::Checkpoint(format!("{}: no readable train_state", state_file.display()))
        })?;
    let optimizer_steps = optimizer
        .metadata
        .get("optimizer_steps")
        .and_then(|s| s.parse().ok())
        .unwrap_or(state.step);
    let weights = read_safetensors(&model_path(&dir, &name))?;
    let ema_file = ema_path(&dir, &name);
    let ema = if ema_file.is_file() {
        Some(read_safetensors(&ema_file)?)
    } else {
        None
    };
    for (file, dict) in [
        (model_path(&dir, &name), Some(&weights)),
        (ema_file, ema.as_ref()),
    ] {
        let Some(dict) = dict else { continue };
        if dict.metadata.get("step") != Some(&state.step.to_string()) {
            return Err(TrainError::Checkpoint(format!(
                "{}: written at another step than {} (an interrupted save?)",
                file.display(),
                state_file.display()
            )));
        }
    }
    Ok(Loaded {
        state,
        weights,
        ema,
        optimizer_steps,
        moments: optimizer.tensors,
    })
}

/// The run directory a checkpoint path belongs to: the path itself when it
/// is a directory, else the folder holding the checkpoint file.
pub fn run_dir(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    }
}

/// `DIR` means `DIR/last`; `DIR/NAME.safetensors` (or `-ema`/`-state`) means `NAME`.
fn locate(path: &Path) -> Result<(PathBuf, String), TrainError> {
    if path.is_dir() {
        return Ok((path.to_path_buf(), "last".to_string()));
    }
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .and_then(|f| f.strip_suffix(".safetensors"))
        .ok_or_else(|| {
            TrainError::Checkpoint(format!(
                "{}: not a run directory or checkpoint file",
                path.display()
            ))
        })?;
    let name = file.trim_end_matches("-state").trim_end_matches("-ema");
    Ok((run_dir(path), name.to_string()))
}
