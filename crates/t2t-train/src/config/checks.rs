//! The range of every setting: a value with no meaning is refused with its
//! flag and what it must be, whether it came from a flag, a file or a saved run.

use t2t_data::transforms::{EvalTransform, RandAugment};

use super::{DataSettings, DatasetKind, ModelSettings, Recipe, RunSettings};
use crate::TrainError;

/// Bounds that keep step counts and sizes far from overflow and from
/// allocations no machine can make; real runs stay orders of magnitude below.
const MAX_EPOCHS: usize = 1_000_000;
const MAX_BATCH: usize = 1 << 16;
const MAX_IMAGE_SIDE: usize = 1 << 14;
const MAX_WORKERS: usize = 1024;

/// `Err` naming `flag` and its `value` unless `valid`; `range` says what is.
fn check(
    flag: &str,
    value: impl std::fmt::Debug,
    valid: bool,
    range: impl FnOnce() -> String,
) -> Result<(), TrainError> {
    if valid {
        return Ok(());
    }
    Err(TrainError::Config(format!(
        "{flag} {value:?}: must be {}",
        range()
    )))
}

fn counts(counts: &[(&str, usize, usize, usize)]) -> Result<(), TrainError> {
    for &(flag, value, low, high) in counts {
        check(flag, value, (low..=high).contains(&value), || {
            format!("in [{low}, {high}]")
        })?;
    }
    Ok(())
}

fn at_least_one<T: Into<u64> + Copy>(settings: &[(&str, Option<T>)]) -> Result<(), TrainError> {
    for &(flag, value) in settings {
        if let Some(value) = value {
            check(flag, value.into(), value.into() >= 1, || {
                "at least 1".into()
            })?;
        }
    }
    Ok(())
}

/// The values a real-valued setting may take.
#[derive(Clone, Copy)]
enum Range {
    Positive,
    NonNegative,
    ClosedUnit,
    /// A rate where 1 would drop everything, smooth every label away or
    /// freeze the moments.
    HalfOpenUnit,
}

impl Range {
    fn contains(self, value: f64) -> bool {
        match self {
            Range::Positive => value.is_finite() && value > 0.0,
            Range::NonNegative => value.is_finite() && value >= 0.0,
            Range::ClosedUnit => (0.0..=1.0).contains(&value),
            Range::HalfOpenUnit => (0.0..1.0).contains(&value),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Range::Positive => "a finite number > 0",
            Range::NonNegative => "a finite number >= 0",
            Range::ClosedUnit => "in [0, 1]",
            Range::HalfOpenUnit => "in [0, 1)",
        }
    }
}

/// Every setting given (not `None`) lies in `range`.
fn within(range: Range, settings: &[(&str, Option<f64>)]) -> Result<(), TrainError> {
    for &(flag, value) in settings {
        if let Some(value) = value {
            check(flag, value, range.contains(value), || {
                range.describe().into()
            })?;
        }
    }
    Ok(())
}

/// `values` has `len` numbers (a config file can give any list).
fn numbers(flag: &str, values: &[f64], len: usize) -> Result<(), TrainError> {
    check(flag, values, values.len() == len, || {
        format!("{len} numbers")
    })
}

impl RunSettings {
    pub fn validate(&self) -> Result<(), TrainError> {
        let Self {
            preset: _,
            output: _,
            recovery_interval,
            stop_after_steps,
        } = self;
        at_least_one(&[
            ("--recovery-interval", *recovery_interval),
            ("--stop-after-steps", *stop_after_steps),
        ])
    }
}

impl ModelSettings {
    pub fn validate(&self) -> Result<(), TrainError> {
        let Self {
            model: _,
            // Checked against the model when they are applied to it.
            model_kwargs: _,
            img_size,
            num_classes,
            initial_checkpoint: _,
            drop,
            drop_path,
        } = self;
        counts(&[("--img-size", img_size.unwrap_or(1), 1, MAX_IMAGE_SIDE)])?;
        at_least_one(&[("--num-classes", num_classes.map(|n| n as u64))])?;
        within(
            Range::HalfOpenUnit,
            &[("--drop", Some(*drop)), ("--drop-path", Some(*drop_path))],
        )
    }
}

impl DataSettings {
    pub fn validate(&self) -> Result<(), TrainError> {
        let Self {
            dataset,
            data_dir: _,
            train_split: _,
            val_split: _,
            class_map: _,
            synthetic_train_size,
            synthetic_val_size,
            workers,
            train_transform: _,
            crop_pad,
            mean,
            std,
            scale,
            ratio,
            hflip,
            aa,
            color_jitter,
            reprob,
            smoothing,
            mixup,
            cutmix,
            mixup_prob,
            mixup_switch_prob,
            crop_pct,
        } = self;
        counts(&[
            ("--crop-pad", *crop_pad, 0, MAX_IMAGE_SIDE),
            ("--workers", *workers, 0, MAX_WORKERS),
        ])?;
        if *dataset == DatasetKind::Synthetic {
            at_least_one(&[
                ("--synthetic-train-size", Some(*synthetic_train_size as u64)),
                ("--synthetic-val-size", Some(*synthetic_val_size as u64)),
            ])?;
        }
        within(
            Range::NonNegative,
            &[
                ("--color-jitter", Some(*color_jitter)),
                ("--mixup", Some(*mixup)),
                ("--cutmix", Some(*cutmix)),
            ],
        )?;
        within(
            Range::ClosedUnit,
            &[
                ("--hflip", Some(*hflip)),
                ("--reprob", Some(*reprob)),
                ("--mixup-prob", Some(*mixup_prob)),
                ("--mixup-switch-prob", Some(*mixup_switch_prob)),
            ],
        )?;
        within(Range::HalfOpenUnit, &[("--smoothing", Some(*smoothing))])?;
        if let Some(crop_pct) = crop_pct {
            // The bound of the evaluation transform that will use it.
            let lowest = EvalTransform::MIN_CROP_PCT;
            check(
                "--crop-pct",
                crop_pct,
                (lowest..=1.0).contains(crop_pct),
                || format!("in [{lowest}, 1]"),
            )?;
        }
        numbers("--scale", scale, 2)?;
        check(
            "--scale",
            scale,
            0.0 < scale[0] && scale[0] <= scale[1] && scale[1] <= 1.0,
            || "two numbers with 0 < min <= max <= 1".into(),
        )?;
        numbers("--ratio", ratio, 2)?;
        check(
            "--ratio",
            ratio,
            0.0 < ratio[0] && ratio[0] <= ratio[1] && ratio[1].is_finite(),
            || "two finite numbers with 0 < min <= max".into(),
        )?;
        if let Some(mean) = mean {
            numbers("--mean", mean, 3)?;
            check("--mean", mean, mean.iter().all(|m| m.is_finite()), || {
                "three finite numbers".into()
            })?;
        }
        if let Some(std) = std {
            numbers("--std", std, 3)?;
            check(
                "--std",
                std,
                std.iter().all(|s| s.is_finite() && *s > 0.0),
                || "three finite numbers > 0".into(),
            )?;
        }
        if !aa.is_empty() {
            RandAugment::parse(aa)?;
        }
        Ok(())
    }
}

impl Recipe {
    pub fn validate(&self) -> Result<(), TrainError> {
        let Self {
            epochs,
            cooldown_epochs,
            warmup_epochs,
            lr,
            min_lr,
            warmup_lr,
            lr_per_epoch: _,
            opt: _,
            weight_decay,
            opt_eps,
            opt_betas,
            momentum,
            clip_grad,
            batch_size,
            grad_accum_steps,
            transfer_ratio,
            freeze: _,
            model_ema: _,
            model_ema_decay,
            model_ema_warmup: _,
            seed: _,
        } = self;
        counts(&[
            ("--epochs", *epochs, 1, MAX_EPOCHS),
            ("--cooldown-epochs", *cooldown_epochs, 0, MAX_EPOCHS),
            ("--warmup-epochs", *warmup_epochs, 0, MAX_EPOCHS),
            ("--batch-size", *batch_size, 1, MAX_BATCH),
            ("--grad-accum-steps", *grad_accum_steps, 1, MAX_BATCH),
        ])?;
        within(
            Range::Positive,
            &[
                ("--lr", Some(*lr)),
                ("--opt-eps", Some(*opt_eps)),
                ("--clip-grad", *clip_grad),
            ],
        )?;
        within(
            Range::NonNegative,
            &[
                ("--min-lr", Some(*min_lr)),
                ("--warmup-lr", Some(*warmup_lr)),
                ("--weight-decay", Some(*weight_decay)),
                ("--transfer-ratio", *transfer_ratio),
            ],
        )?;
        within(
            Range::ClosedUnit,
            &[("--model-ema-decay", Some(*model_ema_decay))],
        )?;
        numbers("--opt-betas", opt_betas, 2)?;
        within(
            Range::HalfOpenUnit,
            &[
                ("--momentum", Some(*momentum)),
                ("--opt-betas (first)", Some(opt_betas[0])),
                ("--opt-betas (second)", Some(opt_betas[1])),
            ],
        )
    }
}
