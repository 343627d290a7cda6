//! From a [`TrainConfig`] to datasets and loaders.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use t2t_data::transforms::{
    ColorJitter, EvalTransform, Interpolation, RandAugment, TrainTransform,
};
use t2t_data::{
    stats, CifarDataset, CifarKind, Dataset, ImageFolder, Loader, LoaderConfig, MixupConfig, Split,
    Synthetic, Transform, Unreadable,
};
use t2t_models::registry::DataConfig;

use crate::config::{DatasetKind, TrainConfig, TrainTransformKind};
use crate::trainer::{BatchSource, HostBatch};
use crate::TrainError;

/// The train and evaluation halves of a dataset.
pub struct Datasets {
    pub train: Arc<dyn Dataset>,
    pub val: Arc<dyn Dataset>,
}

impl Datasets {
    pub fn num_classes(&self) -> usize {
        self.train.num_classes()
    }
}

/// One split of a dataset. Splits named `train` are the training halves of
/// CIFAR and of the built-in set (any other name is their test half); for an
/// image folder the split is the subfolder.
pub fn open_split(
    kind: DatasetKind,
    root: Option<&Path>,
    split: &str,
    class_map: Option<&Path>,
    synthetic: (usize, usize, u64),
) -> Result<Arc<dyn Dataset>, TrainError> {
    let half = if split == "train" {
        Split::Train
    } else {
        Split::Test
    };
    let root =
        || root.ok_or_else(|| TrainError::Config(format!("--dataset {kind:?} needs --data-dir")));
    Ok(match kind {
        DatasetKind::Synthetic => {
            let (len, img_size, seed) = synthetic;
            Arc::new(Synthetic::new(half, len, img_size, seed))
        }
        DatasetKind::Cifar10 => Arc::new(CifarDataset::open(root()?, CifarKind::Cifar10, half)?),
        DatasetKind::Cifar100 => Arc::new(CifarDataset::open(root()?, CifarKind::Cifar100, half)?),
        DatasetKind::Folder => Arc::new(ImageFolder::open(&root()?.join(split), class_map)?),
    })
}

/// Opens the configured dataset; the built-in one is generated at `img_size`.
pub fn open_datasets(config: &TrainConfig, img_size: usize) -> Result<Datasets, TrainError> {
    let open = |split: &str, len: usize| {
        open_split(
            config.data.dataset,
            config.data.data_dir.as_deref(),
            split,
            config.data.class_map.as_deref(),
            (len, img_size, config.recipe.seed),
        )
    };
    Ok(Datasets {
        train: open(&config.data.train_split, config.data.synthetic_train_size)?,
        val: open(&config.data.val_split, config.data.synthetic_val_size)?,
    })
}

/// The evaluation pipeline of a model: resize to `img_size / crop_pct`,
/// centre crop, normalise. Unreadable images are left out, so that the
/// images counted are the images evaluated.
pub fn eval_loader_config(
    data: &DataConfig,
    batch_size: usize,
    img_size: usize,
    classes: usize,
) -> Result<LoaderConfig, TrainError> {
    let mut loader = LoaderConfig::new(batch_size, img_size, classes);
    loader.transform = Transform::Eval(EvalTransform::new(data.crop_pct, data.interpolation)?);
    loader.unreadable = Unreadable::Skip;
    loader.mean = stats::single(data.mean);
    loader.std = stats::single(data.std);
    Ok(loader)
}

/// The training pipeline of the recipe.
pub fn train_loader_config(
    config: &TrainConfig,
    data: &DataConfig,
    img_size: usize,
    classes: usize,
) -> Result<LoaderConfig, TrainError> {
    let mut loader = LoaderConfig::new(config.recipe.batch_size, img_size, classes);
    loader.workers = config.data.workers;
    loader.seed = config.recipe.seed;
    loader.shuffle = true;
    loader.drop_last = true;
    loader.mean = stats::single(data.mean);
    loader.std = stats::single(data.std);
    loader.smoothing = config.data.smoothing;
    loader.mixup = (config.data.mixup > 0.0 || config.data.cutmix > 0.0).then_some(MixupConfig {
        mixup_alpha: config.data.mixup,
        cutmix_alpha: config.data.cutmix,
        prob: config.data.mixup_prob,
        switch_prob: config.data.mixup_switch_prob,
    });
    loader.transform = match config.data.train_transform {
        TrainTransformKind::PadCrop => Transform::CifarTrain {
            pad: config.data.crop_pad,
            flip: config.data.hflip > 0.0,
        },
        TrainTransformKind::Rrc => {
            let rand_augment = match config.data.aa.as_str() {
                "" => None,
                spec => Some(RandAugment::parse(spec)?.with_mean(loader.mean)),
            };
            Transform::Train(TrainTransform {
                scale: (config.data.scale[0], config.data.scale[1]),
                ratio: (config.data.ratio[0], config.data.ratio[1]),
                interpolation: Interpolation::Random,
                hflip: config.data.hflip,
                rand_augment,
                color_jitter: (config.data.color_jitter > 0.0)
                    .then(|| ColorJitter::uniform(config.data.color_jitter as f32)),
                reprob: config.data.reprob,
            })
        }
    };
    Ok(loader)
}

/// A [`Loader`] as the trainer's batch source.
pub struct LoaderSource {
    loader: Loader,
    skipped: AtomicUsize,
}

impl LoaderSource {
    pub fn new(dataset: Arc<dyn Dataset>, config: LoaderConfig) -> Result<Self, TrainError> {
        Ok(Self {
            loader: Loader::new(dataset, config)?,
            skipped: AtomicUsize::new(0),
        })
    }
}

impl BatchSource for LoaderSource {
    fn batches_per_epoch(&self) -> usize {
        self.loader.batches_per_epoch()
    }

    /// A batch whose every sample was unreadable and left out is not passed
    /// on: an empty batch has nothing to compute.
    fn epoch(
        &self,
        epoch: usize,
        start_batch: usize,
    ) -> Box<dyn Iterator<Item = Result<HostBatch, TrainError>> + '_> {
        let classes = self.loader.config().num_classes;
        Box::new(
            self.loader
                .epoch(epoch, start_batch)
                .filter_map(move |batch| {
                    let batch = match batch {
                        Ok(batch) => batch,
                        Err(error) => return Some(Err(error.into())),
                    };
                    self.skipped.fetch_add(batch.skipped, Ordering::Relaxed);
                    if batch.batch_size == 0 {
                        return None;
                    }
                    Some(Ok(HostBatch {
                        first_position: batch.first_position,
                        shape: [batch.batch_size, 3, batch.img_size, batch.img_size],
                        images: batch.images,
                        labels: batch.labels,
                        targets: batch.targets,
                        classes,
                    }))
                }),
        )
    }

    fn take_skipped(&self) -> usize {
        self.skipped.swap(0, Ordering::Relaxed)
    }
}
