//! timm's cosine schedule stepped per iteration: linear warmup from
//! `warmup_lr`, cosine from `lr` to `min_lr`, then `min_lr` for the cooldown.

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CosineSchedule {
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_lr: f64,
    pub warmup_steps: u64,
    /// Steps of the cosine phase, warmup included (timm's `t_initial`).
    pub cosine_steps: u64,
    /// The rate changes every this many steps: 1 per iteration, or the
    /// steps of an epoch for per-epoch schedules such as PyTorch's
    /// `CosineAnnealingLR` stepped once an epoch.
    pub update_every: u64,
}

impl CosineSchedule {
    /// Learning rate for optimizer step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        let step = step - step % self.update_every.max(1);
        if step < self.warmup_steps {
            let progress = step as f64 / self.warmup_steps as f64;
            return self.warmup_lr + (self.lr - self.warmup_lr) * progress;
        }
        if step >= self.cosine_steps {
            return self.min_lr;
        }
        let progress = step as f64 / self.cosine_steps as f64;
        self.min_lr
            + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_cosine_cooldown() {
        let s = CosineSchedule {
            lr: 1e-3,
            min_lr: 1e-5,
            warmup_lr: 1e-6,
            warmup_steps: 10,
            cosine_steps: 100,
            update_every: 1,
        };
        assert_eq!(s.lr_at(0), 1e-6);
        assert!((s.lr_at(5) - (1e-6 + (1e-3 - 1e-6) * 0.5)).abs() < 1e-15);
        // Halfway through the cosine the rate is the mean of lr and min_lr.
        assert!((s.lr_at(50) - (1e-3 + 1e-5) / 2.0).abs() < 1e-12);
        assert!(s.lr_at(99) > 1e-5 && s.lr_at(99) < 1.1e-5);
        assert_eq!(s.lr_at(100), 1e-5);
        assert_eq!(s.lr_at(150), 1e-5);
        let mut previous = f64::INFINITY;
        for step in 10..100 {
            assert!(s.lr_at(step) <= previous);
            previous = s.lr_at(step);
        }
    }

    #[test]
    fn per_epoch_updates_match_cosine_annealing() {
        // CosineAnnealingLR(T_max=60, eta_min=2e-4) from 0.05, stepped per epoch of 7 steps.
        let s = CosineSchedule {
            lr: 0.05,
            min_lr: 2e-4,
            warmup_lr: 0.05,
            warmup_steps: 0,
            cosine_steps: 60 * 7,
            update_every: 7,
        };
        for epoch in [0u64, 1, 30, 59] {
            let expected = 2e-4
                + (0.05 - 2e-4) * (1.0 + (std::f64::consts::PI * epoch as f64 / 60.0).cos()) / 2.0;
            for within in 0..7 {
                assert!((s.lr_at(epoch * 7 + within) - expected).abs() < 1e-15);
            }
        }
    }
}
