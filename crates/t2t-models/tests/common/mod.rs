//! The golden fixtures, and the reference code's default models that the
//! fixtures' settings apply to.

#![allow(dead_code)] // each test file uses its own part of this module

pub use t2t_testing::fixture;

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
