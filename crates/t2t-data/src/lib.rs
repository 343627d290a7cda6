//! Datasets, augmentation and a deterministic multi-threaded loader for
//! T2T-ViT training.
//!
//! Everything here works on plain buffers: images are RGB `u8` in HWC order,
//! batches are normalised `f32` in `[B, 3, S, S]` order with soft targets in
//! `[B, num_classes]`. A training crate turns them into tensors.
//!
//! - datasets: [`CifarDataset`], [`ImageFolder`], [`ImageFiles`], [`Synthetic`];
//! - per-sample augmentation: [`transforms`] (RandomResizedCrop, flips,
//!   RandAugment, colour jitter, random erasing, the eval resize and crop);
//! - batch augmentation: [`mixup`] (timm `Mixup` in batch mode);
//! - batching: [`Loader`], reproducible for a seed whatever the worker count.

pub mod cifar;
pub mod folder;
pub mod loader;
pub mod mixup;
mod random;
pub mod synthetic;
pub mod transforms;

use std::path::PathBuf;

pub use cifar::{CifarDataset, CifarKind};
pub use folder::{decode_file, has_image_extension, ImageFiles, ImageFolder};
pub use loader::{Batch, Epoch, Loader, LoaderConfig, Shard, Transform, Unreadable};
pub use mixup::MixupConfig;
pub use random::derive_seed;
pub use synthetic::Synthetic;

/// The channel statistics images are normalised with, as timm names them;
/// each model's data settings pick one pair.
pub mod stats {
    /// timm's `IMAGENET_DEFAULT_MEAN` and `_STD`.
    pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
    pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];
    /// timm's `IMAGENET_INCEPTION_MEAN` and `_STD`.
    pub const INCEPTION_MEAN: [f64; 3] = [0.5, 0.5, 0.5];
    pub const INCEPTION_STD: [f64; 3] = [0.5, 0.5, 0.5];
    /// CIFAR-10's, as the official transfer-learning script uses them.
    pub const CIFAR_MEAN: [f64; 3] = [0.4914, 0.4822, 0.4465];
    pub const CIFAR_STD: [f64; 3] = [0.2023, 0.1994, 0.2010];

    /// Statistics as the loader takes them.
    pub fn single(stats: [f64; 3]) -> [f32; 3] {
        stats.map(|s| s as f32)
    }
}

/// An RGB image, `u8`, HWC, row-major: pixel `(x, y)` channel `c` is at
/// `(y * width + x) * 3 + c`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Image {
    /// Wraps an HWC buffer; panics when its length is not `width * height * 3`.
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Self {
        assert_eq!(
            pixels.len(),
            width * height * 3,
            "an RGB image of {width}x{height} needs {} bytes",
            width * height * 3
        );
        Self {
            width,
            height,
            pixels,
        }
    }

    /// A black image.
    pub fn zeros(width: usize, height: usize) -> Self {
        Self::new(width, height, vec![0; width * height * 3])
    }

    /// The RGB value at column `x`, row `y`.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }
}

/// Which half of a dataset to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

/// A labelled image collection with random access.
pub trait Dataset: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn num_classes(&self) -> usize;
    fn class_names(&self) -> Vec<String>;
    /// The decoded sample: image and class index. Errors name the file.
    fn get(&self, index: usize) -> Result<(Image, usize), DataError>;
    /// Where the samples come from (a folder or file), for messages.
    fn origin(&self) -> String {
        "the dataset".into()
    }
}

/// Every message is one line and names the file or flag at fault.
#[derive(thiserror::Error, Debug)]
pub enum DataError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file exists but its content is not what the format requires.
    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("{}: cannot decode image: {reason}", path.display())]
    Decode { path: PathBuf, reason: String },
    /// Not one sample of the dataset can be read; `example` is one failure.
    #[error("{origin}: none of its {count} samples can be read ({example})")]
    NothingReadable {
        origin: String,
        count: usize,
        example: Box<DataError>,
    },
    /// A setting with an unusable value; `flag` is its command-line name.
    #[error("{flag} {value:?}: {reason}")]
    Config {
        flag: &'static str,
        value: String,
        reason: String,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            error,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn decode(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Self::Decode {
            path: path.into(),
            reason: one_line(&reason.to_string()),
        }
    }

    pub(crate) fn config(
        flag: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Config {
            flag,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// Third-party error texts occasionally span lines; the log keeps one line
/// per problem.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
