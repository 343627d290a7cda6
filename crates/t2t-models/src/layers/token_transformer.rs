use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use super::{
    dense, layer_norm, layer_norm_macs, linear, linear_macs, Dropout, LayerNorm, Mlp, Sublayer,
};
use crate::complexity::Macs;
use crate::kernels::qkv_attention;

/// T2T layer with full softmax attention (one head) that also narrows the
/// tokens from `dim` to `emb` features:
/// `y = v + proj(attn(LN1(x)))`, `out = y + mlp(LN2(y))`.
#[derive(Module, Debug)]
pub struct TokenTransformer {
    pub norm1: LayerNorm,
    pub attn: TokenAttention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
}

/// Single-head attention from `dim` to `emb` features, with the skip from `v`
/// and the scale taken from the *input* width, `dim^-0.5`, as in the official code.
#[derive(Module, Debug)]
pub struct TokenAttention {
    pub qkv: Linear,
    pub proj: Linear,
    pub attn_drop: Dropout,
    pub proj_drop: Dropout,
    pub scale: f64,
}

impl TokenTransformer {
    pub fn new(dim: usize, emb: usize, device: &Device) -> Self {
        Self {
            norm1: layer_norm(dim, 1e-5, device),
            attn: TokenAttention {
                qkv: linear(dim, 3 * emb, false, device),
                proj: linear(emb, emb, true, device),
                attn_drop: Dropout::new(0.0),
                proj_drop: Dropout::new(0.0),
                scale: (dim as f64).powf(-0.5),
            },
            norm2: layer_norm(emb, 1e-5, device),
            mlp: Mlp::new(emb, emb, emb, 0.0, device),
        }
    }
}

impl TokenAttention {
    /// Everything after the `qkv` projection.
    fn attend(&self, qkv: Tensor<3>) -> Tensor<3> {
        let emb = qkv.dims()[2] / 3;
        let v = qkv.clone().narrow(2, 2 * emb, emb);
        let dropout = self.attn_drop.rate_for(&qkv);
        let y = self
            .proj
            .forward(qkv_attention(qkv, 1, self.scale, dropout));
        v + self.proj_drop.forward(y)
    }
}

impl Sublayer for TokenAttention {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.attend(dense(&self.qkv, x))
    }

    fn forward_normed(&self, norm: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
        self.attend(norm.then_linear(&self.qkv, x))
    }

    fn macs(&self, tokens: usize) -> Macs {
        let emb = self.proj.weight.lazy_shape().dims::<2>()[0];
        linear_macs(&self.qkv, tokens)
            + Macs::matmuls((2 * tokens * tokens * emb) as u64)
            + linear_macs(&self.proj, tokens)
    }
}

impl Sublayer for TokenTransformer {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let y = self.attn.forward_normed(&self.norm1, x);
        y.clone() + self.mlp.forward_normed(&self.norm2, y)
    }

    fn macs(&self, tokens: usize) -> Macs {
        let dim = self.norm1.width();
        let emb = self.attn.proj.weight.lazy_shape().dims::<2>()[0];
        layer_norm_macs(dim, tokens)
            + self.attn.macs(tokens)
            + layer_norm_macs(emb, tokens)
            + self.mlp.macs(tokens)
    }
}
