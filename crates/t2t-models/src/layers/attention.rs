use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{activation::softmax, Device, Tensor};

use super::{linear, linear_macs, Dropout, LayerNorm, SqueezeExcite, Sublayer};
use crate::complexity::Macs;
use crate::kernels::{self, on_flex};

/// Multi-head softmax attention of a `qkv` projection `[B, N, 3·C]` (q, k, v
/// side by side, each `heads` heads wide), heads merged `[B, N, C]`:
/// `softmax(q·scale @ kᵀ) @ v` per head.
pub fn self_attention(qkv: Tensor<3>, heads: usize, scale: f64, attn_drop: &Dropout) -> Tensor<3> {
    if on_flex(qkv.device()) && !attn_drop.is_active(&qkv) {
        return kernels::qkv_attention(qkv, heads, scale);
    }
    let [q, k, v] = split_qkv(qkv, heads);
    if !q.is_tracked() {
        // Off the autodiff graph the backend's fused attention computes the
        // same thing without materialising the weights (no dropout applies
        // outside training either).
        let options = AttentionModuleOptions {
            scale: Some(scale),
            ..Default::default()
        };
        return merge_heads(attention(q, k, v, None, None, options));
    }
    merge_heads(attn_drop.forward(probabilities(q, k, scale)).matmul(v))
}

/// `softmax(q·scale @ kᵀ)` of heads `[B, H, N, d]`: the weights `[B, H, N, N]`
/// (row = query) that the fused kernels never materialise.
fn probabilities(q: Tensor<4>, k: Tensor<4>, scale: f64) -> Tensor<4> {
    softmax(q.mul_scalar(scale).matmul(k.swap_dims(2, 3)), 3)
}

/// q, k and v `[B, H, N, d]` of a `qkv` projection `[B, N, 3·H·d]`.
fn split_qkv(qkv: Tensor<3>, heads: usize) -> [Tensor<4>; 3] {
    let mut parts = qkv.chunk(3, 2).into_iter().map(|x| split_heads(x, heads));
    [(); 3].map(|()| parts.next().unwrap())
}

/// `[B, N, H·d]` → `[B, H, N, d]`.
pub(crate) fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [batch, tokens, width] = x.dims();
    x.reshape([batch, tokens, heads, width / heads])
        .swap_dims(1, 2)
}

/// `[B, H, N, d]` → `[B, N, H·d]`.
pub(crate) fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [batch, heads, tokens, head_dim] = x.dims();
    x.swap_dims(1, 2).reshape([batch, tokens, heads * head_dim])
}

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
        let x = self_attention(qkv, self.num_heads, self.scale, &self.attn_drop);
        let x = self.proj.forward(x);
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
        probabilities(q, k, self.scale)
    }
}

impl Sublayer for Attention {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.attend(self.qkv.forward(x))
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
