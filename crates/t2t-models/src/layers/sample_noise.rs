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

/// Runs `forward` with sample `s` of its batch keyed by `keys[s]`; keys
/// should be well mixed (`t2t_data::derive_seed`).
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
        // The masks hash (seed, element index); a Weyl step per draw keeps
        // the seeds of one sample's draws apart.
        let step = draws.made.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Some(draws.keys.iter().map(|&key| key ^ step).collect())
    })
}
