//! A run far shorter than its EMA's horizon: with the decay warm-up the EMA
//! weights score close to the raw ones; without it they stay at chance.

mod common;

use common::{one_hot_batch, uniform_stream, Quiet};

use t2t_data::derive_seed;
use t2t_models::registry;
use t2t_models::weights::{load_state_dict, state_dict};
use t2t_train::config::{preset, Preset, Recipe};
use t2t_train::metrics::EpochRow;
use t2t_train::trainer::{BatchSource, HostBatch, Outcome, RunOptions, Trainer};
use t2t_train::TrainError;

const CLASSES: usize = 4;
const BATCH: usize = 16;
const SIZE: usize = 32;

/// Noisy images whose class is which channel is bright (class 3: none).
struct ChannelClasses {
    batches: usize,
    /// Keeps the evaluation set apart from the training batches.
    stream: u64,
}

impl BatchSource for ChannelClasses {
    fn batches_per_epoch(&self) -> usize {
        self.batches
    }

    fn epoch(
        &self,
        epoch: usize,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<HostBatch, TrainError>> + '_> {
        Box::new((start..self.batches).map(move |index| {
            let mut uniform =
                uniform_stream(derive_seed(&[self.stream, epoch as u64, index as u64]));
            let mut noise = || uniform() - 0.5;
            let labels: Vec<usize> = (0..BATCH)
                .map(|b| {
                    (derive_seed(&[self.stream, epoch as u64, index as u64, b as u64]) % 4) as usize
                })
                .collect();
            let mut images = Vec::with_capacity(BATCH * 3 * SIZE * SIZE);
            for &label in &labels {
                for channel in 0..3 {
                    let level = if channel == label { 1.0 } else { -0.5 };
                    images.extend((0..SIZE * SIZE).map(|_| level + noise()));
                }
            }
            Ok(one_hot_batch(index * BATCH, images, labels, SIZE, CLASSES))
        }))
    }
}

/// 3 epochs of 60 steps with the `cifar` preset's EMA decay, whose horizon
/// is 5000 steps; returns the last epoch's row.
fn short_run(warmup: bool) -> EpochRow {
    let mut config = registry::find("t2t_vit_lite_cifar").unwrap().config;
    config
        .apply_kwargs(&["embed_dim=64", "depth=1", "num_heads=2", "num_classes=4"])
        .unwrap();
    let device = t2t_models::device::for_tests().autodiff();
    device.seed(7);
    let initial = state_dict(&config.init(&t2t_models::device::for_tests()).unwrap());
    let model = load_state_dict(config.init(&device).unwrap(), &initial, "initial").unwrap();
    let recipe = Recipe {
        epochs: 3,
        cooldown_epochs: 0,
        warmup_epochs: 0,
        lr: 2e-3,
        min_lr: 1e-4,
        warmup_lr: 2e-3,
        transfer_ratio: None,
        freeze: Vec::new(),
        lr_per_epoch: false,
        grad_accum_steps: 1,
        clip_grad: None,
        model_ema: true,
        model_ema_decay: 0.9998,
        model_ema_warmup: warmup,
        seed: 42,
        // AdamW with timm's defaults.
        ..preset(Preset::Cifar, "t2t_vit_7_cifar")
            .recipe
            .resolve()
            .unwrap()
    };
    let output = tempfile::tempdir().unwrap();
    let train = ChannelClasses {
        batches: 60,
        stream: 1,
    };
    let val = ChannelClasses {
        batches: 8,
        stream: 2,
    };
    let mut trainer = Trainer::new(
        model,
        "t2t_vit_lite_cifar",
        config,
        &recipe,
        train.batches_per_epoch(),
        output.path(),
        RunOptions::default(),
    );
    let outcome = trainer.run(&train, Some(&val), &mut Quiet).unwrap();
    assert!(matches!(outcome, Outcome::Finished));
    trainer.state.history.last().unwrap().clone()
}

#[test]
fn ema_warmup_lets_a_short_run_average_its_weights() {
    let with = short_run(true);
    let ema = with.ema.unwrap();
    assert!(with.eval.top1 > 90.0, "the raw weights learn: {with:?}");
    assert!(
        (ema.top1 - with.eval.top1).abs() <= 5.0,
        "the warmed-up EMA scores within 5 points of the raw weights: {with:?}"
    );

    let without = short_run(false);
    eprintln!("last epoch with the warm-up: {with:?}\nwithout: {without:?}");
    assert!(without.eval.top1 > 90.0, "{without:?}");
    assert!(
        without.ema.unwrap().top1 < 50.0,
        "180 steps of a 5000-step average stay near the initial weights (chance is 25%): {without:?}"
    );
}
