//! Building blocks shared by every model of the family.

mod attention;
mod block;
mod drop_path;
mod dropout;
mod fast_attention;
mod fastformer_layer;
mod ghost;
mod layer_norm;
mod mlp;
mod patch_embed;
mod sample_noise;
mod sinusoid;
mod soft_split;
mod squeeze_excite;
mod token_performer;
mod token_transformer;

pub use attention::{Attention, AttentionConfig};
pub use block::Block;
pub use drop_path::DropPath;
pub use dropout::Dropout;
pub use fast_attention::{FastAttention, FastAttentionConfig, ScoreVectors};
pub use fastformer_layer::{FastformerAttention, FastformerLayer, Intermediate, ResidualOutput};
pub use ghost::{ChannelScale, GhostAttention, GhostMlp};
pub use layer_norm::LayerNorm;
pub use mlp::Mlp;
pub use patch_embed::PatchEmbed;
pub(crate) use sample_noise::next_sample_seeds;
pub use sample_noise::with_sample_keys;
pub use sinusoid::sinusoid_table;
pub use soft_split::SoftSplit;
pub use squeeze_excite::{ExcitationMlp, SqueezeExcite};
pub use token_performer::{PerformerMlp, TokenPerformer};
pub use token_transformer::{TokenAttention, TokenTransformer};

use burn::module::{Initializer, Module, ModuleDisplay};
use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::complexity::Macs;

/// A map from a token sequence `[B, N, C]` to a token sequence: attention,
/// MLP, whole blocks. Blocks and backbones are generic over it.
pub trait Sublayer: Module + ModuleDisplay {
    fn forward(&self, x: Tensor<3>) -> Tensor<3>;

    /// `forward(norm(x))`, the pre-norm form. Sublayers that open with a
    /// Linear layer fold the norm into it ([`LayerNorm::then_linear`]).
    fn forward_normed(&self, norm: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
        self.forward(norm.forward(x))
    }

    /// Multiply-adds per image for a sequence of `tokens` tokens.
    fn macs(&self, tokens: usize) -> Macs;
}

/// `nn.Linear` as the official models initialise it: weights from a normal
/// with std 0.02 (timm's `trunc_normal_` cuts at ±2, i.e. at 100 σ, so the
/// cut never applies), biases zero.
pub fn linear(d_in: usize, d_out: usize, bias: bool, device: &burn::tensor::Device) -> Linear {
    let normal = Initializer::Normal {
        mean: 0.0,
        std: 0.02,
    };
    Linear {
        weight: normal.init([d_in, d_out], device),
        bias: bias.then(|| Initializer::Zeros.init([d_out], device)),
    }
}

/// `linear` over every token of every sample as one matrix product: the
/// weight is packed once and the product spreads over all cores, where a
/// batched product would run one small product per sample.
pub fn dense(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [batch, tokens, d_in] = x.dims();
    let y = crate::kernels::linear(
        x.reshape([batch * tokens, d_in]),
        linear.weight.val(),
        linear.bias.as_ref().map(|bias| bias.val()),
    );
    let d_out = y.dims()[1];
    y.reshape([batch, tokens, d_out])
}

pub fn layer_norm(d: usize, eps: f64, device: &burn::tensor::Device) -> LayerNorm {
    LayerNorm::new(d, eps, device)
}

pub(crate) fn linear_macs(layer: &Linear, tokens: usize) -> Macs {
    let [d_in, d_out] = layer.weight.lazy_shape().dims();
    Macs::layers((tokens * d_in * d_out) as u64)
}

/// fvcore counts a LayerNorm as 5 multiply-adds per element (weights and bias).
pub(crate) fn layer_norm_macs(width: usize, tokens: usize) -> Macs {
    Macs::norms((5 * tokens * width) as u64)
}

/// Switches every dropout and drop-path of `module` on (training) or off
/// (evaluation) without leaving the autodiff device.
pub fn set_stochastic<M: Module>(module: M, training: bool) -> M {
    struct Switch(bool);
    impl burn::module::ModuleMapper for Switch {
        fn map_flag(
            &mut self,
            flag: burn::module::Param<burn::module::Flag>,
        ) -> burn::module::Param<burn::module::Flag> {
            flag.with_value(self.0)
        }
    }
    module.map(&mut Switch(training))
}
