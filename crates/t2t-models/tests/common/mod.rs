//! Locating the golden fixtures named by `T2T_FIXTURES`.

use std::path::{Path, PathBuf};

/// `$T2T_FIXTURES/<folder>/<name>`, or None (after saying so) when the
/// variable is unset. A relative `T2T_FIXTURES` is taken from the workspace
/// root, where README's test command runs. A missing file fails the test.
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
