//! Pieces the training-loop tests share: batches built from images and
//! labels, and an observer that shows nothing.

use t2t_train::metrics::EpochRow;
use t2t_train::trainer::{HostBatch, Observer, StepReport};

/// A batch of square RGB `images` (`[B, 3, side, side]`, flattened) with
/// one-hot targets for `labels`, its first sample at `first_position` of
/// the epoch.
pub fn one_hot_batch(
    first_position: usize,
    images: Vec<f32>,
    labels: Vec<usize>,
    side: usize,
    classes: usize,
) -> HostBatch {
    let mut targets = vec![0.0; labels.len() * classes];
    for (row, &label) in labels.iter().enumerate() {
        targets[row * classes + label] = 1.0;
    }
    HostBatch {
        first_position,
        shape: [labels.len(), 3, side, side],
        images,
        labels,
        targets,
        classes,
    }
}

/// Ignores all progress.
pub struct Quiet;

impl Observer for Quiet {
    fn step(&mut self, _: &StepReport) {}
    fn epoch(&mut self, _: &EpochRow) {}
    fn message(&mut self, _: &str) {}
}

/// Uniform draws in [0, 1) from a stream that is a pure function of `seed`.
pub fn uniform_stream(seed: u64) -> impl FnMut() -> f32 {
    let mut state = seed;
    move || {
        state = t2t_data::derive_seed(&[state]);
        (state >> 40) as f32 / (1u64 << 24) as f32
    }
}
