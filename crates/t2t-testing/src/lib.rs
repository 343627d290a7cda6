//! What the workspace's tests share: the golden fixtures, hand-made
//! pickles and checkpoints, and image files built to mislead a decoder. A
//! dev-dependency only.

pub mod pickles;

use std::path::{Path, PathBuf};

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
        eprintln!("skipped: T2T_FIXTURES is not set");
        return None;
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = workspace.join(root).join(folder).join(name);
    assert!(path.is_file(), "fixture {} is missing", path.display());
    Some(path)
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
