//! Whole models. Each file reads like the figure of its paper.

mod t2t_vit;
mod t2t_vit_dense;
mod vit;

pub use t2t_vit::{Backbone, SplitSpec, T2tModule, T2tVit, T2tVitConfig, TokenLayer, TokensType};
pub use t2t_vit_dense::{DenseBlock, DenseLayer, Transition};
pub use vit::{FastVisionTransformer, Mixer, VisionTransformer, VitConfig};

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::complexity::Macs;
use crate::layers::{
    layer_norm_macs, linear_macs, Block, Dropout, GhostAttention, GhostMlp, LayerNorm, Sublayer,
};
use crate::Taps;

/// Every model of the zoo, behind one type for the command line and the trainers.
#[derive(Module, Debug)]
pub enum Model {
    T2tVit(T2tVit),
    T2tVitGhost(T2tVit<Block<GhostAttention, GhostMlp>>),
    T2tVitDense(T2tVit<DenseLayer>),
    Vit(VisionTransformer),
    Fvit(FastVisionTransformer),
}

/// MACs of one named part of a model.
#[derive(Clone, Debug)]
pub struct Stage {
    pub name: &'static str,
    pub macs: Macs,
}

impl Model {
    /// Images `[B, C, H, W]` → logits `[B, classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_tapped(images, &mut Taps::off())
    }

    /// The forward pass that also records named intermediates into `taps`.
    pub fn forward_tapped(&self, images: Tensor<4>, taps: &mut Taps) -> Tensor<2> {
        match self {
            Model::T2tVit(m) => m.forward_tapped(images, taps),
            Model::T2tVitGhost(m) => m.forward_tapped(images, taps),
            Model::T2tVitDense(m) => m.forward_tapped(images, taps),
            Model::Vit(m) => m.forward_tapped(images, taps),
            Model::Fvit(m) => m.forward_tapped(images, taps),
        }
    }

    /// MACs per image by stage.
    pub fn stages(&self) -> Vec<Stage> {
        match self {
            Model::T2tVit(m) => m.stages(),
            Model::T2tVitGhost(m) => m.stages(),
            Model::T2tVitDense(m) => m.stages(),
            Model::Vit(m) => m.stages(),
            Model::Fvit(m) => m.stages(),
        }
    }
}

/// What follows the tokenizer in every ViT-style classifier: prepend the
/// class token, add the position table, run the blocks, normalise, classify
/// token 0. Its parameters sit at the top level of the checkpoints
/// (`cls_token`, `pos_embed`, `blocks.*`, `norm.*`, `head.*`).
#[derive(Module, Debug)]
pub struct Encoder<L> {
    pub cls_token: Param<Tensor<3>>,
    /// `[1, N + 1, D]`: learned (ViT) or a fixed sinusoid (T2T-ViT).
    pub pos_embed: Param<Tensor<3>>,
    pub pos_drop: Dropout,
    pub blocks: Vec<L>,
    pub norm: LayerNorm,
    pub head: Option<Linear>,
}

impl<L: Sublayer> Encoder<L> {
    /// Tokens `[B, N, D]` → logits `[B, classes]` (features without a head).
    pub fn forward(&self, tokens: Tensor<3>, taps: &mut Taps) -> Tensor<2> {
        let [batch, _, width] = tokens.dims();
        let cls = self.cls_token.val().expand([batch, 1, width]);
        let mut x = self
            .pos_drop
            .forward(Tensor::cat(vec![cls, tokens], 1) + self.pos_embed.val());
        for (index, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if index == 0 {
                taps.record("block0", &x);
            }
        }
        let [_, _, width] = x.dims();
        let features = self
            .norm
            .forward(x)
            .slice([0..batch, 0..1, 0..width])
            .reshape([batch, width]);
        taps.record("features", &features);
        let logits = match &self.head {
            Some(head) => head.forward(features),
            None => features,
        };
        taps.record("logits", &logits);
        logits
    }

    /// Tokens entering the blocks, class token included.
    pub fn tokens(&self) -> usize {
        self.pos_embed.lazy_shape().dims::<3>()[1]
    }

    /// MACs of the blocks, and of the final norm with the head.
    pub fn stages(&self) -> [Stage; 2] {
        let tokens = self.tokens();
        let blocks = self.blocks.iter().map(|b| b.macs(tokens)).sum();
        let head = layer_norm_macs(self.norm.width(), tokens)
            + self
                .head
                .as_ref()
                .map(|h| linear_macs(h, 1))
                .unwrap_or_default();
        [
            Stage {
                name: "blocks",
                macs: blocks,
            },
            Stage {
                name: "head",
                macs: head,
            },
        ]
    }
}

/// A frozen parameter: stored in checkpoints and counted, never trained.
pub(crate) fn frozen<const D: usize>(tensor: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(tensor).set_require_grad(false)
}

/// `[1, 1, width]` class token from a normal with std 0.02, as timm's `trunc_normal_`.
pub(crate) fn class_token(width: usize, device: &burn::tensor::Device) -> Param<Tensor<3>> {
    let values = Tensor::<3>::random(
        [1, 1, width],
        burn::tensor::Distribution::Normal(0.0, 0.02),
        device,
    );
    Param::from_tensor(values)
}

/// Drop-path rate of each of `count` blocks, rising linearly from 0 to `max`.
pub(crate) fn drop_path_rates(max: f64, count: usize) -> Vec<f64> {
    (0..count)
        .map(|i| match count {
            1 => 0.0,
            _ => max * i as f64 / (count - 1) as f64,
        })
        .collect()
}

/// Every dropout-like rate must be a probability below 1.
pub(crate) fn check_rates(rates: &[(&str, f64)]) -> Result<(), crate::ModelError> {
    match rates.iter().find(|(_, p)| !(0.0..1.0).contains(p)) {
        Some((name, p)) => Err(crate::ModelError::BadConfig(format!(
            "{name} {p} is not in [0, 1)"
        ))),
        None => Ok(()),
    }
}
