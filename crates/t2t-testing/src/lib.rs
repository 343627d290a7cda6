//! What the workspace's tests share: the golden fixtures, hand-made
//! pickles and checkpoints, and image files built to mislead a decoder. A
//! dev-dependency only.

pub mod pickles;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

/// `$T2T_FIXTURES/<folder>/<name>`, or None (after saying so) when the
/// variable is unset and the fixtures are not required. A relative
/// `T2T_FIXTURES` is taken from the workspace root, where README's test
/// command runs. A missing file fails the test.
pub fn fixture(folder: &str, name: &str) -> Option<PathBuf> {
    let Some(root) = std::env::var_os("T2T_FIXTURES") else {
        assert!(
            !fixtures_required(),
            "T2T_FIXTURES is not set, and CI (or T2T_REQUIRE_FIXTURES=1) requires the fixtures"
        );
        note_skipped();
        return None;
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = workspace.join(root).join(folder).join(name);
    assert!(path.is_file(), "fixture {} is missing", path.display());
    Some(path)
}

/// The tests of this test binary that skipped for want of fixtures.
static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Counts the running test as skipped; the first skip arranges for the
/// count to be printed when the test binary exits, after its results.
fn note_skipped() {
    static REPORT_AT_EXIT: Once = Once::new();
    REPORT_AT_EXIT.call_once(|| {
        // SAFETY: registers a handler that takes no arguments and returns.
        unsafe { libc::atexit(report_skipped) };
    });
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if !skipped.contains(&test) {
        skipped.push(test);
    }
}

/// Prints the skipped tests on stderr, which the test harness does not
/// capture when written to directly.
extern "C" fn report_skipped() {
    let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    let tests = match skipped.len() {
        1 => "test",
        _ => "tests",
    };
    let _ = writeln!(
        std::io::stderr(),
        "{} {tests} skipped, T2T_FIXTURES is not set: {}",
        skipped.len(),
        skipped.join(", ")
    );
}

/// Under CI, or with `T2T_REQUIRE_FIXTURES=1`, a missing fixture fails the
/// test instead of skipping it.
pub fn fixtures_required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
        || std::env::var_os("T2T_REQUIRE_FIXTURES").is_some_and(|v| v == "1")
}

/// A PNG whose header declares `width` x `height` RGB pixels and whose image
/// data is a few bytes: what a decoder would allocate is the header's.
pub fn write_png_header(path: &Path, width: u32, height: u32) {
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", ihdr),
        (b"IDAT", vec![0x78, 0x9c, 0x03, 0x00]),
        (b"IEND", vec![]),
    ] {
        png.extend((data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend(kind);
        png.extend(&data);
        let crc = crc32fast::hash(&png[start..]);
        png.extend(crc.to_be_bytes());
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, png).unwrap();
}
