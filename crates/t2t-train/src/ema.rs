//! Model EMA (timm's `ModelEma`): after every optimizer step each weight of
//! the copy becomes `decay · ema + (1 - decay) · weight`. The copy lives off
//! the autodiff graph and is evaluated separately.

use std::collections::BTreeMap;

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use t2t_models::weights::{map_keyed, visit_keyed, KeyedMapper, KeyedVisitor};
use t2t_models::Model;

pub struct ModelEma {
    pub model: Model,
    pub decay: f64,
}

impl ModelEma {
    /// A copy of `model` (taken off the autodiff device) to average into.
    pub fn new(model: &Model, decay: f64) -> Self {
        Self {
            model: model.valid(),
            decay,
        }
    }

    pub fn update(&mut self, model: &Model) {
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
        self.model = map_keyed(self.model.clone(), &mut Average(current.0, self.decay));
    }
}
