use burn::module::{Flag, Module, Param};
use burn::tensor::Tensor;

use crate::kernels;

/// `nn.Dropout`: active only while training (autodiff device and training
/// flag on), as burn's and PyTorch's are.
#[derive(Module, Debug)]
pub struct Dropout {
    pub prob: f64,
    pub training: Param<Flag>,
}

impl Dropout {
    pub fn new(prob: f64) -> Self {
        Self {
            prob,
            training: Param::from_bool(true),
        }
    }

    /// Whether it drops anything for `x`: switched on, a non-zero rate, and
    /// `x` lives where a backward pass can follow.
    pub fn is_active<const D: usize>(&self, x: &Tensor<D>) -> bool {
        self.training.is_enabled() && self.prob > 0.0 && x.device().is_autodiff()
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self.is_active(&x) {
            true => kernels::dropout(x, self.prob),
            false => x,
        }
    }
}
