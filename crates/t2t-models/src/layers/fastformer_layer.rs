use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use crate::kernels::gelu;

use super::{dense, layer_norm, linear, FastAttention, FastAttentionConfig, LayerNorm};

/// The official Fastformer encoder layer: BERT's post-norm layer around
/// additive attention (LayerNorm eps 1e-12).
/// `a = LN(dense(attn(x)) + x)`, `out = LN(dense(gelu(dense(a))) + a)`.
#[derive(Module, Debug)]
pub struct FastformerLayer {
    pub attention: FastformerAttention,
    pub intermediate: Intermediate,
    pub output: ResidualOutput,
}

/// `attention.self` and `attention.output` of the official layer.
#[derive(Module, Debug)]
pub struct FastformerAttention {
    pub self_attention: FastAttention,
    pub output: ResidualOutput,
}

/// BERT's `dense` → (dropout) → `LayerNorm(· + residual)`.
#[derive(Module, Debug)]
pub struct ResidualOutput {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
}

/// BERT's intermediate `dense` + GELU.
#[derive(Module, Debug)]
pub struct Intermediate {
    pub dense: Linear,
}

const BERT_LAYER_NORM_EPS: f64 = 1e-12;

impl ResidualOutput {
    fn new(d_in: usize, d_out: usize, device: &Device) -> Self {
        Self {
            dense: linear(d_in, d_out, true, device),
            layer_norm: layer_norm(d_out, BERT_LAYER_NORM_EPS, device),
        }
    }

    fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        self.layer_norm.forward(dense(&self.dense, x) + residual)
    }
}

impl FastformerLayer {
    pub fn new(hidden: usize, heads: usize, intermediate: usize, device: &Device) -> Self {
        Self {
            attention: FastformerAttention {
                self_attention: FastAttentionConfig::default().init(hidden, heads, device),
                output: ResidualOutput::new(hidden, hidden, device),
            },
            intermediate: Intermediate {
                dense: linear(hidden, intermediate, true, device),
            },
            output: ResidualOutput::new(intermediate, hidden, device),
        }
    }

    /// `mask` is the additive `[B, 1, N]` mask of the official encoder.
    pub fn forward(&self, x: Tensor<3>, mask: Option<Tensor<3>>) -> Tensor<3> {
        let attended = self
            .attention
            .self_attention
            .forward_masked(x.clone(), mask);
        let a = self.attention.output.forward(attended, x);
        let hidden = gelu(dense(&self.intermediate.dense, a.clone()));
        self.output.forward(hidden, a)
    }
}
