//! AdamW exactly as `torch.optim.AdamW`, with timm's two parameter groups:
//! no weight decay on 1-D parameters, biases and `cls_token`; frozen
//! parameters (position table, Performer features) are not optimised at all.

use std::collections::BTreeMap;

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use t2t_models::weights::{map_keyed, HostTensor, KeyedMapper};

use crate::grads::Gradients;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.05,
        }
    }
}

/// timm's `add_weight_decay`: 1-D tensors, biases and the names in the
/// model's `no_weight_decay()` (here `cls_token`) are not decayed.
pub fn is_decayed(key: &str, rank: usize) -> bool {
    !(rank <= 1 || key.ends_with(".bias") || key == "cls_token")
}

/// First and second moments of one parameter, flattened.
#[derive(Clone, Debug)]
struct Moments {
    exp_avg: Tensor<1>,
    exp_avg_sq: Tensor<1>,
}

#[derive(Clone, Debug)]
pub struct AdamW {
    pub config: AdamWConfig,
    /// Number of updates done so far (torch's per-parameter `step`).
    pub steps: u64,
    moments: BTreeMap<String, Moments>,
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            steps: 0,
            moments: BTreeMap::new(),
        }
    }

    /// One update of every parameter that has a gradient in `grads`, each
    /// with learning rate `lr · lr_scale(key)`.
    pub fn step<M: Module>(
        &mut self,
        model: M,
        grads: &Gradients,
        lr: f64,
        lr_scale: &dyn Fn(&str) -> f64,
    ) -> M {
        self.steps += 1;
        let mut update = Update {
            optim: self,
            grads,
            lr,
            lr_scale,
        };
        map_keyed(model, &mut update)
    }

    /// The moments as host tensors (`exp_avg.<key>`, `exp_avg_sq.<key>`), in
    /// the model's internal layout.
    pub fn state(&self) -> BTreeMap<String, HostTensor> {
        let mut state = BTreeMap::new();
        for (key, m) in &self.moments {
            state.insert(
                format!("exp_avg.{key}"),
                HostTensor::from_data(m.exp_avg.to_data()),
            );
            state.insert(
                format!("exp_avg_sq.{key}"),
                HostTensor::from_data(m.exp_avg_sq.to_data()),
            );
        }
        state
    }

    /// Restores moments saved by [`AdamW::state`].
    pub fn load_state(
        &mut self,
        steps: u64,
        state: &BTreeMap<String, HostTensor>,
        device: &burn::tensor::Device,
    ) {
        self.steps = steps;
        self.moments.clear();
        for (name, tensor) in state {
            let Some(key) = name.strip_prefix("exp_avg.") else {
                continue;
            };
            if let Some(sq) = state.get(&format!("exp_avg_sq.{key}")) {
                self.moments.insert(
                    key.to_string(),
                    Moments {
                        exp_avg: tensor.to_tensor(device),
                        exp_avg_sq: sq.to_tensor(device),
                    },
                );
            }
        }
    }
}

struct Update<'a> {
    optim: &'a mut AdamW,
    grads: &'a Gradients,
    lr: f64,
    lr_scale: &'a dyn Fn(&str) -> f64,
}

impl KeyedMapper for Update<'_> {
    fn map<const D: usize>(
        &mut self,
        key: &str,
        _: bool,
        param: Param<Tensor<D>>,
    ) -> Param<Tensor<D>> {
        let Some(grad) = self.grads.by_key.get(key) else {
            return param;
        };
        let AdamWConfig {
            betas: (beta1, beta2),
            eps,
            weight_decay,
        } = self.optim.config;
        let lr = self.lr * (self.lr_scale)(key);
        let t = self.optim.steps as i32;
        let decay = if is_decayed(key, D) {
            weight_decay
        } else {
            0.0
        };
        let moments = self
            .optim
            .moments
            .entry(key.to_string())
            .or_insert_with(|| Moments {
                exp_avg: grad.zeros_like(),
                exp_avg_sq: grad.zeros_like(),
            });
        moments.exp_avg =
            moments.exp_avg.clone().mul_scalar(beta1) + grad.clone().mul_scalar(1.0 - beta1);
        moments.exp_avg_sq = moments.exp_avg_sq.clone().mul_scalar(beta2)
            + grad.clone().powi_scalar(2).mul_scalar(1.0 - beta2);
        let bias_correction1 = 1.0 - beta1.powi(t);
        let bias_correction2 = 1.0 - beta2.powi(t);
        let denominator = moments
            .exp_avg_sq
            .clone()
            .sqrt()
            .div_scalar(bias_correction2.sqrt())
            .add_scalar(eps);
        let delta = (moments.exp_avg.clone() / denominator).mul_scalar(lr / bias_correction1);
        param.map(|value| {
            let dims = value.dims();
            let flat = value.inner().reshape([dims.iter().product::<usize>()]);
            let updated = flat.mul_scalar(1.0 - lr * decay) - delta;
            Tensor::from_inner(updated.reshape(dims)).set_require_grad(true)
        })
    }
}
