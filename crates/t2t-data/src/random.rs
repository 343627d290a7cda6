//! Seed derivation and the few distributions `rand` leaves to `rand_distr`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Domain tags keep the streams of different consumers of one seed apart.
pub(crate) const TAG_SHUFFLE: u64 = 1;
pub(crate) const TAG_SAMPLE: u64 = 2;
pub(crate) const TAG_MIXUP: u64 = 3;
pub(crate) const TAG_SYNTHETIC: u64 = 4;

/// A generator that is a pure function of `parts` (seed, tag, indices...).
pub(crate) fn seeded_rng(parts: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(parts))
}

/// Folds the parts through SplitMix64 so that nearby inputs (consecutive
/// indices) give unrelated seeds: the one seed mixer of the project.
pub fn derive_seed(parts: &[u64]) -> u64 {
    parts.iter().fold(0x9E37_79B9_7F4A_7C15, |acc, &part| {
        splitmix64(acc ^ splitmix64(part))
    })
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A standard normal draw (Box-Muller).
pub(crate) fn standard_normal(rng: &mut impl Rng) -> f64 {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Beta(a, b) draw as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
pub(crate) fn beta(rng: &mut impl Rng, a: f64, b: f64) -> f64 {
    let x = gamma(rng, a);
    let y = gamma(rng, b);
    x / (x + y)
}

/// A Gamma(shape, 1) draw (Marsaglia and Tsang); shapes below 1 use the
/// boost Gamma(a) = Gamma(a + 1) * U^(1/a).
fn gamma(rng: &mut impl Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.random::<f64>();
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = 1.0 - rng.random::<f64>();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_and_variance(samples: &[f64]) -> (f64, f64) {
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }

    #[test]
    fn derived_seeds_depend_on_every_part() {
        assert_eq!(derive_seed(&[1, 2, 3]), derive_seed(&[1, 2, 3]));
        assert_ne!(derive_seed(&[1, 2, 3]), derive_seed(&[1, 2, 4]));
        assert_ne!(derive_seed(&[1, 2, 3]), derive_seed(&[2, 1, 3]));
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut rng = seeded_rng(&[7]);
        let samples: Vec<f64> = (0..100_000).map(|_| standard_normal(&mut rng)).collect();
        let (mean, var) = mean_and_variance(&samples);
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn beta_matches_closed_form_moments() {
        // Beta(a, b): mean a / (a + b), variance ab / ((a + b)^2 (a + b + 1)).
        for (a, b) in [(0.8, 0.8), (1.0, 1.0), (2.0, 5.0)] {
            let mut rng = seeded_rng(&[11]);
            let samples: Vec<f64> = (0..100_000).map(|_| beta(&mut rng, a, b)).collect();
            let (mean, var) = mean_and_variance(&samples);
            let want_mean = a / (a + b);
            let want_var = a * b / ((a + b).powi(2) * (a + b + 1.0));
            assert!(
                (mean - want_mean).abs() < 0.005,
                "Beta({a},{b}) mean {mean}"
            );
            assert!((var - want_var).abs() < 0.003, "Beta({a},{b}) var {var}");
            assert!(samples.iter().all(|s| (0.0..=1.0).contains(s)));
        }
    }
}
