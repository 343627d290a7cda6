//! The fuzz target, run as a property test: arbitrary bytes and mutated or
//! truncated checkpoints must read without a panic or a hang, and any error
//! must be one line.

mod common;

use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::TempFile;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use t2t_pickle::{read_value, state_dicts};

const CASES: u32 = 2000;
/// Headers, pickles and zip directories sit within this many bytes of
/// either end of a checkpoint; storages fill the middle.
const EDGE: usize = 4096;

/// Inputs are described compactly, so that a failing case prints readably
/// even when its seed is a multi-megabyte checkpoint.
#[derive(Debug, Clone)]
enum Case {
    Random(Vec<u8>),
    Mutated {
        seed: usize,
        /// (region: 0 head, 1 tail, 2 anywhere; offset; new byte)
        edits: Vec<(u8, usize, u8)>,
        cut: Option<usize>,
    },
}

/// Checkpoints to mutate: the hand-made ones, and the fixtures when
/// `T2T_FIXTURES` is set, with the pickles inside the zip fixtures on their
/// own too (the archive checks its CRCs, so a mutated archive seldom gets
/// as far as the pickle interpreter).
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = vec![
        ("paddle_sample".to_owned(), common::paddle_sample()),
        ("legacy_sample".to_owned(), common::legacy_sample()),
        ("zip_sample".to_owned(), common::zip_sample()),
    ];
    for name in ["official_style.pth.tar", "legacy.pth", "malicious.pth"] {
        let Some(path) = common::fixture(name) else {
            break;
        };
        let bytes = std::fs::read(&path).unwrap();
        if let Some(pickle) = zipped_pickle(&bytes) {
            seeds.push((format!("{name} data.pkl"), pickle));
        }
        seeds.push((name.to_owned(), bytes));
    }
    seeds
}

fn zipped_pickle(archive: &[u8]) -> Option<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(archive)).ok()?;
    let name = archive
        .file_names()
        .find(|name| name.ends_with("/data.pkl"))?
        .to_owned();
    let mut pickle = Vec::new();
    archive.by_name(&name).ok()?.read_to_end(&mut pickle).ok()?;
    Some(pickle)
}

fn mutate(seed: &[u8], edits: &[(u8, usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    let len = bytes.len();
    let edge = len.min(EDGE);
    for &(region, offset, byte) in edits.iter().filter(|_| len > 0) {
        let position = match region % 3 {
            0 => offset % edge,
            1 => len - 1 - offset % edge,
            _ => offset % len,
        };
        bytes[position] = byte;
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (len + 1));
    }
    bytes
}

fn cases(seed_count: usize) -> impl Strategy<Value = Case> {
    let prefixes: [&[u8]; 4] = [b"", b"\x80\x02", b"\x80\x05", b"PK\x03\x04"];
    let random = (
        proptest::sample::select(prefixes.to_vec()),
        proptest::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(|(prefix, body)| Case::Random([prefix, &body].concat()));
    let mutated = (
        0..seed_count,
        proptest::collection::vec((0..3u8, any::<usize>(), any::<u8>()), 0..8),
        proptest::option::of(any::<usize>()),
    )
        .prop_map(|(seed, edits, cut)| Case::Mutated { seed, edits, cut });
    prop_oneof![1 => random, 3 => mutated]
}

fn read_without_panicking(path: &Path) -> Result<(), TestCaseError> {
    match read_value(path) {
        Ok(value) => drop(state_dicts(&value)),
        Err(error) => prop_assert!(!error.to_string().contains('\n'), "{error}"),
    }
    Ok(())
}

#[test]
fn arbitrary_and_mutated_input_never_panics() {
    let seeds = Arc::new(seeds());
    let names: Vec<&str> = seeds.iter().map(|(name, _)| name.as_str()).collect();
    eprintln!("fuzz seeds: {}", names.join(", "));
    let executed = AtomicUsize::new(0);
    let started = Instant::now();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        // Keep regression files out of the source tree; failures print their case.
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&cases(seeds.len()), |case| {
        executed.fetch_add(1, Ordering::Relaxed);
        let bytes = match case {
            Case::Random(bytes) => bytes,
            Case::Mutated { seed, edits, cut } => mutate(&seeds[seed].1, &edits, cut),
        };
        read_without_panicking(TempFile::new("fuzz.pth", &bytes).path())
    });
    eprintln!(
        "fuzz: {} cases executed in {:.1?}",
        executed.load(Ordering::Relaxed),
        started.elapsed()
    );
    result.unwrap();
}
