//! Gradients keyed by the parameters' PyTorch names, flattened so that
//! tensors of every rank live in one map.

use std::collections::BTreeMap;

use burn::module::{Module, Param};
use burn::tensor::Gradients as BackwardGradients;
use burn::tensor::Tensor;
use t2t_models::weights::{visit_keyed, KeyedVisitor};

/// Flattened gradients by parameter key (trainable parameters only).
#[derive(Clone, Debug, Default)]
pub struct Gradients {
    pub by_key: BTreeMap<String, Tensor<1>>,
}

impl Gradients {
    /// The gradients of every trainable parameter of `model` after a backward pass.
    pub fn collect<M: Module>(model: &M, backward: &BackwardGradients) -> Self {
        struct Collector<'a> {
            backward: &'a BackwardGradients,
            by_key: BTreeMap<String, Tensor<1>>,
        }
        impl KeyedVisitor for Collector<'_> {
            fn visit<const D: usize>(&mut self, key: &str, _: bool, param: &Param<Tensor<D>>) {
                if let Some(grad) = param.val().grad(self.backward) {
                    let n = grad.shape().num_elements();
                    self.by_key.insert(key.to_string(), grad.reshape([n]));
                }
            }
        }
        let mut collector = Collector {
            backward,
            by_key: BTreeMap::new(),
        };
        visit_keyed(model, &mut collector);
        Self {
            by_key: collector.by_key,
        }
    }

    /// Adds `other` to these gradients (gradient accumulation).
    pub fn accumulate(&mut self, other: Gradients) {
        for (key, grad) in other.by_key {
            let sum = match self.by_key.remove(&key) {
                Some(existing) => existing + grad,
                None => grad,
            };
            self.by_key.insert(key, sum);
        }
    }

    /// The L2 norm over all gradients together (torch's `clip_grad_norm_`).
    pub fn global_norm(&self) -> f64 {
        let squares: f64 = self
            .by_key
            .values()
            .map(|g| g.clone().powi_scalar(2).sum().into_scalar::<f32>() as f64)
            .sum();
        squares.sqrt()
    }

    /// Scales all gradients so that their global norm is at most `max_norm`,
    /// with torch's `clip_grad_norm_` coefficient `max_norm / (norm + 1e-6)`.
    /// Returns the norm before clipping.
    pub fn clip_global_norm(&mut self, max_norm: f64) -> f64 {
        let norm = self.global_norm();
        let coefficient = max_norm / (norm + 1e-6);
        if coefficient < 1.0 {
            for grad in self.by_key.values_mut() {
                *grad = grad.clone().mul_scalar(coefficient);
            }
        }
        norm
    }

    pub fn scale(&mut self, factor: f64) {
        for grad in self.by_key.values_mut() {
            *grad = grad.clone().mul_scalar(factor);
        }
    }
}
