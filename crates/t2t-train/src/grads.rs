//! Gradients keyed by the parameters' PyTorch names, flattened so that
//! tensors of every rank live in one map.

use std::collections::BTreeMap;

use burn::module::{Module, Param};
use burn::tensor::Gradients as BackwardGradients;
use burn::tensor::{Tensor, TensorData};
use t2t_models::weights::{visit_keyed, KeyedVisitor};

use crate::distributed::Collective;

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

    /// Averages these gradients over `processes`, as one flat buffer in key
    /// order, so that every process holds the same average.
    pub fn average_over(&mut self, processes: &dyn Collective) {
        let world = processes.world_size();
        if world == 1 {
            return;
        }
        let mut lengths = Vec::with_capacity(self.by_key.len());
        let mut flat = Vec::new();
        for grad in self.by_key.values() {
            let values = grad.clone().into_data().convert::<f32>();
            let values = values.as_slice::<f32>().expect("f32 gradients");
            lengths.push(values.len());
            flat.extend_from_slice(values);
        }
        processes.sum_f32(&mut flat);
        let share = 1.0 / world as f32;
        let mut rest = flat.as_slice();
        for (grad, length) in self.by_key.values_mut().zip(lengths) {
            let (mine, others) = rest.split_at(length);
            let average: Vec<f32> = mine.iter().map(|sum| sum * share).collect();
            *grad = Tensor::from_data(TensorData::new(average, [length]), &grad.device());
            rest = others;
        }
    }
}
