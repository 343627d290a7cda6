//! Model EMA (timm's `ModelEma`): after every optimizer step each weight of
//! the copy becomes `decay · ema + (1 - decay) · weight`. The copy lives off
//! the autodiff graph and is evaluated separately.
//!
//! With warm-up (timm's `--model-ema-warmup`), the decay of update `t`
//! (counting from 0) is `min(decay, (1 + t) / (10 + t))`: early updates
//! follow the weights closely, so that the average leaves its
//! initialisation even when the run is shorter than the EMA's horizon.

use std::collections::BTreeMap;

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use t2t_models::weights::{map_keyed, visit_keyed, KeyedMapper, KeyedVisitor};
use t2t_models::Model;

pub struct ModelEma {
    pub model: Model,
    pub decay: f64,
    pub warmup: bool,
}

impl ModelEma {
    /// A copy of `model` (taken off the autodiff device) to average into.
    pub fn new(model: &Model, decay: f64, warmup: bool) -> Self {
        Self {
            model: model.valid(),
            decay,
            warmup,
        }
    }

    /// The decay applied by update number `step` (0 for the first).
    pub fn decay_at(&self, step: u64) -> f64 {
        match self.warmup {
            true => self.decay.min((1.0 + step as f64) / (10.0 + step as f64)),
            false => self.decay,
        }
    }

    /// Averages `model` in as update number `step` (0 for the first).
    pub fn update(&mut self, model: &Model, step: u64) {
        struct Current(BTreeMap<String, Tensor<1>>);
        impl KeyedVisitor for Current {
            fn visit<const D: usize>(&mut self, key: &str, _: bool, param: &Param<Tensor<D>>) {
                let value = param.val().inner();
                let n = value.shape().num_elements();
                self.0.insert(key.to_string(), value.reshape([n]));
            }
        }
        struct Average(BTreeMap<String, Tensor<1>>, f64);
        impl KeyedMapper for Average {
            fn map<const D: usize>(
                &mut self,
                key: &str,
                _: bool,
                param: Param<Tensor<D>>,
            ) -> Param<Tensor<D>> {
                let Some(current) = self.0.remove(key) else {
                    return param;
                };
                let decay = self.1;
                param.map(|ema| {
                    let dims = ema.dims();
                    ema.mul_scalar(decay) + current.reshape(dims).mul_scalar(1.0 - decay)
                })
            }
        }
        let mut current = Current(BTreeMap::new());
        visit_keyed(model, &mut current);
        let decay = self.decay_at(step);
        self.model = map_keyed(self.model.clone(), &mut Average(current.0, decay));
    }
}

/// How many updates an EMA of `decay` averages over: `1 / (1 - decay)`.
pub fn horizon(decay: f64) -> f64 {
    1.0 / (1.0 - decay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_decay_rises_to_the_configured_decay() {
        let device = t2t_models::device::for_tests();
        let model = t2t_models::registry::find("t2t_vit_lite_cifar")
            .unwrap()
            .config
            .init(&device)
            .unwrap();
        let ema = ModelEma::new(&model, 0.9998, true);
        assert_eq!(ema.decay_at(0), 0.1);
        assert_eq!(ema.decay_at(90), 0.91);
        // (1 + t) / (10 + t) reaches 0.9998 at t = 44990.
        assert_eq!(ema.decay_at(44_990), 0.9998);
        assert_eq!(ema.decay_at(1_000_000), 0.9998);
        let plain = ModelEma::new(&model, 0.9998, false);
        assert_eq!(plain.decay_at(0), 0.9998);
        assert!((horizon(0.9998) - 5000.0).abs() < 1e-6);
    }
}
