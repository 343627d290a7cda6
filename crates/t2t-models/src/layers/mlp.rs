use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use crate::kernels::gelu;

use super::{dense, linear, linear_macs, Dropout, LayerNorm, Sublayer};
use crate::complexity::Macs;

/// fc1 → GELU → dropout → fc2 → dropout (timm's `Mlp`).
#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    pub drop: Dropout,
}

impl Mlp {
    pub fn new(d_in: usize, hidden: usize, d_out: usize, drop: f64, device: &Device) -> Self {
        Self {
            fc1: linear(d_in, hidden, true, device),
            fc2: linear(hidden, d_out, true, device),
            drop: Dropout::new(drop),
        }
    }
}

impl Mlp {
    /// Everything after `fc1`.
    fn activate(&self, hidden: Tensor<3>) -> Tensor<3> {
        let x = self.drop.forward(gelu(hidden));
        self.drop.forward(dense(&self.fc2, x))
    }
}

impl Sublayer for Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.activate(dense(&self.fc1, x))
    }

    fn forward_normed(&self, norm: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
        self.activate(norm.then_linear(&self.fc1, x))
    }

    fn macs(&self, tokens: usize) -> Macs {
        linear_macs(&self.fc1, tokens) + linear_macs(&self.fc2, tokens)
    }
}
