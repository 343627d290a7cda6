//! The optimizers of the recipes, exactly as PyTorch computes them:
//! - AdamW (`torch.optim.AdamW`) with timm's two parameter groups: no weight
//!   decay on 1-D parameters, biases and `cls_token`;
//! - SGD with momentum (`torch.optim.SGD`), decaying every parameter, as the
//!   official transfer-learning script uses it.
//!
//! Frozen parameters (position table, Performer features, layers frozen for
//! fine-tuning) have no gradient and are not touched.

use std::collections::BTreeMap;

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use t2t_models::weights::{map_keyed, HostTensor, KeyedMapper};

use crate::grads::Gradients;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
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

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    pub momentum: f64,
    pub weight_decay: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerConfig {
    AdamW(AdamWConfig),
    Sgd(SgdConfig),
}

impl OptimizerConfig {
    /// Names of the per-parameter state buffers.
    fn buffers(&self) -> &'static [&'static str] {
        match self {
            OptimizerConfig::AdamW(_) => &["exp_avg", "exp_avg_sq"],
            OptimizerConfig::Sgd(_) => &["momentum_buffer"],
        }
    }
}

/// timm's `add_weight_decay`: 1-D tensors, biases and the names in the
/// model's `no_weight_decay()` (here `cls_token`) are not decayed.
pub fn is_decayed(key: &str, rank: usize) -> bool {
    !(rank <= 1 || key.ends_with(".bias") || key == "cls_token")
}

#[derive(Clone, Debug)]
pub struct Optimizer {
    pub config: OptimizerConfig,
    /// Updates done so far (torch's per-parameter `step`).
    pub steps: u64,
    /// Flattened state buffers per parameter key, in [`OptimizerConfig::buffers`] order.
    state: BTreeMap<String, Vec<Tensor<1>>>,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig) -> Self {
        Self {
            config,
            steps: 0,
            state: BTreeMap::new(),
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

    /// The state as host tensors named `<buffer>.<key>`, in the model's
    /// internal layout.
    pub fn state(&self) -> BTreeMap<String, HostTensor> {
        let names = self.config.buffers();
        let mut state = BTreeMap::new();
        for (key, buffers) in &self.state {
            for (name, buffer) in names.iter().zip(buffers) {
                state.insert(
                    format!("{name}.{key}"),
                    HostTensor::from_data(buffer.to_data()),
                );
            }
        }
        state
    }

    /// Restores a state saved by [`Optimizer::state`].
    pub fn load_state(
        &mut self,
        steps: u64,
        state: &BTreeMap<String, HostTensor>,
        device: &burn::tensor::Device,
    ) {
        let names = self.config.buffers();
        self.steps = steps;
        self.state.clear();
        for name in state.keys() {
            let Some(key) = name.strip_prefix(&format!("{}.", names[0])) else {
                continue;
            };
            let buffers: Option<Vec<Tensor<1>>> = names
                .iter()
                .map(|n| {
                    state
                        .get(&format!("{n}.{key}"))
                        .map(|t| t.to_tensor(device))
                })
                .collect();
            if let Some(buffers) = buffers {
                self.state.insert(key.to_string(), buffers);
            }
        }
    }

    /// The new value of a flattened parameter.
    fn update(
        &mut self,
        key: &str,
        rank: usize,
        value: Tensor<1>,
        grad: &Tensor<1>,
        lr: f64,
    ) -> Tensor<1> {
        let t = self.steps as i32;
        match self.config {
            OptimizerConfig::AdamW(AdamWConfig {
                betas: (beta1, beta2),
                eps,
                weight_decay,
            }) => {
                let decay = if is_decayed(key, rank) {
                    weight_decay
                } else {
                    0.0
                };
                let buffers = self
                    .state
                    .entry(key.to_string())
                    .or_insert_with(|| vec![grad.zeros_like(), grad.zeros_like()]);
                buffers[0] =
                    buffers[0].clone().mul_scalar(beta1) + grad.clone().mul_scalar(1.0 - beta1);
                buffers[1] = buffers[1].clone().mul_scalar(beta2)
                    + grad.clone().powi_scalar(2).mul_scalar(1.0 - beta2);
                let bias_correction1 = 1.0 - beta1.powi(t);
                let bias_correction2 = 1.0 - beta2.powi(t);
                let denominator = buffers[1]
                    .clone()
                    .sqrt()
                    .div_scalar(bias_correction2.sqrt())
                    .add_scalar(eps);
                let delta = (buffers[0].clone() / denominator).mul_scalar(lr / bias_correction1);
                value.mul_scalar(1.0 - lr * decay) - delta
            }
            OptimizerConfig::Sgd(SgdConfig {
                momentum,
                weight_decay,
            }) => {
                let direction = grad.clone() + value.clone().mul_scalar(weight_decay);
                let direction = match self.state.get_mut(key) {
                    Some(buffers) if momentum > 0.0 => {
                        buffers[0] = buffers[0].clone().mul_scalar(momentum) + direction;
                        buffers[0].clone()
                    }
                    _ if momentum > 0.0 => {
                        self.state.insert(key.to_string(), vec![direction.clone()]);
                        direction
                    }
                    _ => direction,
                };
                value - direction.mul_scalar(lr)
            }
        }
    }
}

struct Update<'a> {
    optim: &'a mut Optimizer,
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
        let lr = self.lr * (self.lr_scale)(key);
        param.map(|value| {
            let dims = value.dims();
            let flat = value.inner().reshape([dims.iter().product::<usize>()]);
            let updated = self.optim.update(key, D, flat, grad, lr);
            Tensor::from_inner(updated.reshape(dims)).set_require_grad(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn tensor(values: &[f32]) -> Tensor<1> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [values.len()]),
            &t2t_models::device::for_tests(),
        )
    }

    fn values(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    #[test]
    fn sgd_with_momentum_follows_torch() {
        // torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01), two steps by hand:
        // d1 = g1 + 0.01 p0 = 1.0 + 0.02 = 1.02; buf = 1.02; p1 = 2 - 0.102 = 1.898
        // d2 = g2 + 0.01 p1 = 0.5 + 0.01898; buf = 0.9 * 1.02 + 0.51898 = 1.43698; p2 = 1.898 - 0.143698
        let mut sgd = Optimizer::new(OptimizerConfig::Sgd(SgdConfig {
            momentum: 0.9,
            weight_decay: 0.01,
        }));
        sgd.steps = 1;
        let p1 = values(sgd.update("w", 2, tensor(&[2.0]), &tensor(&[1.0]), 0.1));
        assert!((p1[0] - 1.898).abs() < 1e-6);
        sgd.steps = 2;
        let p2 = values(sgd.update("w", 2, tensor(&p1), &tensor(&[0.5]), 0.1));
        assert!((p2[0] - (1.898 - 0.143698)).abs() < 1e-6);
    }

    #[test]
    fn adamw_first_step_is_lr_times_sign() {
        // At t = 1, m̂ = g and v̂ = g², so the update is lr·g/(|g| + eps) after decay.
        let mut adamw = Optimizer::new(OptimizerConfig::AdamW(AdamWConfig::default()));
        adamw.steps = 1;
        let p = values(adamw.update(
            "blocks.0.attn.qkv.weight",
            2,
            tensor(&[1.0, -1.0]),
            &tensor(&[0.3, -2.0]),
            1e-3,
        ));
        let decayed = 1.0 - 1e-3 * 0.05;
        assert!((p[0] - (decayed - 1e-3)).abs() < 1e-7);
        assert!((p[1] - (-decayed + 1e-3)).abs() < 1e-7);
        let b = values(adamw.update("head.bias", 1, tensor(&[1.0]), &tensor(&[0.3]), 1e-3));
        assert!((b[0] - (1.0 - 1e-3)).abs() < 1e-7, "no decay on biases");
    }
}
