use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use super::{dense, linear, linear_macs, Dropout, LayerNorm, SqueezeExcite, Sublayer};
use crate::complexity::Macs;
use crate::kernels::{attention_probabilities, qkv_attention, split_qkv};

/// Multi-head self-attention of the backbone blocks (MSA). The squeeze-excite
/// ablation adds an SE layer after the output projection.
#[derive(Module, Debug)]
pub struct Attention {
    pub qkv: Linear,
    pub proj: Linear,
    pub se_layer: Option<SqueezeExcite>,
    pub attn_drop: Dropout,
    pub proj_drop: Dropout,
    pub num_heads: usize,
    pub scale: f64,
}

pub struct AttentionConfig {
    pub dim: usize,
    pub num_heads: usize,
    pub qkv_bias: bool,
    pub qk_scale: Option<f64>,
    pub attn_drop: f64,
    pub proj_drop: f64,
    pub squeeze_excite: bool,
}

impl AttentionConfig {
    pub fn init(&self, device: &Device) -> Attention {
        let head_dim = self.dim / self.num_heads;
        Attention {
            qkv: linear(self.dim, 3 * self.dim, self.qkv_bias, device),
            proj: linear(self.dim, self.dim, true, device),
            se_layer: self
                .squeeze_excite
                .then(|| SqueezeExcite::new(self.dim, 16, device)),
            attn_drop: Dropout::new(self.attn_drop),
            proj_drop: Dropout::new(self.proj_drop),
            num_heads: self.num_heads,
            scale: self.qk_scale.unwrap_or((head_dim as f64).powf(-0.5)),
        }
    }
}

impl Attention {
    /// Everything after the `qkv` projection.
    fn attend(&self, qkv: Tensor<3>) -> Tensor<3> {
        let dropout = self.attn_drop.rate_for(&qkv);
        let x = qkv_attention(qkv, self.num_heads, self.scale, dropout);
        let x = dense(&self.proj, x);
        let x = match &self.se_layer {
            Some(se) => se.forward(x),
            None => x,
        };
        self.proj_drop.forward(x)
    }

    /// The attention probabilities `[B, H, N, N]` (row = query) of
    /// `norm(x)`, as the block computes them before weighting the values.
    /// Materialising them costs `N²` values a head, so only inspection
    /// (`t2t visualize`) takes this path; the forward pass stays fused.
    pub fn probabilities_normed(&self, norm: &LayerNorm, x: Tensor<3>) -> Tensor<4> {
        let [q, k, _] = split_qkv(norm.then_linear(&self.qkv, x), self.num_heads);
        attention_probabilities(q, k, self.scale)
    }
}

impl Sublayer for Attention {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.attend(dense(&self.qkv, x))
    }

    fn forward_normed(&self, norm: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
        self.attend(norm.then_linear(&self.qkv, x))
    }

    fn macs(&self, tokens: usize) -> Macs {
        let [dim, _] = self.qkv.weight.lazy_shape().dims();
        let se = self
            .se_layer
            .as_ref()
            .map(|se| se.macs())
            .unwrap_or_default();
        linear_macs(&self.qkv, tokens)
            + linear_macs(&self.proj, tokens)
            + Macs::matmuls((2 * tokens * tokens * dim) as u64)
            + se
    }
}
