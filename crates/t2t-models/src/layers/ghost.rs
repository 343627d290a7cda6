use burn::module::{Initializer, Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use crate::kernels::gelu;

use super::{dense, linear, linear_macs, Dropout, Sublayer};
use crate::complexity::Macs;
use crate::kernels::qkv_attention;

/// A depthwise 1×1 `Conv1d` without bias over the channels of a token
/// sequence, i.e. one learned scale per channel: the ghost "cheap operation".
/// The weight keeps the conv's `[C, 1, 1]` shape.
#[derive(Module, Debug)]
pub struct ChannelScale {
    pub weight: Param<Tensor<3>>,
}

impl ChannelScale {
    pub fn new(channels: usize, device: &Device) -> Self {
        // PyTorch's default conv init; fan-in 1 gives U(-1, 1).
        let weight = Initializer::Uniform {
            min: -1.0,
            max: 1.0,
        }
        .init([channels, 1, 1], device);
        Self { weight }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        x * self.weight.val().reshape([1, 1, -1])
    }

    fn macs(&self, tokens: usize) -> Macs {
        Macs::layers((tokens * self.weight.lazy_shape().dims::<3>()[0]) as u64)
    }
}

/// Ghost attention: q, k and v each come half from a Linear and half from a
/// cheap per-channel scale of that half.
#[derive(Module, Debug)]
pub struct GhostAttention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub cheap_operation_q: ChannelScale,
    pub cheap_operation_k: ChannelScale,
    pub cheap_operation_v: ChannelScale,
    pub proj: Linear,
    pub attn_drop: Dropout,
    pub proj_drop: Dropout,
    pub num_heads: usize,
    pub scale: f64,
}

impl GhostAttention {
    pub fn new(dim: usize, num_heads: usize, qkv_bias: bool, scale: f64, device: &Device) -> Self {
        let half = dim / 2;
        Self {
            q: linear(dim, half, qkv_bias, device),
            k: linear(dim, half, qkv_bias, device),
            v: linear(dim, half, qkv_bias, device),
            cheap_operation_q: ChannelScale::new(half, device),
            cheap_operation_k: ChannelScale::new(half, device),
            cheap_operation_v: ChannelScale::new(half, device),
            proj: linear(dim, dim, true, device),
            attn_drop: Dropout::new(0.0),
            proj_drop: Dropout::new(0.0),
            num_heads,
            scale,
        }
    }
}

fn ghost(primary: Tensor<3>, cheap: &ChannelScale) -> Tensor<3> {
    Tensor::cat(vec![primary.clone(), cheap.forward(primary)], 2)
}

impl Sublayer for GhostAttention {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let project =
            |linear: &Linear, cheap: &ChannelScale| ghost(dense(linear, x.clone()), cheap);
        let qkv = Tensor::cat(
            vec![
                project(&self.q, &self.cheap_operation_q),
                project(&self.k, &self.cheap_operation_k),
                project(&self.v, &self.cheap_operation_v),
            ],
            2,
        );
        let dropout = self.attn_drop.rate_for(&qkv);
        let y = qkv_attention(qkv, self.num_heads, self.scale, dropout);
        self.proj_drop.forward(dense(&self.proj, y))
    }

    fn macs(&self, tokens: usize) -> Macs {
        let dim = self.proj.weight.lazy_shape().dims::<2>()[0];
        linear_macs(&self.q, tokens)
            + linear_macs(&self.k, tokens)
            + linear_macs(&self.v, tokens)
            + self.cheap_operation_q.macs(tokens)
            + self.cheap_operation_k.macs(tokens)
            + self.cheap_operation_v.macs(tokens)
            + Macs::matmuls((2 * tokens * tokens * dim) as u64)
            + linear_macs(&self.proj, tokens)
    }
}

/// Ghost MLP: `fc1` keeps the width, two cheap scales of its output make up
/// the rest of a 3× hidden layer (so it exists only for mlp_ratio 3).
#[derive(Module, Debug)]
pub struct GhostMlp {
    pub fc1: Linear,
    pub fc2: Linear,
    pub cheap_operation2: ChannelScale,
    pub cheap_operation3: ChannelScale,
    pub drop: Dropout,
}

impl GhostMlp {
    pub fn new(dim: usize, drop: f64, device: &Device) -> Self {
        Self {
            fc1: linear(dim, dim, true, device),
            fc2: linear(3 * dim, dim, true, device),
            cheap_operation2: ChannelScale::new(dim, device),
            cheap_operation3: ChannelScale::new(dim, device),
            drop: Dropout::new(drop),
        }
    }
}

impl Sublayer for GhostMlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x1 = gelu(dense(&self.fc1, x));
        let x2 = gelu(self.cheap_operation2.forward(x1.clone()));
        let x3 = gelu(self.cheap_operation3.forward(x1.clone()));
        let hidden = self.drop.forward(Tensor::cat(vec![x1, x2, x3], 2));
        self.drop.forward(dense(&self.fc2, hidden))
    }

    fn macs(&self, tokens: usize) -> Macs {
        linear_macs(&self.fc1, tokens)
            + self.cheap_operation2.macs(tokens)
            + self.cheap_operation3.macs(tokens)
            + linear_macs(&self.fc2, tokens)
    }
}
