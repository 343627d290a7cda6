//! ViT (Dosovitskiy et al., 2021) as timm's `VisionTransformer`, and FViT
//! (Wen et al., 2024): the same network with Fastformer's additive attention
//! in place of softmax self-attention.
//!
//! ```text
//! image ─ patch embed (p×p conv) ─ [cls] + learned pos ─ blocks ─ norm ─ head(token 0)
//! ```

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use super::{
    block_parameters, check_activations, check_mlp_ratio, check_parameters, check_range,
    class_token, mlp_hidden, Activation, Encoder, Model, Stage, MAX_CLASSES, MAX_DEPTH,
    MAX_IN_CHANS, MAX_WIDTH,
};
use crate::layers::{
    layer_norm, linear, AttentionConfig, Block, Dropout, FastAttention, FastAttentionConfig, Mlp,
    PatchEmbed, Sublayer,
};
use crate::{ModelError, Taps};

/// timm's ViT LayerNorm epsilon.
const LAYER_NORM_EPS: f64 = 1e-6;

/// The token mixer inside every block.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Mixer {
    /// Multi-head softmax self-attention (ViT).
    Softmax,
    /// Fastformer additive attention (FViT).
    Additive(FastAttentionConfig),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VitConfig {
    pub img_size: usize,
    pub patch_size: usize,
    pub in_chans: usize,
    pub num_classes: usize,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    pub drop_rate: f64,
    pub attn_drop_rate: f64,
    pub drop_path_rate: f64,
    pub mixer: Mixer,
}

impl VitConfig {
    /// timm's `VisionTransformer` defaults (qkv bias, 1000 classes, 224 px).
    pub fn new(
        patch_size: usize,
        embed_dim: usize,
        depth: usize,
        num_heads: usize,
        mlp_ratio: f64,
    ) -> Self {
        Self {
            img_size: 224,
            patch_size,
            in_chans: 3,
            num_classes: 1000,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio,
            qkv_bias: true,
            drop_rate: 0.0,
            attn_drop_rate: 0.0,
            drop_path_rate: 0.0,
            mixer: Mixer::Softmax,
        }
    }

    pub fn with_mixer(mut self, mixer: Mixer) -> Self {
        self.mixer = mixer;
        self
    }

    pub fn grid_size(&self) -> usize {
        self.img_size / self.patch_size
    }

    /// Checks every setting, and that an image of `img_size` fits the limits
    /// of [`super::MAX_TOKENS`] and the others, before anything is built.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_range("in_chans", self.in_chans, 1..=MAX_IN_CHANS)?;
        check_range("num_classes", self.num_classes, 0..=MAX_CLASSES)?;
        check_range("embed_dim", self.embed_dim, 1..=MAX_WIDTH)?;
        check_range("depth", self.depth, 1..=MAX_DEPTH)?;
        if self.patch_size == 0
            || self.img_size == 0
            || !self.img_size.is_multiple_of(self.patch_size)
        {
            return Err(ModelError::BadConfig(format!(
                "img_size {} is not a positive multiple of a positive patch_size {}",
                self.img_size, self.patch_size
            )));
        }
        check_range("num_heads", self.num_heads, 1..=self.embed_dim)?;
        if !self.embed_dim.is_multiple_of(self.num_heads) {
            return Err(ModelError::BadConfig(format!(
                "embed_dim {} is not divisible by num_heads {}",
                self.embed_dim, self.num_heads
            )));
        }
        check_mlp_ratio(self.embed_dim, self.mlp_ratio)?;
        super::check_rates(&[
            ("drop_rate", self.drop_rate),
            ("attn_drop_rate", self.attn_drop_rate),
            ("drop_path_rate", self.drop_path_rate),
        ])?;
        let tokens = self.grid_size().saturating_mul(self.grid_size()) + 1;
        let hidden = mlp_hidden(self.embed_dim, self.mlp_ratio);
        check_activations(
            self.img_size,
            self.in_chans,
            &[Activation {
                stage: "in the blocks",
                tokens,
                width: (3 * self.embed_dim).max(hidden),
                softmax: self.mixer == Mixer::Softmax,
            }],
        )?;
        let (dim, patch) = (self.embed_dim as f64, self.patch_size as f64);
        check_parameters(
            self.in_chans as f64 * patch * patch * dim
                + tokens as f64 * dim
                + self.depth as f64 * block_parameters(self.embed_dim, hidden)
                + dim * self.num_classes as f64,
        )
    }

    pub fn init(&self, device: &Device) -> Result<Model, ModelError> {
        self.validate()?;
        let dim = self.embed_dim;
        let hidden = mlp_hidden(dim, self.mlp_ratio);
        let rates = super::drop_path_rates(self.drop_path_rate, self.depth);
        let mlp = || Mlp::new(dim, hidden, dim, self.drop_rate, device);
        let model = match self.mixer {
            Mixer::Softmax => {
                let attention = AttentionConfig {
                    dim,
                    num_heads: self.num_heads,
                    qkv_bias: self.qkv_bias,
                    qk_scale: None,
                    attn_drop: self.attn_drop_rate,
                    proj_drop: self.drop_rate,
                    squeeze_excite: false,
                };
                let blocks = rates
                    .iter()
                    .map(|&p| {
                        Block::new(
                            dim,
                            attention.init(device),
                            mlp(),
                            p,
                            LAYER_NORM_EPS,
                            device,
                        )
                    })
                    .collect();
                Model::Vit(self.assemble(blocks, device))
            }
            Mixer::Additive(fast) => {
                let blocks = rates
                    .iter()
                    .map(|&p| {
                        Block::new(
                            dim,
                            fast.init(dim, self.num_heads, device),
                            mlp(),
                            p,
                            LAYER_NORM_EPS,
                            device,
                        )
                    })
                    .collect();
                Model::Fvit(self.assemble(blocks, device))
            }
        };
        Ok(model)
    }

    fn assemble<L: Sublayer>(&self, blocks: Vec<L>, device: &Device) -> VisionTransformer<L> {
        let tokens = self.grid_size() * self.grid_size();
        let pos_embed = Tensor::<3>::random(
            [1, tokens + 1, self.embed_dim],
            Distribution::Normal(0.0, 0.02),
            device,
        );
        VisionTransformer {
            patch_embed: PatchEmbed::new(self.in_chans, self.embed_dim, self.patch_size, device),
            encoder: Encoder {
                cls_token: class_token(self.embed_dim, device),
                pos_embed: Param::from_tensor(pos_embed),
                pos_drop: Dropout::new(self.drop_rate),
                blocks,
                norm: layer_norm(self.embed_dim, LAYER_NORM_EPS, device),
                head: (self.num_classes > 0)
                    .then(|| linear(self.embed_dim, self.num_classes, true, device)),
            },
        }
    }
}

/// timm's `VisionTransformer`, generic over its blocks.
#[derive(Module, Debug)]
pub struct VisionTransformer<L = Block> {
    pub patch_embed: PatchEmbed,
    pub encoder: Encoder<L>,
}

/// FViT: ViT with Fastformer additive attention.
pub type FastVisionTransformer = VisionTransformer<Block<FastAttention, Mlp>>;

impl<L: Sublayer> VisionTransformer<L> {
    pub fn forward_tapped(&self, images: Tensor<4>, taps: &mut Taps) -> Tensor<2> {
        self.forward_visiting(images, taps, &mut |_, _, _| {})
    }

    /// The forward pass that shows `visit` each block and its input
    /// ([`Encoder::forward_visiting`]).
    pub fn forward_visiting(
        &self,
        images: Tensor<4>,
        taps: &mut Taps,
        visit: &mut dyn FnMut(usize, &L, &Tensor<3>),
    ) -> Tensor<2> {
        let tokens = self.patch_embed.forward(images);
        taps.record("patch_embed", &tokens);
        self.encoder.forward_visiting(tokens, taps, visit)
    }

    pub fn stages(&self) -> Vec<Stage> {
        let patch_embed = Stage {
            name: "patch_embed",
            macs: self.patch_embed.macs(self.encoder.tokens() - 1),
        };
        let [blocks, head] = self.encoder.stages();
        vec![patch_embed, blocks, head]
    }
}
