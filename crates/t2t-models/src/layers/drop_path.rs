use burn::module::{Flag, Module, Param};
use burn::tensor::{Distribution, Tensor};

use super::dropout::drops;

/// Stochastic depth: drops the whole residual branch of a sample with
/// probability `prob` and rescales the survivors by 1/(1-prob). Active only
/// while training (autodiff device and training flag on), like `Dropout`.
#[derive(Module, Debug)]
pub struct DropPath {
    pub prob: f64,
    pub training: Param<Flag>,
}

impl DropPath {
    pub fn new(prob: f64) -> Self {
        Self {
            prob,
            training: Param::from_bool(true),
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if !drops(self.prob, &self.training, &x) {
            return x;
        }
        let keep = 1.0 - self.prob;
        let mut mask_shape = [1; D];
        mask_shape[0] = x.dims()[0];
        let mask = Tensor::<D>::random(mask_shape, Distribution::Bernoulli(keep), &x.device());
        x * mask.div_scalar(keep)
    }
}
