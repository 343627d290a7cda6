//! Training T2T-ViT models from scratch as the paper and timm do: AdamW with
//! timm's parameter groups, warmup + cosine + cooldown per iteration, label
//! smoothing and mixup targets, global-norm clipping, gradient accumulation,
//! model EMA, checkpoints that resume exactly.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod distributed;
pub mod ema;
pub mod grads;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod report;
pub mod run_dir;
pub mod schedule;
pub mod trainer;

use std::path::Path;

use t2t_models::ModelError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Dataset(#[from] t2t_data::DataError),
    #[error("{0}")]
    Checkpoint(String),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Data(String),
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{0}")]
    Diverged(String),
    #[error("loss is {value} at step {step} (epoch {epoch}, batch {batch}); stopped, the last checkpoint is kept")]
    NonFinite {
        step: u64,
        epoch: usize,
        batch: usize,
        value: f64,
    },
}

impl TrainError {
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        TrainError::Io {
            path: path.display().to_string(),
            reason: error.to_string(),
        }
    }

    /// For `map_err`: an I/O error on `path`.
    pub fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |error| Self::io(path, error)
    }
}
