use burn::module::{Initializer, Module, Param};
use burn::tensor::{Device, Tensor};

use crate::kernels;

/// `nn.LayerNorm` over the last dimension, with PyTorch's parameter names.
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    pub eps: f64,
}

impl LayerNorm {
    /// Unit weight and zero bias, as PyTorch initialises it.
    pub fn new(width: usize, eps: f64, device: &Device) -> Self {
        Self {
            weight: Initializer::Ones.init([width], device),
            bias: Initializer::Zeros.init([width], device),
            eps,
        }
    }

    pub fn width(&self) -> usize {
        self.weight.lazy_shape().dims::<1>()[0]
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        kernels::layer_norm(x, self.weight.val(), self.bias.val(), self.eps)
    }
}
