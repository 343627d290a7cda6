//! A run interrupted mid-epoch and resumed gives the same per-step losses
//! and the same final weights as the run left alone; a non-finite loss stops
//! the run and keeps the last good checkpoint.

mod common;

use common::{one_hot_batch, uniform_stream, Quiet};

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use t2t_data::derive_seed;
use t2t_models::registry;
use t2t_models::weights::{load_state_dict, read_safetensors, state_dict, StateDict};
use t2t_models::ModelConfig;
use t2t_train::config::{preset, Preset, Recipe};
use t2t_train::trainer::{BatchSource, HostBatch, Outcome, RunOptions, Trainer};
use t2t_train::TrainError;

const CLASSES: usize = 4;
const BATCH: usize = 4;
const SIZE: usize = 32;

/// Deterministic random batches: batch `i` of epoch `e` is a function of (e, i).
struct RandomBatches {
    batches: usize,
    poison: Option<(usize, usize)>,
}

impl BatchSource for RandomBatches {
    fn batches_per_epoch(&self) -> usize {
        self.batches
    }

    fn epoch(
        &self,
        epoch: usize,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<HostBatch, TrainError>> + '_> {
        Box::new((start..self.batches).map(move |index| {
            let mut uniform = uniform_stream(derive_seed(&[epoch as u64, index as u64]));
            let mut next = || uniform() * 2.0 - 1.0;
            let mut images: Vec<f32> = (0..BATCH * 3 * SIZE * SIZE).map(|_| next()).collect();
            if self.poison == Some((epoch, index)) {
                images[0] = f32::NAN;
            }
            let labels: Vec<usize> = (0..BATCH).map(|b| (b + index) % CLASSES).collect();
            Ok(one_hot_batch(index * BATCH, images, labels, SIZE, CLASSES))
        }))
    }
}

fn recipe() -> Recipe {
    Recipe {
        epochs: 2,
        cooldown_epochs: 1,
        warmup_epochs: 1,
        lr: 1e-3,
        min_lr: 1e-5,
        warmup_lr: 1e-6,
        transfer_ratio: None,
        freeze: Vec::new(),
        lr_per_epoch: false,
        grad_accum_steps: 2,
        clip_grad: Some(1.0),
        model_ema: true,
        model_ema_decay: 0.9,
        model_ema_warmup: true,
        seed: 42,
        // AdamW with timm's defaults.
        ..preset(Preset::Cifar, "t2t_vit_7_cifar")
            .recipe
            .resolve()
            .unwrap()
    }
}

/// The random generator behind dropout masks is global: the tests of this
/// file take turns.
static SERIAL: Mutex<()> = Mutex::new(());

/// Every trainer starts from the same weights.
fn new_trainer(output: &Path, options: RunOptions) -> Trainer {
    static INITIAL: OnceLock<(ModelConfig, StateDict)> = OnceLock::new();
    let (config, weights) = INITIAL.get_or_init(|| {
        let mut config = registry::find("t2t_vit_7_cifar").unwrap().config;
        config
            .apply_kwargs(&[
                "embed_dim=64",
                "depth=2",
                "num_heads=2",
                "num_classes=4",
                "drop_path_rate=0.1",
            ])
            .unwrap();
        let weights = state_dict(&config.init(&t2t_models::device::for_tests()).unwrap());
        (config, weights)
    });
    let model = config
        .init(&t2t_models::device::for_tests().autodiff())
        .unwrap();
    let model = load_state_dict(model, weights, "initial weights").unwrap();
    Trainer::new(
        model,
        "t2t_vit_7_cifar",
        config.clone(),
        &recipe(),
        6,
        output,
        options,
    )
}

fn losses(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("train_log.csv"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn resumed_run_matches_the_uninterrupted_one() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let temp = std::env::temp_dir().join(format!("t2t-resume-{}", std::process::id()));
    let (whole, split) = (temp.join("whole"), temp.join("split"));
    let data = RandomBatches {
        batches: 6,
        poison: None,
    };

    let outcome = new_trainer(&whole, RunOptions::default())
        .run(&data, Some(&data), &mut Quiet)
        .unwrap();
    assert!(matches!(outcome, Outcome::Finished));

    // Stop after 2 optimizer steps: epoch 0, batch 4 of 6.
    let stop = RunOptions {
        stop_after_steps: Some(2),
        ..RunOptions::default()
    };
    let outcome = new_trainer(&split, stop)
        .run(&data, Some(&data), &mut Quiet)
        .unwrap();
    assert!(matches!(outcome, Outcome::Stopped { step: 2 }));
    let mut resumed = Trainer::resume(
        &split,
        &t2t_models::device::for_tests().autodiff(),
        RunOptions::default(),
    )
    .unwrap();
    assert_eq!((resumed.state.epoch, resumed.state.next_batch), (0, 4));
    resumed.run(&data, Some(&data), &mut Quiet).unwrap();

    assert_eq!(
        losses(&whole).len(),
        1 + 3 * 3,
        "header + 3 epochs of 3 steps"
    );
    assert_eq!(losses(&whole), losses(&split));
    for file in ["last/model.safetensors", "last/model-ema.safetensors"] {
        let a = read_safetensors(&whole.join(file)).unwrap();
        let b = read_safetensors(&split.join(file)).unwrap();
        for (key, ta) in &a.tensors {
            let tb = &b.tensors[key];
            for (x, y) in ta.values.iter().zip(&tb.values) {
                assert!(
                    (x - y).abs() <= 1e-5 * x.abs().max(1e-3),
                    "{file} {key}: {x} vs {y}"
                );
            }
        }
    }
    let summary = std::fs::read_to_string(split.join("summary.csv")).unwrap();
    assert_eq!(
        summary,
        std::fs::read_to_string(whole.join("summary.csv")).unwrap()
    );
    assert_eq!(summary.lines().count(), 4);
    std::fs::remove_dir_all(&temp).ok();
}

#[test]
fn non_finite_loss_stops_and_keeps_the_checkpoint() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("t2t-nan-{}", std::process::id()));
    let clean = RandomBatches {
        batches: 6,
        poison: None,
    };
    new_trainer(
        &dir,
        RunOptions {
            stop_after_steps: Some(3),
            ..RunOptions::default()
        },
    )
    .run(&clean, None, &mut Quiet)
    .unwrap();
    let before = std::fs::read(dir.join("last/model.safetensors")).unwrap();

    let poisoned = RandomBatches {
        batches: 6,
        poison: Some((1, 2)),
    };
    let mut resumed = Trainer::resume(
        &dir,
        &t2t_models::device::for_tests().autodiff(),
        RunOptions::default(),
    )
    .unwrap();
    let err = resumed.run(&poisoned, None, &mut Quiet).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::NonFinite {
                step: 5,
                epoch: 1,
                batch: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("step 5"));
    // The checkpoint written at the end of epoch 0 is the last good one, untouched.
    let after = std::fs::read(dir.join("last/model.safetensors")).unwrap();
    assert!(
        before == after,
        "the failed run must not overwrite the last checkpoint"
    );
    let state = t2t_train::checkpoint::load(&dir).unwrap().state;
    assert_eq!((state.epoch, state.next_batch, state.step), (1, 0, 3));
    std::fs::remove_dir_all(&dir).ok();
}
