//! Comparing a model with reference activations stored next to the weights
//! (the `__*` tensors of the golden files made with the official code).

use serde::Serialize;

use burn::module::Module;

use crate::weights::{HostTensor, StateDict};
use crate::{Model, ModelError, Taps};

/// How far one of our activations is from its reference.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Reference name without the `__` prefix, e.g. `logits`.
    pub tensor: String,
    pub max_abs_diff: f64,
    /// Largest magnitude in the reference, for relative tolerances.
    pub reference_max_abs: f64,
}

/// The weights to load for a check: those of `weights`, overridden by any
/// weights that the reference file carries (e.g. a `pos_embed` for another
/// image size).
pub fn merge_weights(weights: &StateDict, reference: &StateDict) -> StateDict {
    let mut merged = weights.clone();
    for (name, tensor) in &reference.tensors {
        if !name.starts_with("__") {
            merged.tensors.insert(name.clone(), tensor.clone());
        }
    }
    merged
}

/// Runs the reference `__input` through `model` and compares every recorded
/// activation that has a `__` counterpart in `reference`.
pub fn compare(
    model: &Model,
    reference: &StateDict,
    source: &str,
) -> Result<Vec<Comparison>, ModelError> {
    let input = reference
        .tensors
        .get("__input")
        .ok_or_else(|| ModelError::WeightsFile {
            path: source.to_string(),
            reason: "has no __input tensor to run".to_string(),
        })?;
    if input.shape.len() != 4 {
        return Err(ModelError::WeightsFile {
            path: source.to_string(),
            reason: format!("__input has shape {:?}, expected [B, C, H, W]", input.shape),
        });
    }
    let device = model.devices().into_iter().next().unwrap_or_default();
    let mut taps = Taps::on();
    model.forward_tapped(input.to_tensor(&device), &mut taps);
    let mut comparisons = Vec::new();
    for (name, data) in taps.into_recorded() {
        let Some(expected) = reference.tensors.get(&format!("__{name}")) else {
            continue;
        };
        let ours = HostTensor::from_data(data);
        if ours.shape != expected.shape {
            return Err(ModelError::WeightsFile {
                path: source.to_string(),
                reason: format!(
                    "__{name} has shape {:?}, the model gives {:?}",
                    expected.shape, ours.shape
                ),
            });
        }
        comparisons.push(Comparison {
            tensor: name,
            max_abs_diff: max_abs_diff(&ours.values, &expected.values),
            reference_max_abs: expected
                .values
                .iter()
                .fold(0.0, |m, v| m.max(v.abs() as f64)),
        });
    }
    Ok(comparisons)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
}
