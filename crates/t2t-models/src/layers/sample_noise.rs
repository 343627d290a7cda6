//! Training noise keyed by sample. Inside [`with_sample_keys`], every
//! dropout and drop-path layer draws the mask of sample `s` from `keys[s]`
//! and from how many draws the forward pass has made before it, so that a
//! sample's noise does not depend on which batch, or which process of a
//! data-parallel run, computes it. Outside, masks come from the device's
//! generator.

use std::cell::RefCell;

/// The keys of the samples of the batch in flight, and the draws made so far.
struct Draws {
    keys: Vec<u64>,
    made: u64,
}

thread_local! {
    static DRAWS: RefCell<Option<Draws>> = const { RefCell::new(None) };
}

/// Runs `forward` with sample `s` of its batch keyed by `keys[s]`.
pub fn with_sample_keys<R>(keys: Vec<u64>, forward: impl FnOnce() -> R) -> R {
    let outer = DRAWS.replace(Some(Draws { keys, made: 0 }));
    let result = forward();
    DRAWS.set(outer);
    result
}

/// One seed per sample for the next random draw over a batch of `batch`
/// samples, when the samples are keyed.
pub(crate) fn next_sample_seeds(batch: usize) -> Option<Vec<u64>> {
    DRAWS.with_borrow_mut(|draws| {
        let draws = draws.as_mut()?;
        assert_eq!(
            draws.keys.len(),
            batch,
            "a stochastic layer saw {batch} samples, the batch was keyed for {}",
            draws.keys.len()
        );
        draws.made += 1;
        Some(
            draws
                .keys
                .iter()
                .map(|&key| splitmix64(key ^ splitmix64(draws.made)))
                .collect(),
        )
    })
}

/// A uniform draw in [0, 1) from a seed.
pub(crate) fn unit_interval(seed: u64) -> f64 {
    (seed >> 11) as f64 / (1u64 << 53) as f64
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
