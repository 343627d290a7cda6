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

/// Whether a stochastic layer with rate `prob` and flag `training` drops
/// anything for `x`: switched on, a non-zero rate, and `x` lives where a
/// backward pass can follow.
pub(crate) fn drops<const D: usize>(prob: f64, training: &Param<Flag>, x: &Tensor<D>) -> bool {
    training.is_enabled() && prob > 0.0 && x.device().is_autodiff()
}

impl Dropout {
    pub fn new(prob: f64) -> Self {
        Self {
            prob,
            training: Param::from_bool(true),
        }
    }

    /// Whether it drops anything for `x`.
    fn is_active<const D: usize>(&self, x: &Tensor<D>) -> bool {
        drops(self.prob, &self.training, x)
    }

    /// The rate it drops `x` at, when it drops anything: for kernels that
    /// apply the dropout themselves.
    pub fn rate_for<const D: usize>(&self, x: &Tensor<D>) -> Option<f64> {
        self.is_active(x).then_some(self.prob)
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self.is_active(&x) {
            true => kernels::dropout(x, self.prob),
            false => x,
        }
    }
}
