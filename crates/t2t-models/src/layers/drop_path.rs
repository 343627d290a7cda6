use burn::module::{Flag, Module, Param};
use burn::tensor::{Distribution, Tensor, TensorData};

use super::dropout::drops;
use super::sample_noise::next_sample_seeds;
use crate::kernels::unit_interval;

/// Stochastic depth: drops the whole residual branch of a sample with
/// probability `prob` and rescales the survivors by 1/(1-prob). Active only
/// while training (autodiff device and training flag on), like `Dropout`.
/// Keyed samples (see [`super::with_sample_keys`]) draw from their own keys.
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
        let batch = x.dims()[0];
        let mut mask_shape = [1; D];
        mask_shape[0] = batch;
        let mask = match next_sample_seeds(batch) {
            Some(seeds) => {
                let kept = seeds
                    .iter()
                    .map(|&seed| f32::from(u8::from(unit_interval(seed) < keep)))
                    .collect();
                Tensor::from_data(TensorData::new(kept, mask_shape), &x.device())
            }
            None => Tensor::<D>::random(mask_shape, Distribution::Bernoulli(keep), &x.device()),
        };
        x * mask.div_scalar(keep)
    }
}
