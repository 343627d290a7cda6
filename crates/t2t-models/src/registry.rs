//! Registered model names and their configurations, with the data settings
//! (input size, normalisation, eval crop) that belong to each, as in timm's
//! `default_cfg`.

use serde::{Deserialize, Serialize};
use t2t_data::stats::{
    CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD,
};
use t2t_data::transforms::Filter;

use crate::complexity::param_counts;
use crate::kwargs::ModelKwarg;
use crate::layers::FastAttentionConfig;
use crate::models::{Backbone, Mixer, Model, SplitSpec, T2tVitConfig, TokensType, VitConfig};
use crate::ModelError;

/// The ImageNet-1k class names in index order (timm's synset list with the
/// first WordNet lemma of each), for 1000-class heads.
pub fn imagenet_class_names() -> Vec<String> {
    include_str!("../data/imagenet1k_classes.txt")
        .lines()
        .map(|line| {
            let lemmas = line.split_once('\t').map_or(line, |(_, lemmas)| lemmas);
            lemmas
                .split(',')
                .next()
                .unwrap_or(lemmas)
                .trim()
                .to_string()
        })
        .collect()
}

/// How images are prepared for a model at evaluation time.
#[derive(Clone, Debug, PartialEq)]
pub struct DataConfig {
    pub mean: [f64; 3],
    pub std: [f64; 3],
    /// Eval resize to `img_size / crop_pct`, then a centre crop of `img_size`.
    pub crop_pct: f64,
    pub interpolation: Filter,
}

impl DataConfig {
    /// These settings with the given mean, std and crop fraction where set.
    pub fn with_overrides(
        &self,
        mean: Option<[f64; 3]>,
        std: Option<[f64; 3]>,
        crop_pct: Option<f64>,
    ) -> Self {
        Self {
            mean: mean.unwrap_or(self.mean),
            std: std.unwrap_or(self.std),
            crop_pct: crop_pct.unwrap_or(self.crop_pct),
            interpolation: self.interpolation,
        }
    }

    fn imagenet() -> Self {
        Self {
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            crop_pct: 0.9,
            interpolation: Filter::Bicubic,
        }
    }

    fn inception() -> Self {
        Self {
            mean: INCEPTION_MEAN,
            std: INCEPTION_STD,
            ..Self::imagenet()
        }
    }

    fn cifar() -> Self {
        Self {
            mean: CIFAR_MEAN,
            std: CIFAR_STD,
            crop_pct: 1.0,
            interpolation: Filter::Bicubic,
        }
    }
}

/// The architecture of any model in the zoo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum ModelConfig {
    T2tVit(T2tVitConfig),
    /// ViT, and FViT when its mixer is additive attention.
    Vit(VitConfig),
}

impl ModelConfig {
    pub fn init(&self, device: &burn::tensor::Device) -> Result<Model, ModelError> {
        match self {
            ModelConfig::T2tVit(c) => c.init(device),
            ModelConfig::Vit(c) => c.init(device),
        }
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            ModelConfig::T2tVit(c) => c.validate(),
            ModelConfig::Vit(c) => c.validate(),
        }
    }

    pub fn img_size(&self) -> usize {
        match self {
            ModelConfig::T2tVit(c) => c.img_size,
            ModelConfig::Vit(c) => c.img_size,
        }
    }

    pub fn in_chans(&self) -> usize {
        match self {
            ModelConfig::T2tVit(c) => c.in_chans,
            ModelConfig::Vit(c) => c.in_chans,
        }
    }

    pub fn num_classes(&self) -> usize {
        match self {
            ModelConfig::T2tVit(c) => c.num_classes,
            ModelConfig::Vit(c) => c.num_classes,
        }
    }

    /// Applies `kwargs` in order (a later one wins), then checks the result.
    pub fn apply(&mut self, kwargs: &[ModelKwarg]) -> Result<(), ModelError> {
        for kwarg in kwargs {
            kwarg.apply(self)?;
        }
        self.validate()
    }

    /// Applies timm-style `key=value` overrides.
    pub fn apply_kwargs<S: AsRef<str>>(&mut self, kwargs: &[S]) -> Result<(), ModelError> {
        let kwargs = kwargs
            .iter()
            .map(|kwarg| kwarg.as_ref().parse())
            .collect::<Result<Vec<ModelKwarg>, _>>()?;
        self.apply(&kwargs)
    }

    /// The family, as an error names it.
    pub fn family_name(&self) -> &'static str {
        match self {
            ModelConfig::T2tVit(T2tVitConfig {
                backbone: Backbone::Dense { .. },
                ..
            }) => "T2T-ViT, dense backbone",
            ModelConfig::T2tVit(_) => "T2T-ViT",
            ModelConfig::Vit(VitConfig {
                mixer: Mixer::Additive(_),
                ..
            }) => "FViT",
            ModelConfig::Vit(_) => "ViT",
        }
    }
}

/// A registered name.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub name: &'static str,
    pub config: ModelConfig,
    pub data: DataConfig,
    /// Where the configuration comes from.
    pub source: &'static str,
}

const OFFICIAL: &str = "official T2T-ViT";
const OURS: &str = "t2t (not in the paper)";

/// 3×3 soft splits with strides 1, 2, 2: a 32×32 image gives an 8×8 token grid.
const CIFAR_SPLITS: [SplitSpec; 3] = [
    SplitSpec {
        kernel: 3,
        stride: 1,
        padding: 1,
    },
    SplitSpec {
        kernel: 3,
        stride: 2,
        padding: 1,
    },
    SplitSpec {
        kernel: 3,
        stride: 2,
        padding: 1,
    },
];

fn t2t(
    name: &'static str,
    tokens: TokensType,
    dims: (usize, usize, usize, f64),
    backbone: Backbone,
) -> ModelSpec {
    let (embed_dim, depth, heads, mlp_ratio) = dims;
    ModelSpec {
        name,
        config: ModelConfig::T2tVit(
            T2tVitConfig::new(tokens, embed_dim, depth, heads, mlp_ratio).with_backbone(backbone),
        ),
        data: DataConfig::imagenet(),
        source: OFFICIAL,
    }
}

/// A ViT for 32×32 images with 4×4 patches (64 tokens + cls): 7 layers of
/// width 384, 12 heads, MLP ratio 1, about 6.3M parameters, the configuration
/// of the known ~90%-on-CIFAR-10 from-scratch recipes (omihub777/ViT-CIFAR).
fn vit_cifar() -> ModelSpec {
    let mut config = VitConfig::new(4, 384, 7, 12, 1.0);
    config.img_size = 32;
    config.num_classes = 10;
    ModelSpec {
        name: "vit_cifar",
        config: ModelConfig::Vit(config),
        data: DataConfig::cifar(),
        source: OURS,
    }
}

fn t2t_cifar(name: &'static str, dims: (usize, usize, usize, f64), token_dim: usize) -> ModelSpec {
    let (embed_dim, depth, heads, mlp_ratio) = dims;
    let mut config = T2tVitConfig::new(TokensType::Performer, embed_dim, depth, heads, mlp_ratio)
        .with_soft_splits(CIFAR_SPLITS);
    config.token_dim = token_dim;
    config.img_size = 32;
    config.num_classes = 10;
    ModelSpec {
        name,
        config: ModelConfig::T2tVit(config),
        data: DataConfig::cifar(),
        source: OURS,
    }
}

const TIMM: &str = "timm VisionTransformer";
const FVIT: &str = "FViT (Fastformer additive attention in ViT)";

fn vit(
    name: &'static str,
    img_size: usize,
    patch: usize,
    dims: (usize, usize, usize),
) -> ModelSpec {
    let (embed_dim, depth, heads) = dims;
    let mut config = VitConfig::new(patch, embed_dim, depth, heads, 4.0);
    config.img_size = img_size;
    ModelSpec {
        name,
        config: ModelConfig::Vit(config),
        data: DataConfig::inception(),
        source: TIMM,
    }
}

/// FViT-B: ViT-B with the official Fastformer attention (V = Q, dense scores).
fn fvit(name: &'static str, img_size: usize, patch: usize) -> ModelSpec {
    let mut spec = vit(name, img_size, patch, (768, 12, 12));
    if let ModelConfig::Vit(c) = &mut spec.config {
        c.mixer = Mixer::Additive(FastAttentionConfig::default());
    }
    spec.source = FVIT;
    spec
}

/// Every registered model, in listing order.
pub fn all() -> Vec<ModelSpec> {
    use Backbone::*;
    use TokensType::*;
    vec![
        t2t("t2t_vit_7", Performer, (256, 7, 4, 2.0), Standard),
        t2t("t2t_vit_10", Performer, (256, 10, 4, 2.0), Standard),
        t2t("t2t_vit_12", Performer, (256, 12, 4, 2.0), Standard),
        t2t("t2t_vit_14", Performer, (384, 14, 6, 3.0), Standard),
        t2t("t2t_vit_19", Performer, (448, 19, 7, 3.0), Standard),
        t2t("t2t_vit_24", Performer, (512, 24, 8, 3.0), Standard),
        t2t("t2t_vit_t_14", Transformer, (384, 14, 6, 3.0), Standard),
        t2t("t2t_vit_t_19", Transformer, (448, 19, 7, 3.0), Standard),
        t2t("t2t_vit_t_24", Transformer, (512, 24, 8, 3.0), Standard),
        t2t(
            "t2t_vit_14_resnext",
            Performer,
            (384, 14, 32, 3.0),
            Standard,
        ),
        t2t("t2t_vit_14_wide", Performer, (768, 4, 12, 3.0), Standard),
        t2t("t2t_vit_14_se", Performer, (384, 14, 6, 3.0), SqueezeExcite),
        // Upstream leaves depth at its default 12; only the drop-path schedule reads it.
        t2t(
            "t2t_vit_dense",
            Performer,
            (128, 12, 8, 2.0),
            Dense {
                growth_rate: 64,
                stages: vec![3, 6, 6, 4],
            },
        ),
        t2t("t2t_vit_16_ghost", Performer, (384, 16, 6, 3.0), Ghost),
        t2t_cifar("t2t_vit_7_cifar", (256, 7, 4, 2.0), 64),
        t2t_cifar("t2t_vit_14_cifar", (384, 14, 6, 3.0), 64),
        // 0.61M parameters: the built-in training run's model, minutes on 2 cores.
        t2t_cifar("t2t_vit_lite_cifar", (128, 4, 4, 2.0), 32),
        vit("vit_tiny_patch16_224", 224, 16, (192, 12, 3)),
        vit("vit_small_patch16_224", 224, 16, (384, 12, 6)),
        vit("vit_small_patch32_224", 224, 32, (384, 12, 6)),
        vit("vit_base_patch16_224", 224, 16, (768, 12, 12)),
        vit("vit_base_patch32_224", 224, 32, (768, 12, 12)),
        vit("vit_base_patch16_384", 384, 16, (768, 12, 12)),
        vit_cifar(),
        fvit("fvit_base_patch16_224", 224, 16),
        fvit("fvit_base_patch16_384", 384, 16),
        fvit("fvit_base_patch32_224", 224, 32),
    ]
}

/// Looks a name up, suggesting the closest registered names when it is unknown.
pub fn find(name: &str) -> Result<ModelSpec, ModelError> {
    let specs = all();
    if let Some(spec) = specs.iter().find(|s| s.name == name) {
        return Ok(spec.clone());
    }
    let mut ranked: Vec<(usize, &str)> = specs
        .iter()
        .map(|s| (edit_distance(name, s.name), s.name))
        .collect();
    ranked.sort();
    let limit = (name.len() / 3).max(3);
    let suggestions = ranked
        .iter()
        .filter(|(d, _)| *d <= limit)
        .take(3)
        .map(|(_, n)| n.to_string())
        .collect();
    Err(ModelError::UnknownModel {
        name: name.to_string(),
        suggestions,
    })
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// MACs of one stage under both conventions.
#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    pub name: &'static str,
    pub macs: u64,
    pub macs_no_attn_matmul: u64,
}

/// The complexity report of `t2t info` (see [`crate::complexity`] for the
/// two conventions).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub name: String,
    pub img_size: usize,
    pub params_all: usize,
    pub params_trainable: usize,
    /// fvcore convention: layers, matmuls/einsums and LayerNorm.
    pub macs: u64,
    /// Weights-only convention: Linear and convolution layers.
    pub macs_no_attn_matmul: u64,
    pub stages: Vec<StageReport>,
}

pub const CONVENTIONS: &str = "MACs per image, 1 MAC = 1 multiply-add. 'macs' follows fvcore on the \
official code: Linear/conv layers + every matmul and einsum (attention, Performer kernels) + LayerNorm \
at 5 per element. 'macs_no_attn_matmul' counts Linear/conv layers only (timm tables, FViT paper).";

/// Counts the parameters and MACs of a configuration.
pub fn report(name: &str, config: &ModelConfig) -> Result<Report, ModelError> {
    // Counting needs no computation: the CPU backend, whatever the build.
    let device = burn::tensor::Device::flex().autodiff();
    let model = config.init(&device)?;
    let params = param_counts(&model);
    let stages: Vec<StageReport> = model
        .stages()
        .into_iter()
        .map(|s| StageReport {
            name: s.name,
            macs: s.macs.total(),
            macs_no_attn_matmul: s.macs.without_attention_matmuls(),
        })
        .collect();
    Ok(Report {
        name: name.to_string(),
        img_size: config.img_size(),
        params_all: params.all,
        params_trainable: params.trainable,
        macs: stages.iter().map(|s| s.macs).sum(),
        macs_no_attn_matmul: stages.iter().map(|s| s.macs_no_attn_matmul).sum(),
        stages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_suggest_the_closest() {
        let err = find("t2t_vit_13").unwrap_err().to_string();
        assert!(
            err.contains("t2t_vit_12") && err.contains("t2t_vit_14"),
            "{err}"
        );
        assert!(find("resnet50")
            .unwrap_err()
            .to_string()
            .starts_with("unknown model 'resnet50'"));
    }

    #[test]
    fn imagenet_names_are_in_index_order() {
        let names = imagenet_class_names();
        assert_eq!(names.len(), 1000);
        assert_eq!(
            (names[0].as_str(), names[1].as_str(), names[999].as_str()),
            ("tench", "goldfish", "toilet tissue")
        );
    }

    #[test]
    fn edit_distance_matches_hand_counts() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("t2t_vit_7", "t2t_vit_7"), 0);
    }

    #[test]
    fn kwargs_override_and_validate() {
        let mut config = find("t2t_vit_7").unwrap().config;
        config
            .apply_kwargs(&[
                "tokens_type=transformer",
                "embed_dim=384",
                "depth=2",
                "num_heads=6",
                "mlp_ratio=3.0",
            ])
            .unwrap();
        let ModelConfig::T2tVit(c) = &config else {
            unreachable!()
        };
        assert_eq!(
            (c.tokens_type, c.embed_dim, c.depth, c.num_heads),
            (TokensType::Transformer, 384, 2, 6)
        );
        assert!(config
            .apply_kwargs(&["img_size=100"])
            .unwrap_err()
            .to_string()
            .contains("multiple of"));
        assert!(config
            .apply_kwargs(&["colour=red"])
            .unwrap_err()
            .to_string()
            .contains("embed_dim"));
        assert!(config.apply_kwargs(&["depth"]).is_err());
        assert!(config.apply_kwargs(&["tokens_type=convolution"]).is_err());
        assert!(config.apply_kwargs(&["depth=two"]).is_err());

        let mut fvit = find("fvit_base_patch16_224").unwrap().config;
        fvit.apply_kwargs(&["value_proj=true", "qkv_bias=false", "img_size=384"])
            .unwrap();
        let ModelConfig::Vit(v) = &fvit else {
            unreachable!()
        };
        assert_eq!((v.img_size, v.qkv_bias), (384, false));
        assert_eq!(
            v.mixer,
            Mixer::Additive(FastAttentionConfig {
                value_proj: true,
                per_head_scores: false
            })
        );
        let mut t2t = find("t2t_vit_14").unwrap().config;
        t2t.apply_kwargs(&["qk_scale=0.0625"]).unwrap();
        let ModelConfig::T2tVit(c) = &t2t else {
            unreachable!()
        };
        assert_eq!(c.qk_scale, Some(0.0625));
    }
}
