//! Checkpoints. Checkpoint `NAME` (`last`, `best`) of a run is the directory
//! `RUN/NAME/` holding `model.safetensors` (the model under the official
//! PyTorch names), `model-ema.safetensors` (the EMA weights) and
//! `model-state.safetensors` (optimizer moments, with the schedule position,
//! data order and history in its metadata). It is written whole into a fresh
//! temporary directory and then renamed into place, so that a run killed at
//! any moment leaves a complete checkpoint: the new one or the one before.
//! Runs of the earlier layout (`RUN/NAME.safetensors`, ...) still load.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use t2t_models::import::{CheckpointFiles, WeightsKind, CHECKPOINT_STEM, PREFERRED_WEIGHTS};
use t2t_models::weights::{read_safetensors, state_dict, write_safetensors, StateDict};
use t2t_models::{Model, ModelConfig};

use crate::config::Recipe;
use crate::metrics::{EpochRow, EvalMetrics};
use crate::optim::Optimizer;
use crate::run_dir::is_temporary_of_run_file;
use crate::schedule::CosineSchedule;
use crate::TrainError;

/// Where a run stands: enough to continue it exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub model_name: String,
    pub model_config: ModelConfig,
    /// The run's recipe, as its `config.toml` gives it.
    pub recipe: Recipe,
    /// Epochs to train, cooldown included: the recipe's, unless a resumed
    /// run was stretched (`--epochs`).
    pub total_epochs: usize,
    /// The learning rate at every step, from the recipe and the epoch's size.
    pub schedule: CosineSchedule,
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
    /// Processes that share the run: a batch is `world_size` shards of the
    /// configured batch size (absent, and 1, in runs made before data
    /// parallelism).
    #[serde(default = "one_process")]
    pub world_size: usize,
}

fn one_process() -> usize {
    1
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

/// Where a checkpoint being written lies until it is complete.
const PARTIAL_PREFIX: &str = ".partial-";
/// Where the checkpoint being replaced lies until its successor is in place.
const PREVIOUS_PREFIX: &str = ".previous-";

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

/// Writes checkpoint `name` of the run in `run` as one unit; its weights
/// file records which of the raw and EMA weights a user of it should take.
pub fn save(
    run: &Path,
    name: &str,
    model: &Model,
    ema: Option<&Model>,
    preferred: WeightsKind,
    optim: &Optimizer,
    state: &TrainState,
) -> Result<(), TrainError> {
    // Created exclusively under a fresh name, and removed if a write fails.
    let partial = tempfile::Builder::new()
        .prefix(&format!("{PARTIAL_PREFIX}{name}-"))
        .tempdir_in(run)
        .map_err(TrainError::io_at(run))?;
    let files = CheckpointFiles {
        dir: partial.path().to_path_buf(),
        stem: CHECKPOINT_STEM.to_string(),
    };
    let mut weights = weights_file(model, state);
    weights
        .metadata
        .insert(PREFERRED_WEIGHTS.to_string(), preferred.name().to_string());
    write_safetensors(&files.model(), &weights)?;
    if let Some(ema) = ema {
        write_safetensors(&files.ema(), &weights_file(ema, state))?;
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
    write_safetensors(&files.state(), &optimizer)?;
    install(run, name, &partial.keep())
}

/// Puts the complete checkpoint directory `complete` in place as
/// `run/name`. The checkpoint it replaces is first moved aside and only
/// removed once its successor is in place, so that at every moment one
/// complete checkpoint exists under `name` or under its backup name, which
/// [`recover`] puts back.
fn install(run: &Path, name: &str, complete: &Path) -> Result<(), TrainError> {
    let target = run.join(name);
    let previous = run.join(format!("{PREVIOUS_PREFIX}{name}"));
    if target.is_dir() {
        // A backup beside a complete checkpoint is left from an earlier crash.
        if previous.exists() {
            std::fs::remove_dir_all(&previous).map_err(TrainError::io_at(&previous))?;
        }
        std::fs::rename(&target, &previous).map_err(TrainError::io_at(&target))?;
    }
    std::fs::rename(complete, &target).map_err(TrainError::io_at(&target))?;
    if previous.exists() {
        std::fs::remove_dir_all(&previous).map_err(TrainError::io_at(&previous))?;
    }
    Ok(())
}

/// Finishes what a run killed while saving left in `run`: a checkpoint
/// moved aside whose successor never arrived is put back, and backups,
/// partly written checkpoints and the temporary files of the run's other
/// files are removed. Returns what was done, one line each. Call it while
/// holding the run's lock.
pub fn recover(run: &Path) -> Result<Vec<String>, TrainError> {
    let mut notes = Vec::new();
    let entries = match std::fs::read_dir(run) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(notes),
        Err(e) => return Err(TrainError::io(run, e)),
    };
    for entry in entries {
        let path = entry.map_err(TrainError::io_at(run))?.path();
        let Some(file_name) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        if is_temporary_of_run_file(file_name) && path.is_file() {
            std::fs::remove_file(&path).map_err(TrainError::io_at(&path))?;
            notes.push(format!("removed the partly written {}", path.display()));
        } else if file_name.starts_with(PARTIAL_PREFIX) {
            std::fs::remove_dir_all(&path).map_err(TrainError::io_at(&path))?;
            notes.push(format!(
                "removed the partly written checkpoint {}",
                path.display()
            ));
        } else if let Some(name) = file_name.strip_prefix(PREVIOUS_PREFIX) {
            let target = run.join(name);
            if target.is_dir() {
                std::fs::remove_dir_all(&path).map_err(TrainError::io_at(&path))?;
            } else {
                std::fs::rename(&path, &target).map_err(TrainError::io_at(&path))?;
                notes.push(format!(
                    "restored {} from before an interrupted save",
                    target.display()
                ));
            }
        }
    }
    Ok(notes)
}

/// A checkpoint read back for resuming.
pub struct Loaded {
    pub state: TrainState,
    pub weights: StateDict,
    pub ema: Option<StateDict>,
    pub optimizer_steps: u64,
    pub moments: BTreeMap<String, t2t_models::weights::HostTensor>,
}

/// Reads the checkpoint at `path`: a run directory (its `last`), a
/// checkpoint directory, or one of a checkpoint's files.
pub fn load(path: &Path) -> Result<Loaded, TrainError> {
    let files = locate(path)?;
    let state_file = files.state();
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
            TrainError::Checkpoint(format!(
                "{}: no readable train_state (damaged, or written before checkpoints carried their run's recipe)",
                state_file.display()
            ))
        })?;
    let optimizer_steps = optimizer
        .metadata
        .get("optimizer_steps")
        .and_then(|s| s.parse().ok())
        .unwrap_or(state.step);
    let weights = read_safetensors(&files.model())?;
    let ema_file = files.ema();
    let ema = if ema_file.is_file() {
        Some(read_safetensors(&ema_file)?)
    } else {
        None
    };
    for (file, dict) in [(files.model(), Some(&weights)), (ema_file, ema.as_ref())] {
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

/// The run directory a checkpoint path belongs to.
pub fn run_dir(path: &Path) -> PathBuf {
    match locate(path) {
        Ok(files) => files.run_dir(),
        Err(_) => path.to_path_buf(),
    }
}

/// The files `path` names: a directory as [`CheckpointFiles::in_dir`] reads
/// it; `DIR/STEM.safetensors` (or its `-ema`/`-state` sibling) the checkpoint
/// of those three files.
fn locate(path: &Path) -> Result<CheckpointFiles, TrainError> {
    if path.is_dir() {
        return Ok(CheckpointFiles::in_dir(path));
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
    let stem = file.trim_end_matches("-state").trim_end_matches("-ema");
    Ok(CheckpointFiles {
        dir: path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf(),
        stem: stem.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(dir: &Path, step: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("model.safetensors"), step).unwrap();
    }

    fn step_of(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("model.safetensors")).unwrap()
    }

    fn names(run: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(run)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn install_replaces_the_checkpoint_and_leaves_nothing_behind() {
        let run = tempfile::tempdir().unwrap();
        let run = run.path();
        for step in ["1", "2"] {
            let partial = run.join(format!("{PARTIAL_PREFIX}last-x{step}"));
            checkpoint(&partial, step);
            install(run, "last", &partial).unwrap();
        }
        assert_eq!(step_of(&run.join("last")), "2");
        assert_eq!(names(run), ["last"]);
    }

    #[test]
    fn recovery_finishes_or_undoes_each_interrupted_step_of_a_save() {
        let run = tempfile::tempdir().unwrap();
        let run = run.path();
        // Killed while writing: the old checkpoint stands, the partial one goes.
        checkpoint(&run.join("last"), "1");
        checkpoint(&run.join(format!("{PARTIAL_PREFIX}last-abc")), "2");
        // Killed between moving the old one aside and renaming the new one in.
        checkpoint(&run.join(format!("{PREVIOUS_PREFIX}best")), "1");
        checkpoint(&run.join(format!("{PARTIAL_PREFIX}best-def")), "2");
        // Killed while drawing curves.png.
        std::fs::write(run.join(".curves.png.g4WzqD.png"), "").unwrap();
        let notes = recover(run).unwrap();
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert_eq!(names(run), ["best", "last"]);
        assert_eq!(
            (step_of(&run.join("last")), step_of(&run.join("best"))),
            ("1".into(), "1".into())
        );
        // Killed after the new one arrived, before the backup was removed.
        checkpoint(&run.join(format!("{PREVIOUS_PREFIX}last")), "0");
        recover(run).unwrap();
        assert_eq!(names(run), ["best", "last"]);
        assert_eq!(step_of(&run.join("last")), "1");
        assert!(recover(&run.join("missing")).unwrap().is_empty());
    }

    #[test]
    fn paths_name_checkpoints_in_both_layouts() {
        let run = tempfile::tempdir().unwrap();
        let run = run.path();
        // The earlier layout: loose files.
        std::fs::write(run.join("last.safetensors"), "").unwrap();
        let legacy = locate(run).unwrap();
        assert_eq!((legacy.dir.as_path(), legacy.stem.as_str()), (run, "last"));
        assert_eq!(run_dir(&run.join("best-state.safetensors")), run);
        // The present one: a directory per checkpoint.
        checkpoint(&run.join("last"), "1");
        for path in [
            run.to_path_buf(),
            run.join("last"),
            run.join("last/model-ema.safetensors"),
        ] {
            let files = locate(&path).unwrap();
            assert_eq!(
                files.state(),
                run.join("last/model-state.safetensors"),
                "{path:?}"
            );
            assert_eq!(run_dir(&path), run, "{path:?}");
        }
    }
}
