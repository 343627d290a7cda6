//! `--model-kwargs`: typed changes to a registered configuration, named as
//! the official constructors' keyword arguments (`depth=4`, `qkv_bias=false`).
//!
//! Each setting parses into its own variant of [`ModelKwarg`], so that a
//! value reaches the configuration as the number, flag or choice it is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::models::{Backbone, Mixer, T2tVitConfig, TokensType, VitConfig};
use crate::registry::ModelConfig;
use crate::ModelError;

/// A value a setting can hold, read from the text after `=`.
trait KwargValue: Sized {
    fn parse_kwarg(text: &str) -> Option<Self>;
}

impl KwargValue for usize {
    fn parse_kwarg(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl KwargValue for f64 {
    fn parse_kwarg(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

/// Python's spellings as well: `True`, `False`, `1`, `0`.
impl KwargValue for bool {
    fn parse_kwarg(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        }
    }
}

/// The names the configuration's serialised form gives the choices.
impl KwargValue for TokensType {
    fn parse_kwarg(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

/// Writes the enum of settings, its keys, and its `key=value` text form.
macro_rules! model_kwargs {
    ($( $(#[doc = $doc:literal])* $variant:ident($key:ident: $ty:ty), )*) => {
        /// One change to a registered configuration.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum ModelKwarg {
            $( $(#[doc = $doc])* $variant($ty), )*
        }

        impl ModelKwarg {
            /// Every key, as `--model-kwargs` spells it.
            pub const KEYS: &[&str] = &[$(stringify!($key)),*];

            pub fn key(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => stringify!($key),)*
                }
            }

            /// The setting `key` with the value in `text`; `None` for an unknown key.
            fn parse_value(key: &str, text: &str) -> Option<Result<Self, ModelError>> {
                match key {
                    $(stringify!($key) => Some(
                        <$ty as KwargValue>::parse_kwarg(text)
                            .map(Self::$variant)
                            .ok_or_else(|| ModelError::BadKwarg(
                                format!("{key}: cannot use '{text}'"),
                            )),
                    ),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for ModelKwarg {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Self::$variant(value) => write!(f, "{}={value}", stringify!($key)),)*
                }
            }
        }
    };
}

model_kwargs! {
    /// Input image side.
    ImgSize(img_size: usize),
    /// Input channels.
    InChans(in_chans: usize),
    /// Classes of the head (0: no head).
    NumClasses(num_classes: usize),
    /// Width of the blocks.
    EmbedDim(embed_dim: usize),
    /// Number of blocks.
    Depth(depth: usize),
    /// Attention heads per block.
    NumHeads(num_heads: usize),
    /// MLP hidden width over the block width.
    MlpRatio(mlp_ratio: f64),
    /// A bias on the query, key and value projections.
    QkvBias(qkv_bias: bool),
    /// Dropout after the embeddings and inside the blocks.
    DropRate(drop_rate: f64),
    /// Dropout of the attention weights.
    AttnDropRate(attn_drop_rate: f64),
    /// Stochastic-depth rate of the last block (rising linearly from 0).
    DropPathRate(drop_path_rate: f64),
    /// T2T-ViT: the layer between soft splits (`performer` or `transformer`).
    TokensType(tokens_type: TokensType),
    /// T2T-ViT: width of the T2T module's tokens.
    TokenDim(token_dim: usize),
    /// T2T-ViT: the blocks' attention scale instead of `head_dim^-0.5`.
    QkScale(qk_scale: f64),
    /// T2T-ViT with the dense backbone: channels each block adds.
    GrowthRate(growth_rate: usize),
    /// ViT: side of the square patches.
    PatchSize(patch_size: usize),
    /// FViT: a separate value projection (the paper) instead of V = Q.
    ValueProj(value_proj: bool),
    /// FViT: one score vector per head (the paper) instead of a dense layer.
    PerHeadScores(per_head_scores: bool),
}

impl fmt::Display for TokensType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(name)) => f.write_str(&name),
            _ => unreachable!("a choice serialises as its name"),
        }
    }
}

impl FromStr for ModelKwarg {
    type Err = ModelError;

    /// `key=value`; quotes around the value are dropped (`tokens_type='transformer'`).
    fn from_str(kwarg: &str) -> Result<Self, ModelError> {
        let (key, value) = kwarg
            .split_once('=')
            .ok_or_else(|| ModelError::BadKwarg(format!("'{kwarg}' is not key=value")))?;
        let (key, value) = (key.trim(), value.trim().trim_matches(['\'', '"']));
        Self::parse_value(key, value).unwrap_or_else(|| {
            let mut known = Self::KEYS.to_vec();
            known.sort_unstable();
            Err(ModelError::BadKwarg(format!(
                "unknown key '{key}' (known: {})",
                known.join(", ")
            )))
        })
    }
}

/// The fields every family has, by name.
macro_rules! shared_field {
    ($config:expr, $field:ident) => {
        match $config {
            ModelConfig::T2tVit(c) => &mut c.$field,
            ModelConfig::Vit(c) => &mut c.$field,
        }
    };
}

impl ModelKwarg {
    /// Sets this value in `config`, or says that the model has no such setting.
    /// The caller validates the configuration once all are set.
    pub fn apply(self, config: &mut ModelConfig) -> Result<(), ModelError> {
        use ModelKwarg as K;
        match (self, config) {
            (K::ImgSize(v), c) => *shared_field!(c, img_size) = v,
            (K::InChans(v), c) => *shared_field!(c, in_chans) = v,
            (K::NumClasses(v), c) => *shared_field!(c, num_classes) = v,
            (K::EmbedDim(v), c) => *shared_field!(c, embed_dim) = v,
            (K::Depth(v), c) => *shared_field!(c, depth) = v,
            (K::NumHeads(v), c) => *shared_field!(c, num_heads) = v,
            (K::MlpRatio(v), c) => *shared_field!(c, mlp_ratio) = v,
            (K::QkvBias(v), c) => *shared_field!(c, qkv_bias) = v,
            (K::DropRate(v), c) => *shared_field!(c, drop_rate) = v,
            (K::AttnDropRate(v), c) => *shared_field!(c, attn_drop_rate) = v,
            (K::DropPathRate(v), c) => *shared_field!(c, drop_path_rate) = v,
            (K::TokensType(v), ModelConfig::T2tVit(c)) => c.tokens_type = v,
            (K::TokenDim(v), ModelConfig::T2tVit(c)) => c.token_dim = v,
            (K::QkScale(v), ModelConfig::T2tVit(c)) => c.qk_scale = Some(v),
            (
                K::GrowthRate(v),
                ModelConfig::T2tVit(T2tVitConfig {
                    backbone: Backbone::Dense { growth_rate, .. },
                    ..
                }),
            ) => *growth_rate = v,
            (K::PatchSize(v), ModelConfig::Vit(c)) => c.patch_size = v,
            (
                K::ValueProj(v),
                ModelConfig::Vit(VitConfig {
                    mixer: Mixer::Additive(additive),
                    ..
                }),
            ) => additive.value_proj = v,
            (
                K::PerHeadScores(v),
                ModelConfig::Vit(VitConfig {
                    mixer: Mixer::Additive(additive),
                    ..
                }),
            ) => additive.per_head_scores = v,
            (kwarg, config) => {
                return Err(ModelError::BadKwarg(format!(
                    "{}: not a setting of this model ({})",
                    kwarg.key(),
                    config.family_name()
                )))
            }
        }
        Ok(())
    }
}

/// As `key=value` text, the way the flag takes it (a run's `config.toml`).
impl Serialize for ModelKwarg {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ModelKwarg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::registry;

    /// The value of `key` in the configuration's serialised form, at the
    /// top level or inside a nested setting (the backbone, the mixer).
    fn serialised(config: &ModelConfig, key: &str) -> Value {
        let json = serde_json::to_value(config).unwrap();
        let map = json.as_object().unwrap();
        map.get(key)
            .or_else(|| map.values().find_map(|nested| nested.get(key)))
            .cloned()
            .unwrap_or_else(|| panic!("{key} is not in {json}"))
    }

    #[test]
    fn every_setting_reads_back_from_its_text_and_lands_in_its_field() {
        let cases = [
            ("t2t_vit_7", "img_size=448", "448"),
            ("t2t_vit_7", "in_chans=1", "1"),
            ("t2t_vit_7", "num_classes=10", "10"),
            ("t2t_vit_7", "embed_dim=192", "192"),
            ("t2t_vit_7", "depth=3", "3"),
            ("t2t_vit_7", "num_heads=3", "3"),
            ("t2t_vit_7", "mlp_ratio=2.5", "2.5"),
            ("t2t_vit_7", "qkv_bias=True", "true"),
            ("t2t_vit_7", "drop_rate=0.25", "0.25"),
            ("t2t_vit_7", "attn_drop_rate=0.125", "0.125"),
            ("t2t_vit_7", "drop_path_rate=0.3", "0.3"),
            ("t2t_vit_7", "tokens_type='transformer'", "\"transformer\""),
            ("t2t_vit_7", "token_dim=32", "32"),
            ("t2t_vit_7", "qk_scale=0.0625", "0.0625"),
            ("t2t_vit_dense", "growth_rate=16", "16"),
            ("vit_cifar", "patch_size=8", "8"),
            ("fvit_base_patch16_224", "value_proj=1", "true"),
            ("fvit_base_patch16_224", "per_head_scores=true", "true"),
        ];
        let mut keys: Vec<&str> = Vec::new();
        for (model, text, value) in cases {
            let kwarg: ModelKwarg = text.parse().unwrap();
            keys.push(kwarg.key());
            assert_eq!(kwarg.to_string().parse::<ModelKwarg>().unwrap(), kwarg);
            let mut config = registry::find(model).unwrap().config;
            kwarg.apply(&mut config).unwrap();
            let expected: Value = serde_json::from_str(value).unwrap();
            assert_eq!(serialised(&config, kwarg.key()), expected, "{text}");
        }
        assert_eq!(keys, ModelKwarg::KEYS, "one case per key, in order");
    }

    #[test]
    fn settings_of_another_family_are_refused_naming_the_family() {
        for (model, text, family) in [
            ("t2t_vit_7", "patch_size=4", "T2T-ViT"),
            ("t2t_vit_7", "growth_rate=4", "T2T-ViT"),
            ("vit_cifar", "token_dim=4", "ViT"),
            ("vit_cifar", "value_proj=true", "ViT"),
            (
                "t2t_vit_dense",
                "value_proj=true",
                "T2T-ViT, dense backbone",
            ),
        ] {
            let mut config = registry::find(model).unwrap().config;
            let err = (text.parse::<ModelKwarg>().unwrap().apply(&mut config))
                .unwrap_err()
                .to_string();
            let key = text.split('=').next().unwrap();
            assert_eq!(
                err,
                format!("--model-kwargs: {key}: not a setting of this model ({family})")
            );
        }
        for (text, error) in [
            ("depth", "'depth' is not key=value"),
            ("depth=-1", "depth: cannot use '-1'"),
            ("qkv_bias=yes", "qkv_bias: cannot use 'yes'"),
            (
                "tokens_type=convolution",
                "tokens_type: cannot use 'convolution'",
            ),
            (
                "colour=red",
                "unknown key 'colour' (known: attn_drop_rate, depth,",
            ),
        ] {
            let err = text.parse::<ModelKwarg>().unwrap_err().to_string();
            assert!(err.contains(error), "{text}: {err}");
        }
    }
}
