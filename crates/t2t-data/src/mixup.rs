//! timm's `Mixup` in batch mode: one mixing decision per batch, each sample
//! mixed with its mirror in the batch (`x.flip(0)`), label smoothing folded
//! into the soft targets.

use rand::Rng;

use crate::random::beta;
use crate::transforms::{check_probability, CropBox};
use crate::DataError;

/// timm's `Mixup(mixup_alpha, cutmix_alpha, prob, switch_prob, mode='batch')`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixupConfig {
    /// Beta(alpha, alpha) for the blend weight; 0 disables mixup.
    pub mixup_alpha: f64,
    /// Beta(alpha, alpha) for the cut box; 0 disables cutmix.
    pub cutmix_alpha: f64,
    /// Probability that a batch is mixed at all.
    pub prob: f64,
    /// Probability of cutmix rather than mixup when both are enabled.
    pub switch_prob: f64,
}

impl Default for MixupConfig {
    /// The T2T-ViT recipe: mixup 0.8, cutmix 1.0, always, switching half the
    /// time.
    fn default() -> Self {
        Self {
            mixup_alpha: 0.8,
            cutmix_alpha: 1.0,
            prob: 1.0,
            switch_prob: 0.5,
        }
    }
}

/// What one batch gets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mix {
    None,
    /// `lam * x + (1 - lam) * x.flip(0)`.
    Blend {
        lam: f64,
    },
    /// The box is pasted from the mirror sample; `lam` is the uncovered
    /// fraction of the image.
    CutMix {
        region: CropBox,
        lam: f64,
    },
}

impl Mix {
    /// The weight of each sample's own label.
    pub fn lam(&self) -> f64 {
        match *self {
            Self::None => 1.0,
            Self::Blend { lam } | Self::CutMix { lam, .. } => lam,
        }
    }
}

impl MixupConfig {
    /// Alphas finite and not negative, probabilities in [0, 1]; errors name
    /// the flag.
    pub fn validate(&self) -> Result<(), DataError> {
        for (flag, alpha) in [
            ("--mixup", self.mixup_alpha),
            ("--cutmix", self.cutmix_alpha),
        ] {
            if !(alpha >= 0.0 && alpha.is_finite()) {
                return Err(DataError::config(
                    flag,
                    alpha.to_string(),
                    "a Beta alpha must be a finite number >= 0 (0 disables it)",
                ));
            }
        }
        check_probability("--mixup-prob", self.prob)?;
        check_probability("--mixup-switch-prob", self.switch_prob)
    }

    /// timm's `_params_per_batch` plus the cutmix box for an image of
    /// `height` x `width`.
    pub fn sample(&self, height: usize, width: usize, rng: &mut impl Rng) -> Mix {
        let mixup = self.mixup_alpha > 0.0;
        let cutmix = self.cutmix_alpha > 0.0;
        if !(mixup || cutmix) || rng.random::<f64>() >= self.prob {
            return Mix::None;
        }
        let use_cutmix = cutmix && (!mixup || rng.random::<f64>() < self.switch_prob);
        let alpha = if use_cutmix {
            self.cutmix_alpha
        } else {
            self.mixup_alpha
        };
        let lam = beta(rng, alpha, alpha);
        if use_cutmix {
            let region = rand_bbox(height, width, lam, rng);
            let lam = 1.0 - (region.height * region.width) as f64 / (height * width) as f64;
            Mix::CutMix { region, lam }
        } else {
            Mix::Blend { lam }
        }
    }

    /// Mixes a `[B, C, H, W]` batch in place and returns the `[B, classes]`
    /// soft targets with the batch's `lam`.
    pub fn apply(
        &self,
        images: &mut [f32],
        shape: [usize; 4],
        labels: &[usize],
        num_classes: usize,
        smoothing: f64,
        rng: &mut impl Rng,
    ) -> (Vec<f32>, f64) {
        let mix = self.sample(shape[2], shape[3], rng);
        mix_images(images, shape, &mix);
        (
            mixup_target(labels, num_classes, mix.lam(), smoothing),
            mix.lam(),
        )
    }
}

/// timm's `rand_bbox`: a box of sides `sqrt(1 - lam)` times the image's,
/// centred uniformly and clipped to the image.
fn rand_bbox(height: usize, width: usize, lam: f64, rng: &mut impl Rng) -> CropBox {
    let ratio = (1.0 - lam).sqrt();
    let (cut_h, cut_w) = (
        (height as f64 * ratio) as usize,
        (width as f64 * ratio) as usize,
    );
    let cy = rng.random_range(0..height);
    let cx = rng.random_range(0..width);
    let top = cy.saturating_sub(cut_h / 2);
    let left = cx.saturating_sub(cut_w / 2);
    let bottom = (cy + cut_h / 2).min(height);
    let right = (cx + cut_w / 2).min(width);
    CropBox {
        top,
        left,
        height: bottom - top,
        width: right - left,
    }
}

/// Mixes sample `i` with sample `B - 1 - i` for every pair at once (an odd
/// middle sample mixes with itself, which leaves it unchanged).
pub fn mix_images(images: &mut [f32], [batch, channels, height, width]: [usize; 4], mix: &Mix) {
    let sample_len = channels * height * width;
    assert_eq!(images.len(), batch * sample_len, "images are [B, C, H, W]");
    for i in 0..batch / 2 {
        let (head, tail) = images.split_at_mut((batch - 1 - i) * sample_len);
        let a = &mut head[i * sample_len..(i + 1) * sample_len];
        let b = &mut tail[..sample_len];
        match *mix {
            Mix::None => {}
            Mix::Blend { lam } => {
                let lam = lam as f32;
                for (x, y) in a.iter_mut().zip(b.iter_mut()) {
                    (*x, *y) = (lam * *x + (1.0 - lam) * *y, lam * *y + (1.0 - lam) * *x);
                }
            }
            Mix::CutMix { region, .. } => {
                for plane in 0..channels {
                    for y in region.top..region.top + region.height {
                        let start = (plane * height + y) * width + region.left;
                        let range = start..start + region.width;
                        a[range.clone()].swap_with_slice(&mut b[range]);
                    }
                }
            }
        }
    }
}

/// timm's `mixup_target`: `lam * t(y) + (1 - lam) * t(y.flip(0))` with
/// smoothed one-hot rows `t` (on `1 - s + s/C`, off `s/C`), `[B, C]`.
pub fn mixup_target(labels: &[usize], num_classes: usize, lam: f64, smoothing: f64) -> Vec<f32> {
    let own = smooth_targets(labels, num_classes, smoothing);
    if lam == 1.0 {
        return own;
    }
    let mirrored: Vec<usize> = labels.iter().rev().copied().collect();
    let other = smooth_targets(&mirrored, num_classes, smoothing);
    own.iter()
        .zip(&other)
        .map(|(&a, &b)| (lam * f64::from(a) + (1.0 - lam) * f64::from(b)) as f32)
        .collect()
}

/// One-hot rows with label smoothing, `[B, C]`, for batches without mixup.
pub fn smooth_targets(labels: &[usize], num_classes: usize, smoothing: f64) -> Vec<f32> {
    let off = smoothing / num_classes as f64;
    let on = 1.0 - smoothing + off;
    let mut targets = vec![off as f32; labels.len() * num_classes];
    for (row, &label) in labels.iter().enumerate() {
        assert!(
            label < num_classes,
            "label {label} of {num_classes} classes"
        );
        targets[row * num_classes + label] = on as f32;
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::seeded_rng;

    const SHAPE: [usize; 4] = [4, 2, 6, 5];

    /// Sample `b` holds the constant `b + 1`.
    fn constant_batch() -> Vec<f32> {
        let len = SHAPE[1] * SHAPE[2] * SHAPE[3];
        (0..SHAPE[0])
            .flat_map(|b| vec![b as f32 + 1.0; len])
            .collect()
    }

    fn assert_rows_sum_to_one(targets: &[f32], num_classes: usize) {
        for row in targets.chunks_exact(num_classes) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn smoothing_matches_the_closed_form() {
        let t = smooth_targets(&[2, 0], 4, 0.1);
        let (on, off) = (1.0 - 0.1 + 0.025, 0.025);
        assert_eq!(
            t,
            [off, off, on, off, on, off, off, off].map(|v: f64| v as f32)
        );
        assert_rows_sum_to_one(&t, 4);
    }

    #[test]
    fn blend_mixes_with_the_mirror_sample() {
        let config = MixupConfig {
            cutmix_alpha: 0.0,
            ..MixupConfig::default()
        };
        let mut images = constant_batch();
        let labels = [0, 1, 2, 3];
        let (targets, lam) =
            config.apply(&mut images, SHAPE, &labels, 5, 0.1, &mut seeded_rng(&[1]));
        assert!((0.0..=1.0).contains(&lam));
        let len = images.len() / 4;
        for b in 0..4 {
            let want = lam * (b as f64 + 1.0) + (1.0 - lam) * (4.0 - b as f64);
            assert!(images[b * len..(b + 1) * len]
                .iter()
                .all(|&v| (f64::from(v) - want).abs() < 1e-5));
            let (off, on) = (0.02, 0.92);
            let row = &targets[b * 5..(b + 1) * 5];
            // Own label weighted lam, the mirror's 1 - lam.
            let want_own = lam * on + (1.0 - lam) * off;
            assert!((f64::from(row[labels[b]]) - want_own).abs() < 1e-6);
            let want_mirror = lam * off + (1.0 - lam) * on;
            assert!((f64::from(row[labels[3 - b]]) - want_mirror).abs() < 1e-6);
        }
        assert_rows_sum_to_one(&targets, 5);
    }

    #[test]
    fn cutmix_lam_is_the_uncovered_fraction() {
        let config = MixupConfig {
            mixup_alpha: 0.0,
            ..MixupConfig::default()
        };
        for seed in 0..50 {
            let mut images = constant_batch();
            let mut rng = seeded_rng(&[seed]);
            let (targets, lam) = config.apply(&mut images, SHAPE, &[4, 3, 2, 1], 5, 0.0, &mut rng);
            assert_rows_sum_to_one(&targets, 5);
            // Pixels of sample 0 that came from sample 3 hold 4.0.
            let len = images.len() / 4;
            let pasted = images[..len].iter().filter(|&&v| v == 4.0).count();
            let covered = pasted as f64 / len as f64;
            assert!(
                (lam - (1.0 - covered)).abs() < 1e-9,
                "lam {lam}, covered {covered}"
            );
            assert!((f64::from(targets[4]) - lam).abs() < 1e-6);
            assert!((f64::from(targets[1]) - (1.0 - lam)).abs() < 1e-6);
        }
    }

    #[test]
    fn prob_zero_leaves_the_batch_alone() {
        let config = MixupConfig {
            prob: 0.0,
            ..MixupConfig::default()
        };
        let mut images = constant_batch();
        let (targets, lam) = config.apply(
            &mut images,
            SHAPE,
            &[0, 1, 2, 3],
            4,
            0.0,
            &mut seeded_rng(&[2]),
        );
        assert_eq!(lam, 1.0);
        assert_eq!(images, constant_batch());
        assert_eq!(targets, smooth_targets(&[0, 1, 2, 3], 4, 0.0));
    }

    #[test]
    fn switch_prob_splits_between_modes() {
        let config = MixupConfig::default();
        let mut rng = seeded_rng(&[3]);
        let cutmix = (0..4000)
            .filter(|_| matches!(config.sample(32, 32, &mut rng), Mix::CutMix { .. }))
            .count();
        assert!((1800..2200).contains(&cutmix), "{cutmix} of 4000 cutmix");
    }
}
