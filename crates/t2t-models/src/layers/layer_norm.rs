use burn::module::{Initializer, Module, Param};
use burn::nn::Linear;
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

    /// `linear.forward(self.forward(x))` as one operation, which keeps only
    /// `x` for the backward pass rather than `x` and its normalised copy.
    pub fn then_linear<const D: usize>(&self, linear: &Linear, x: Tensor<D>) -> Tensor<D> {
        let weight = linear.weight.val();
        let bias = match &linear.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([weight.dims()[1]], &weight.device()),
        };
        let norm = [self.weight.val(), self.bias.val()];
        kernels::norm_linear(x, norm, self.eps, weight, bias)
    }
}
