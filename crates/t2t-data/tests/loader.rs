//! Loader determinism, resumption, batching and skipping of bad samples.

mod common;

use std::sync::Arc;

use t2t_data::transforms::{EvalTransform, Filter, TrainTransform};
use t2t_data::{
    Batch, DataError, Dataset, Image, ImageFolder, Loader, LoaderConfig, MixupConfig, Shard, Split,
    Synthetic, Transform, Unreadable,
};

/// Sample `i` is a 1x1 image of value `i` with label `i`.
struct Indexed(usize);

impl Dataset for Indexed {
    fn len(&self) -> usize {
        self.0
    }
    fn num_classes(&self) -> usize {
        self.0
    }
    fn class_names(&self) -> Vec<String> {
        (0..self.0).map(|i| i.to_string()).collect()
    }
    fn get(&self, index: usize) -> Result<(Image, usize), DataError> {
        Ok((Image::new(1, 1, vec![index as u8; 3]), index))
    }
}

/// The full T2T recipe at a small size: RRC, flip, RandAugment, erasing,
/// mixup/cutmix and smoothing, shuffled.
fn train_config(workers: usize) -> LoaderConfig {
    LoaderConfig {
        workers,
        shuffle: true,
        seed: 7,
        transform: Transform::Train(TrainTransform {
            reprob: 0.5,
            ..TrainTransform::default()
        }),
        mixup: Some(MixupConfig::default()),
        smoothing: 0.1,
        ..LoaderConfig::new(6, 16, 10)
    }
}

fn synthetic() -> Arc<dyn Dataset> {
    Arc::new(Synthetic::new(Split::Train, 40, 24, 3))
}

fn collect(loader: &Loader, epoch: usize, start: usize) -> Vec<Batch> {
    loader
        .epoch(epoch, start)
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn batches_do_not_depend_on_the_worker_count() {
    let reference = collect(&Loader::new(synthetic(), train_config(1)).unwrap(), 2, 0);
    assert_eq!(reference.len(), 7);
    for workers in [0, 3] {
        let loader = Loader::new(synthetic(), train_config(workers)).unwrap();
        assert!(
            collect(&loader, 2, 0) == reference,
            "{workers} workers differ"
        );
    }
    // A new loader with the same seed repeats itself; another epoch differs.
    let loader = Loader::new(synthetic(), train_config(2)).unwrap();
    assert!(collect(&loader, 2, 0) == reference);
    assert!(collect(&loader, 3, 0) != reference);
}

#[test]
fn a_resumed_epoch_yields_the_remaining_batches() {
    let loader = Loader::new(synthetic(), train_config(3)).unwrap();
    let full = collect(&loader, 1, 0);
    for start in [1, 4, 6] {
        let resumed = collect(&loader, 1, start);
        assert!(resumed == full[start..], "resuming at {start}");
        assert_eq!(resumed[0].index, start);
    }
    assert!(loader.epoch(1, 7).next().is_none());
}

#[test]
fn batches_have_the_promised_shapes_and_targets() {
    let loader = Loader::new(synthetic(), train_config(2)).unwrap();
    assert_eq!(loader.batches_per_epoch(), 7);
    let batches = collect(&loader, 0, 0);
    let sizes: Vec<usize> = batches.iter().map(|b| b.batch_size).collect();
    assert_eq!(sizes, [6, 6, 6, 6, 6, 6, 4]);
    for batch in &batches {
        assert_eq!(batch.images.len(), batch.batch_size * 3 * 16 * 16);
        assert_eq!(batch.targets.len(), batch.batch_size * 10);
        assert!(batch.images.iter().all(|v| v.is_finite()));
        for row in batch.targets.chunks_exact(10) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
    let dropped = Loader::new(
        synthetic(),
        LoaderConfig {
            drop_last: true,
            ..train_config(2)
        },
    );
    assert_eq!(dropped.unwrap().batches_per_epoch(), 6);
}

#[test]
fn a_shuffled_epoch_is_a_permutation() {
    let config = LoaderConfig {
        shuffle: true,
        smoothing: 0.1,
        ..LoaderConfig::new(8, 1, 50)
    };
    let loader = Loader::new(Arc::new(Indexed(50)), config).unwrap();
    let labels = |epoch| -> Vec<usize> {
        collect(&loader, epoch, 0)
            .into_iter()
            .flat_map(|b| b.labels)
            .collect()
    };
    let first = labels(0);
    assert_ne!(first, (0..50).collect::<Vec<_>>());
    let mut sorted = first.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    assert_ne!(labels(1), first);
    // Without mixup the targets are the smoothed one-hot rows.
    let batch = loader.epoch(0, 0).next().unwrap().unwrap();
    let (on, off) = (1.0 - 0.1 + 0.1 / 50.0, 0.1 / 50.0);
    for (row, &label) in batch.targets.chunks_exact(50).zip(&batch.labels) {
        for (class, &t) in row.iter().enumerate() {
            let want = if class == label { on } else { off };
            assert!((t - want).abs() < 1e-6);
        }
    }
}

#[test]
fn too_few_classes_is_an_error_naming_the_flag() {
    let error = Loader::new(synthetic(), LoaderConfig::new(4, 16, 5))
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "--num-classes \"5\": the dataset has 10 classes"
    );
}

#[test]
fn a_corrupt_image_is_replaced_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    for (class, names) in [
        ("a", ["1.png", "2.png", "3.jpg"]),
        ("b", ["1.png", "2.png", "3.png"]),
    ] {
        for (i, name) in names.iter().enumerate() {
            let path = dir.path().join(class).join(name);
            if name.ends_with(".jpg") {
                common::write_corrupt(&path);
            } else {
                common::write_image(&path, 6 + i as u32, 5, i as u8);
            }
        }
    }
    let dataset = Arc::new(ImageFolder::open(dir.path(), None).unwrap());
    let config = LoaderConfig {
        transform: Transform::Eval(EvalTransform::new(1.0, Filter::Bicubic).unwrap()),
        ..LoaderConfig::new(4, 5, 2)
    };
    for workers in [0, 2] {
        let loader = Loader::new(
            dataset.clone(),
            LoaderConfig {
                workers,
                ..config.clone()
            },
        )
        .unwrap();
        let batches = collect(&loader, 0, 0);
        let skipped: usize = batches.iter().map(|b| b.skipped).sum();
        assert_eq!(skipped, 1);
        assert_eq!(batches[0].skipped, 1);
        // Sample 2 (a/3.jpg) is replaced by the next in order, b/1.png.
        let labels: Vec<usize> = batches.iter().flat_map(|b| b.labels.clone()).collect();
        assert_eq!(labels, [0, 0, 1, 1, 1, 1]);
        let sample = 3 * 5 * 5;
        assert_eq!(
            batches[0].images[2 * sample..3 * sample],
            batches[0].images[3 * sample..4 * sample]
        );
    }
}

#[test]
fn evaluation_leaves_a_corrupt_image_out_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["a/1.png", "a/2.jpg", "b/1.png", "b/2.png", "b/3.png"]
        .iter()
        .enumerate()
    {
        let path = dir.path().join(name);
        if name.ends_with(".jpg") {
            common::write_corrupt(&path);
        } else {
            common::write_image(&path, 6, 5, i as u8);
        }
    }
    let dataset = Arc::new(ImageFolder::open(dir.path(), None).unwrap());
    for workers in [0, 2] {
        let config = LoaderConfig {
            workers,
            unreadable: Unreadable::Skip,
            transform: Transform::Eval(EvalTransform::new(1.0, Filter::Bicubic).unwrap()),
            ..LoaderConfig::new(2, 5, 2)
        };
        let batches = collect(&Loader::new(dataset.clone(), config).unwrap(), 0, 0);
        let sizes: Vec<usize> = batches.iter().map(|b| b.batch_size).collect();
        assert_eq!(sizes, [1, 2, 1]);
        let skipped: Vec<usize> = batches.iter().map(|b| b.skipped).collect();
        assert_eq!(skipped, [1, 0, 0]);
        let labels: Vec<usize> = batches.iter().flat_map(|b| b.labels.clone()).collect();
        assert_eq!(labels, [0, 1, 1, 1]);
        assert_eq!(batches[0].images.len(), 3 * 5 * 5);
    }
}

#[test]
fn a_dataset_with_no_readable_image_ends_the_epoch_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a/1.jpg", "a/2.jpg", "b/1.jpg"] {
        common::write_corrupt(&dir.path().join(name));
    }
    let dataset = Arc::new(ImageFolder::open(dir.path(), None).unwrap());
    for unreadable in [Unreadable::Replace, Unreadable::Skip] {
        for workers in [0, 2] {
            let config = LoaderConfig {
                workers,
                unreadable,
                ..LoaderConfig::new(2, 4, 2)
            };
            let loader = Loader::new(dataset.clone(), config).unwrap();
            let mut epoch = loader.epoch(0, 0);
            let error = epoch.next().unwrap().unwrap_err();
            assert!(matches!(error, DataError::NothingReadable { count: 3, .. }));
            let message = error.to_string();
            assert!(
                message.starts_with(&format!(
                    "{}: none of its 3 samples can be read (",
                    dir.path().display()
                )) && message.contains("cannot decode image"),
                "{message}"
            );
            assert!(epoch.next().is_none(), "an error ends the epoch");
        }
    }
}

#[test]
fn unusable_augmentation_settings_are_refused_by_the_loader() {
    let refused =
        |config: LoaderConfig| Loader::new(synthetic(), config).err().unwrap().to_string();
    let error = refused(LoaderConfig {
        transform: Transform::Train(TrainTransform {
            ratio: (0.0, 0.0),
            ..TrainTransform::default()
        }),
        ..train_config(0)
    });
    assert!(error.starts_with("--ratio \"0 0\""), "{error}");
    let error = refused(LoaderConfig {
        mixup: Some(MixupConfig {
            prob: 1.5,
            ..MixupConfig::default()
        }),
        ..train_config(0)
    });
    assert!(error.starts_with("--mixup-prob \"1.5\""), "{error}");
}

/// The images and targets of `batch` that belong to its samples `range`.
fn samples_of(batch: &Batch, range: std::ops::Range<usize>) -> (Vec<f32>, Vec<usize>, Vec<f32>) {
    let image = batch.images.len() / batch.batch_size.max(1);
    let target = batch.targets.len() / batch.batch_size.max(1);
    (
        batch.images[range.start * image..range.end * image].to_vec(),
        batch.labels[range.clone()].to_vec(),
        batch.targets[range.start * target..range.end * target].to_vec(),
    )
}

#[test]
fn the_shards_of_a_batch_together_are_the_batch_of_one_process() {
    // Augmentation without mixup: mixup pairs samples within each shard.
    let whole_config = LoaderConfig {
        mixup: None,
        drop_last: true,
        ..train_config(2)
    };
    let whole = Loader::new(synthetic(), whole_config.clone()).unwrap();
    let shards: Vec<Loader> = (0..3)
        .map(|index| {
            let config = LoaderConfig {
                batch_size: 2,
                shard: Shard { index, count: 3 },
                ..whole_config.clone()
            };
            Loader::new(synthetic(), config).unwrap()
        })
        .collect();
    for loader in &shards {
        assert_eq!(loader.batches_per_epoch(), whole.batches_per_epoch());
    }
    for epoch in 0..2 {
        let whole_batches = collect(&whole, epoch, 1);
        let shard_batches: Vec<Vec<Batch>> = shards.iter().map(|l| collect(l, epoch, 1)).collect();
        for (b, batch) in whole_batches.iter().enumerate() {
            for (index, shard) in shard_batches.iter().enumerate() {
                let part = &shard[b];
                assert_eq!(part.first_position, batch.first_position + 2 * index);
                assert_eq!(
                    samples_of(part, 0..2),
                    samples_of(batch, 2 * index..2 * index + 2),
                    "epoch {epoch}, batch {b}, shard {index}"
                );
            }
        }
    }
}

#[test]
fn evaluation_shards_count_every_image_once_when_the_count_does_not_divide() {
    let config = |shard| LoaderConfig {
        shard,
        ..LoaderConfig::new(4, 1, 10)
    };
    let whole: Vec<usize> = collect(
        &Loader::new(Arc::new(Indexed(10)), config(Shard::WHOLE)).unwrap(),
        0,
        0,
    )
    .into_iter()
    .flat_map(|b| b.labels)
    .collect();
    let mut sharded = Vec::new();
    for index in 0..3 {
        let loader = Loader::new(Arc::new(Indexed(10)), config(Shard { index, count: 3 })).unwrap();
        // 10 images in whole batches of 12: one batch, of which shard 2 holds 2 images.
        assert_eq!(loader.batches_per_epoch(), 1);
        sharded.extend(collect(&loader, 0, 0).into_iter().flat_map(|b| b.labels));
    }
    sharded.sort();
    assert_eq!(sharded, whole);
    assert_eq!(whole, (0..10).collect::<Vec<_>>());
}
