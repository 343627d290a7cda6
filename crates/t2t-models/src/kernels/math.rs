//! Element-wise functions for the kernels' inner loops. They are branch-free
//! so that loops over slices vectorise, and `vectorised` compiles such a loop
//! for the widest instruction set the CPU has (AVX-512, AVX2+FMA or SSE2),
//! or the one `T2T_SIMD` allows (see [`super::simd`]).

/// Runs `body` compiled for the best instruction set available at run time;
/// the loops inside it must be `#[inline(always)]` all the way down.
#[inline(always)]
pub(crate) fn vectorised<R>(body: impl FnOnce() -> R) -> R {
    super::simd::arch().dispatch(body)
}

/// Σ aᵢ·bᵢ over sixteen running sums, so that the loop vectorises (a single
/// running sum fixes the order of the additions and cannot).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let (a_blocks, b_blocks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_blocks
        .remainder()
        .iter()
        .zip(b_blocks.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in a_blocks.zip(b_blocks) {
        for i in 0..LANES {
            acc[i] += a[i] * b[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Σ f(aᵢ), vectorised like [`dot`].
#[inline(always)]
pub(crate) fn sum_by(a: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let blocks = a.chunks_exact(LANES);
    let tail: f32 = blocks.remainder().iter().map(|&v| f(v)).sum();
    for block in blocks {
        for i in 0..LANES {
            acc[i] += f(block[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// max aᵢ (−∞ for an empty slice), vectorised like [`dot`].
#[inline(always)]
pub(crate) fn max(a: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [f32::NEG_INFINITY; LANES];
    let blocks = a.chunks_exact(LANES);
    let tail = blocks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for block in blocks {
        for i in 0..LANES {
            acc[i] = if block[i] > acc[i] { block[i] } else { acc[i] };
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// eˣ, relative error below 2e-7; arguments are clamped to [−87.3, 88], so
/// results below about 1.2e-38 come out as that value instead of a denormal
/// or 0, and results never overflow.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // Adding 1.5·2²³ rounds to the nearest integer, and the low bits of the
    // sum then hold that integer.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.3, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // r in [−ln2/2, ln2/2]; eʳ by its Taylor series to r⁷ (error < 6e-9).
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    let exponent = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    p * f32::from_bits(((exponent + 127) as u32) << 23)
}

/// erf(x) by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), odd-extended.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152,
        1.061_405_4,
    ];
    let z = x.abs();
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * exp(-z * z);
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_standard_library_across_the_range() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!((0.0..1.3e-38).contains(&exp(-200.0)));
        assert!(exp(200.0).is_finite());
    }

    #[test]
    fn sums_match_the_definition() {
        let a: Vec<f32> = (0..37).map(|v| v as f32 * 0.25 - 3.0).collect();
        let b: Vec<f32> = (0..37).map(|v| (v as f32).cos()).collect();
        let want: f64 = a.iter().zip(&b).map(|(a, b)| (a * b) as f64).sum();
        assert!((dot(&a, &b) as f64 - want).abs() < 1e-5);
        assert_eq!(sum_by(&a, |v| v), a.iter().sum::<f32>());
        assert_eq!(max(&b), b.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)));
        assert_eq!(max(&b[..3]), b[0]);
        assert_eq!(sum_by(&a, |v| v * v), a.iter().map(|v| v * v).sum::<f32>());
    }

    #[test]
    fn erf_matches_reference_values() {
        // erf at a few points (Abramowitz & Stegun table 7.1).
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (2.0, 0.995_322_3),
            (-1.5, -0.966_105_1),
        ] {
            assert!(
                (erf(x) - want).abs() < 2e-7,
                "erf({x}) = {} vs {want}",
                erf(x)
            );
        }
    }
}
