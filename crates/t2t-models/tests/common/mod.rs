//! Locating the golden fixtures named by `T2T_FIXTURES`, and the reference
//! code's default models that the fixtures' settings apply to.

#![allow(dead_code)] // each test file uses its own part of this module

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

/// A T2T-ViT of the official code's defaults (`T2T_ViT()`), to which a
/// fixture's settings apply.
pub fn official_t2t_defaults() -> t2t_models::registry::ModelConfig {
    use t2t_models::models::{T2tVitConfig, TokensType};
    t2t_models::registry::ModelConfig::T2tVit(T2tVitConfig::new(
        TokensType::Performer,
        768,
        12,
        12,
        4.0,
    ))
}

/// A ViT of timm's `VisionTransformer()` defaults, to which a fixture's
/// settings apply.
pub fn timm_vit_defaults() -> t2t_models::registry::ModelConfig {
    use t2t_models::models::VitConfig;
    t2t_models::registry::ModelConfig::Vit(VitConfig::new(16, 768, 12, 12, 4.0))
}
