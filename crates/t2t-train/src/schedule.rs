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
}

impl CosineSchedule {
    /// Learning rate for optimizer step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f64 {
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
}
