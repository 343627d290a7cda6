//! The fuzz target, run as a property test: arbitrary bytes, mutated or
//! truncated checkpoints, and generated pickle programs that repeat costly
//! opcodes must read without a panic or a hang, within memory proportional
//! to the size of the file, and any error must be one line.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::{op, TempFile};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use t2t_pickle::{read_value, state_dicts};

const CASES: u32 = 2000;
/// Headers, pickles and zip directories sit within this many bytes of
/// either end of a checkpoint; storages fill the middle.
const EDGE: usize = 4096;

/// The most heap a read may take: the budget's constant parts (a few
/// hundred MiB at most, with room for vectors that double as they grow)
/// plus a multiple of the file's size.
fn memory_bound(file_len: usize) -> usize {
    (512 << 20) + 64 * file_len
}

/// The allocator, counting the bytes live and their peak, so that each
/// case's memory is measured rather than assumed. The cases run one at a
/// time on the test's thread.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// The largest heap any one read took, for the summary line.
static LARGEST_READ: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Costly pickle fragments, each repeated many times by a [`Case::Program`].
/// Memo 0 and 1 hold strings, 2 `argparse.Namespace`, 3 a tuple.
const FRAGMENTS: [&[u8]; 6] = [
    // A class named by two memoised strings.
    &[op::BINGET, 0, op::BINGET, 1, op::STACK_GLOBAL],
    // A pair of memoised strings.
    &[op::BINGET, 0, op::BINGET, 1, op::TUPLE2],
    // A data class called with the memoised tuple.
    &[op::BINGET, 2, op::BINGET, 3, op::REDUCE],
    // State applied to what is on top.
    &[op::EMPTY_DICT, op::BUILD],
    &[op::EMPTY_LIST],
    &[op::DUP],
];

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
    /// Memoised strings of `string_len` bytes and a tuple of `tuple_len`
    /// items, then runs of (fragment, repeat count), in a list; zipped (its
    /// pickle deflated, so that the file is small) or plain.
    Program {
        string_len: usize,
        tuple_len: usize,
        runs: Vec<(usize, usize)>,
        zipped: bool,
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

fn program(string_len: usize, tuple_len: usize, runs: &[(usize, usize)]) -> Vec<u8> {
    let mut p = common::PickleBuilder::new(4);
    for (key, fill) in [(0, "m"), (1, "n")] {
        p.str(&fill.repeat(string_len))
            .op(op::BINPUT)
            .op(key)
            .op(op::POP);
    }
    p.global("argparse", "Namespace")
        .op(op::BINPUT)
        .op(2)
        .op(op::POP);
    p.op(op::MARK).op(op::NONE);
    p.raw(&vec![op::DUP; tuple_len.saturating_sub(1)]);
    p.op(op::TUPLE).op(op::BINPUT).op(3).op(op::POP);
    p.op(op::MARK);
    for &(fragment, repeats) in runs {
        p.raw(&FRAGMENTS[fragment].repeat(repeats));
    }
    p.op(op::LIST).finish()
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
    // Sizes such that the programs would have needed gigabytes before the
    // interpreter had a budget, yet a budgeted read is refused quickly.
    let program = (
        0..65_536usize,
        0..16_384usize,
        proptest::collection::vec((0..FRAGMENTS.len(), 0..16_384usize), 1..4),
        any::<bool>(),
    )
        .prop_map(|(string_len, tuple_len, runs, zipped)| Case::Program {
            string_len,
            tuple_len,
            runs,
            zipped,
        });
    prop_oneof![1 => random, 3 => mutated, 1 => program]
}

/// Reads `path` and checks the outcome and the heap the read took.
fn read_within_bounds(path: &Path, file_len: usize) -> Result<(), TestCaseError> {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    match read_value(path) {
        Ok(value) => drop(state_dicts(&value)),
        Err(error) => prop_assert!(!error.to_string().contains('\n'), "{error}"),
    }
    let peak = PEAK.load(Ordering::Relaxed) - before;
    LARGEST_READ.fetch_max(peak, Ordering::Relaxed);
    prop_assert!(
        peak <= memory_bound(file_len),
        "reading a {file_len}-byte file took {peak} bytes of heap"
    );
    Ok(())
}

#[test]
fn arbitrary_mutated_and_generated_input_reads_within_bounds() {
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
            Case::Program {
                string_len,
                tuple_len,
                runs,
                zipped,
            } => {
                let pickle = program(string_len, tuple_len, &runs);
                if zipped {
                    common::torch_zip(&pickle, &[])
                } else {
                    pickle
                }
            }
        };
        read_within_bounds(TempFile::new("fuzz.pth", &bytes).path(), bytes.len())
    });
    eprintln!(
        "fuzz: {} cases executed in {:.1?}, the largest read took {} KiB of heap",
        executed.load(Ordering::Relaxed),
        started.elapsed(),
        LARGEST_READ.load(Ordering::Relaxed) >> 10
    );
    result.unwrap();
}
