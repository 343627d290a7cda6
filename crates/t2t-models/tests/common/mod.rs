//! Locating the golden fixtures named by `T2T_FIXTURES`.

use std::path::{Path, PathBuf};

/// `$T2T_FIXTURES/<folder>/<name>`, or None (after saying so) when the
/// variable is unset. A relative `T2T_FIXTURES` is taken from the workspace
/// root, where README's test command runs. A missing file fails the test.
pub fn fixture(folder: &str, name: &str) -> Option<PathBuf> {
    let Some(root) = std::env::var_os("T2T_FIXTURES") else {
        eprintln!("skipped: T2T_FIXTURES is not set");
        return None;
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = workspace.join(root).join(folder).join(name);
    assert!(path.is_file(), "fixture {} is missing", path.display());
    Some(path)
}
