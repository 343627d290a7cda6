//! A multi-threaded, reproducible batch loader.
//!
//! Every random choice is a pure function of the seed and a position:
//! - the sample order of an epoch is a shuffle seeded by `(seed, epoch)`;
//! - the augmentation of the sample at position `p` of the epoch is seeded
//!   by `(seed, epoch, p)`;
//! - the mixup decision of batch `b` is seeded by `(seed, epoch, b)`; each
//!   shard of a batch mixes its own samples, as timm does under DDP.
//!
//! So the batches do not depend on the worker count or on thread timing, and
//! an epoch started at batch `k` yields exactly batches `k..` of the full
//! epoch. In data-parallel training each process loads its [`Shard`] of
//! every batch; the shards of one batch together are exactly the batch that
//! a single process would load, augmentation included.
//! Worker `w` builds batches `k + w`, `k + w + W`, ... and the
//! consumer takes them round-robin, which keeps them in order without a
//! reorder buffer.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::Rng;

use crate::mixup::{smooth_targets, MixupConfig};
use crate::random::{seeded_rng, TAG_MIXUP, TAG_SAMPLE, TAG_SHUFFLE};
use crate::transforms::{
    hflip, normalize, pad_random_crop, random_erasing, resize, EvalTransform, Filter,
    TrainTransform,
};
use crate::{DataError, Dataset, Image};

/// Batches each worker may have ready ahead of the consumer.
const PREFETCH_PER_WORKER: usize = 2;

/// What becomes of a sample that cannot be read. Replaced or skipped, it is
/// counted in [`Batch::skipped`] and named in a warning on stderr, and an
/// epoch in which no sample at all can be read ends with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreadable {
    /// The next readable sample in epoch order takes its place, so batches
    /// keep their size (training).
    Replace,
    /// It is left out, so every sample counted was really seen
    /// (evaluation); a batch may then be smaller, or empty.
    Skip,
    /// Its error ends the epoch, for work where every sample named must be
    /// processed (embedding a list of files).
    Fail,
}

/// Which part of every batch this process loads: of a batch of
/// `batch_size × count` samples, the `batch_size` samples starting at
/// `index × batch_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole batch, for a process that trains alone.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };
}

/// The per-sample pipeline, before normalisation.
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    /// RandomResizedCrop, flip, RandAugment or jitter, then random erasing.
    Train(TrainTransform),
    /// Resize to the image size if needed, zero-pad by `pad` and take a
    /// random crop, optional horizontal flip (CIFAR training; upstream's
    /// transfer recipe is 224 with pad 28).
    CifarTrain { pad: usize, flip: bool },
    /// Resize the shorter side to `img_size / crop_pct`, centre crop.
    Eval(EvalTransform),
    /// Resize to the image size if needed, nothing else.
    None,
}

#[derive(Clone, Debug)]
pub struct LoaderConfig {
    /// Samples per batch of this process (its shard of the batch).
    pub batch_size: usize,
    pub shard: Shard,
    /// Side of the square images in a batch.
    pub img_size: usize,
    /// Worker threads; 0 builds batches on the consuming thread.
    pub workers: usize,
    pub seed: u64,
    pub shuffle: bool,
    /// Drop a final batch smaller than `batch_size`.
    pub drop_last: bool,
    pub transform: Transform,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub mixup: Option<MixupConfig>,
    /// Label smoothing folded into the targets, with or without mixup.
    pub smoothing: f64,
    /// Width of the target rows; at least the dataset's class count.
    pub num_classes: usize,
    /// What becomes of a sample that cannot be read.
    pub unreadable: Unreadable,
}

impl LoaderConfig {
    /// An evaluation-style loader: 2 workers, seed 42, no shuffle, no
    /// augmentation, ImageNet statistics, hard targets, unreadable samples
    /// replaced.
    pub fn new(batch_size: usize, img_size: usize, num_classes: usize) -> Self {
        Self {
            batch_size,
            shard: Shard::WHOLE,
            img_size,
            workers: 2,
            seed: 42,
            shuffle: false,
            drop_last: false,
            transform: Transform::None,
            mean: crate::stats::single(crate::stats::IMAGENET_MEAN),
            std: crate::stats::single(crate::stats::IMAGENET_STD),
            mixup: None,
            smoothing: 0.0,
            num_classes,
            unreadable: Unreadable::Replace,
        }
    }
}

/// One batch, ready to become tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `[B, 3, S, S]`, normalised (and mixed, with mixup).
    pub images: Vec<f32>,
    /// The true class of each sample (before mixing), for accuracy.
    pub labels: Vec<usize>,
    /// `[B, num_classes]` soft targets: smoothed one-hot, or mixed.
    pub targets: Vec<f32>,
    pub batch_size: usize,
    pub img_size: usize,
    /// Position of the batch in its epoch.
    pub index: usize,
    /// Position in the epoch of the batch's first sample.
    pub first_position: usize,
    /// Samples of this batch that could not be read (replaced or left out,
    /// as [`LoaderConfig::unreadable`] says).
    pub skipped: usize,
}

pub struct Loader {
    shared: Arc<Shared>,
}

struct Shared {
    dataset: Arc<dyn Dataset>,
    config: LoaderConfig,
}

impl Loader {
    pub fn new(dataset: Arc<dyn Dataset>, config: LoaderConfig) -> Result<Self, DataError> {
        if config.batch_size == 0 {
            return Err(DataError::config("--batch-size", "0", "must be at least 1"));
        }
        if config.shard.index >= config.shard.count {
            return Err(DataError::config(
                "shard",
                format!("{} of {}", config.shard.index, config.shard.count),
                "the shard index must be below the shard count",
            ));
        }
        if config.img_size == 0 {
            return Err(DataError::config("--img-size", "0", "must be at least 1"));
        }
        if let Transform::Train(train) = &config.transform {
            train.validate()?;
        }
        if let Some(mixup) = &config.mixup {
            mixup.validate()?;
        }
        if config.num_classes < dataset.num_classes() {
            return Err(DataError::config(
                "--num-classes",
                config.num_classes.to_string(),
                format!("the dataset has {} classes", dataset.num_classes()),
            ));
        }
        Ok(Self {
            shared: Arc::new(Shared { dataset, config }),
        })
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.shared.config
    }

    /// Batches per epoch, counted in whole batches (all shards together).
    pub fn batches_per_epoch(&self) -> usize {
        let (len, batch) = (self.shared.dataset.len(), self.shared.batch_size());
        if self.shared.config.drop_last {
            len / batch
        } else {
            len.div_ceil(batch)
        }
    }

    /// The batches `start_batch..` of `epoch`, in order. Dropping the
    /// iterator early stops the workers.
    pub fn epoch(&self, epoch: usize, start_batch: usize) -> Epoch {
        let plan = Arc::new(EpochPlan {
            order: self.shared.order(epoch),
            shared: Arc::clone(&self.shared),
            epoch,
            any_readable: OnceLock::new(),
        });
        let end = self.batches_per_epoch();
        let start = start_batch.min(end);
        let source = match self.shared.config.workers {
            0 => Source::Inline(plan),
            workers => Source::spawn(plan, workers, start, end),
        };
        Epoch {
            next: start,
            start,
            end,
            source,
        }
    }
}

impl Shared {
    /// Samples of a whole batch, every shard's together.
    fn batch_size(&self) -> usize {
        self.config.batch_size * self.config.shard.count
    }

    fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.config.shuffle {
            order.shuffle(&mut seeded_rng(&[
                self.config.seed,
                TAG_SHUFFLE,
                epoch as u64,
            ]));
        }
        order
    }
}

/// What every batch of one epoch is built from.
struct EpochPlan {
    shared: Arc<Shared>,
    epoch: usize,
    order: Vec<usize>,
    /// Whether any sample can be read, found out at the first failure.
    any_readable: OnceLock<bool>,
}

impl EpochPlan {
    fn batch(&self, index: usize) -> Result<Batch, DataError> {
        let config = &self.shared.config;
        let (size, classes) = (config.img_size, config.num_classes);
        let first = index * self.shared.batch_size() + config.shard.index * config.batch_size;
        let positions =
            first.min(self.order.len())..(first + config.batch_size).min(self.order.len());
        let capacity = positions.len();
        let mut images = Vec::with_capacity(capacity * 3 * size * size);
        let mut labels = Vec::with_capacity(capacity);
        let mut skipped = 0;
        for position in positions {
            let sample = match self.shared.dataset.get(self.order[position]) {
                Ok(sample) => Some(sample),
                Err(error) => {
                    skipped += 1;
                    self.stand_in(position, error)?
                }
            };
            if let Some((image, label)) = sample {
                images.extend(self.prepare(image, position));
                labels.push(label);
            }
        }
        let batch_size = labels.len();
        let targets = match &config.mixup {
            Some(mixup) => {
                let seed = [config.seed, TAG_MIXUP, self.epoch as u64, index as u64];
                let shape = [batch_size, 3, size, size];
                let (targets, _lam) = mixup.apply(
                    &mut images,
                    shape,
                    &labels,
                    classes,
                    config.smoothing,
                    &mut seeded_rng(&seed),
                );
                targets
            }
            None => smooth_targets(&labels, classes, config.smoothing),
        };
        Ok(Batch {
            images,
            labels,
            targets,
            batch_size,
            img_size: size,
            index,
            first_position: first,
            skipped,
        })
    }

    /// What takes the place of the unreadable sample at `position`: the
    /// next readable one in epoch order (wrapping) when replacing, so the
    /// replacement depends only on the order and on which files are bad;
    /// nothing when skipping; its own error when failing. Only the
    /// position's own failure is reported, so a bad file is counted once, at
    /// its own position.
    fn stand_in(
        &self,
        position: usize,
        error: DataError,
    ) -> Result<Option<(Image, usize)>, DataError> {
        let index = self.order[position];
        match self.shared.config.unreadable {
            Unreadable::Replace => {
                eprintln!("warning: replacing unreadable sample {index}: {error}");
                match self.next_readable(position) {
                    Some(sample) => Ok(Some(sample)),
                    None => Err(self.nothing_readable(error)),
                }
            }
            Unreadable::Skip => {
                eprintln!("warning: leaving out unreadable sample {index}: {error}");
                let any_readable = self
                    .any_readable
                    .get_or_init(|| self.next_readable(position).is_some());
                if *any_readable {
                    Ok(None)
                } else {
                    Err(self.nothing_readable(error))
                }
            }
            Unreadable::Fail => Err(error),
        }
    }

    /// The first sample after `position` in epoch order (wrapping) that
    /// can be read.
    fn next_readable(&self, position: usize) -> Option<(Image, usize)> {
        let n = self.order.len();
        (1..n).find_map(|offset| {
            let index = self.order[(position + offset) % n];
            self.shared.dataset.get(index).ok()
        })
    }

    fn nothing_readable(&self, example: DataError) -> DataError {
        DataError::NothingReadable {
            origin: self.shared.dataset.origin(),
            count: self.order.len(),
            example: Box::new(example),
        }
    }

    /// The transformed, normalised `[3, S, S]` sample; its randomness is
    /// seeded by the position alone.
    fn prepare(&self, image: Image, position: usize) -> Vec<f32> {
        let config = &self.shared.config;
        let size = config.img_size;
        let rng = &mut seeded_rng(&[config.seed, TAG_SAMPLE, self.epoch as u64, position as u64]);
        let fit = |img: &Image| {
            if (img.width, img.height) == (size, size) {
                img.clone()
            } else {
                resize(img, size, size, Filter::Bilinear)
            }
        };
        let image = match &config.transform {
            Transform::Train(train) => train.apply(&image, size, rng),
            Transform::CifarTrain { pad, flip } => {
                let mut out = pad_random_crop(&fit(&image), size, *pad, rng);
                if *flip && rng.random_bool(0.5) {
                    hflip(&mut out);
                }
                out
            }
            Transform::Eval(eval) => eval.apply(&image, size),
            Transform::None => fit(&image),
        };
        let mut chw = normalize(&image, config.mean, config.std);
        if let Transform::Train(train) = &config.transform {
            if train.reprob > 0.0 {
                random_erasing(&mut chw, 3, size, size, train.reprob, rng);
            }
        }
        chw
    }
}

/// The batches of one epoch, in order; see [`Loader::epoch`]. An error ends
/// the epoch.
pub struct Epoch {
    next: usize,
    start: usize,
    end: usize,
    source: Source,
}

enum Source {
    Inline(Arc<EpochPlan>),
    Workers {
        receivers: Vec<Receiver<Result<Batch, DataError>>>,
        handles: Vec<Option<JoinHandle<()>>>,
    },
}

impl Source {
    fn spawn(plan: Arc<EpochPlan>, workers: usize, start: usize, end: usize) -> Self {
        let (mut receivers, mut handles) = (Vec::new(), Vec::new());
        for worker in 0..workers {
            let (sender, receiver) = sync_channel(PREFETCH_PER_WORKER);
            let plan = Arc::clone(&plan);
            let handle = std::thread::Builder::new()
                .name(format!("t2t-data-{worker}"))
                .spawn(move || {
                    for index in (start + worker..end).step_by(workers) {
                        let batch = plan.batch(index);
                        let failed = batch.is_err();
                        // A closed channel means the epoch was dropped; after
                        // an error the consumer asks for nothing more.
                        if sender.send(batch).is_err() || failed {
                            return;
                        }
                    }
                })
                .expect("spawning a loader thread");
            receivers.push(receiver);
            handles.push(Some(handle));
        }
        Self::Workers { receivers, handles }
    }
}

impl Iterator for Epoch {
    /// A batch, or the error that ends the epoch early.
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let batch = match &mut self.source {
            Source::Inline(plan) => plan.batch(index),
            Source::Workers { receivers, handles } => {
                let worker = (index - self.start) % receivers.len();
                match receivers[worker].recv() {
                    Ok(batch) => batch,
                    // The worker hung up before its last batch: it panicked.
                    Err(_) => {
                        let handle = handles[worker].take().expect("a worker fails once");
                        match handle.join() {
                            Err(panic) => std::panic::resume_unwind(panic),
                            Ok(()) => unreachable!("worker {worker} ended before batch {index}"),
                        }
                    }
                }
            }
        };
        if batch.is_err() {
            self.next = self.end;
        }
        Some(batch)
    }

    /// An error may end the epoch after any batch.
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end - self.next;
        (left.min(1), Some(left))
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        if let Source::Workers { receivers, handles } = &mut self.source {
            // Closing the channels makes blocked workers return.
            receivers.clear();
            for handle in handles.iter_mut().filter_map(Option::take) {
                // A worker's panic was already reported on stderr.
                let _ = handle.join();
            }
        }
    }
}
