//! The checkpoint fixtures and the hand-made pickles of t2t-testing.

// Each test binary uses a different part of this module.
#![allow(dead_code, unused_imports)]

pub use t2t_testing::pickles::*;

/// `$T2T_FIXTURES/checkpoints/<name>` (see [`t2t_testing::fixture`]).
pub fn fixture(name: &str) -> Option<std::path::PathBuf> {
    t2t_testing::fixture("checkpoints", name)
}
