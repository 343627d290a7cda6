//! Comparing a model with reference activations stored next to the weights
//! (the `__*` tensors of the golden files made with the official code).

use serde::Serialize;

use burn::module::Module;

use crate::weights::{HostTensor, StateDict};
use crate::{Model, ModelConfig, ModelError, Taps};

/// How far one of our activations is from its reference.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Reference name without the `__` prefix, e.g. `logits`.
    pub tensor: String,
    /// NaN when either side holds a NaN or an infinity (see [`max_abs_diff`]).
    pub max_abs_diff: f64,
    /// Largest finite magnitude in the reference, for relative tolerances.
    pub reference_max_abs: f64,
    /// NaNs and infinities in our activation and in the reference.
    pub non_finite: [usize; 2],
}

impl Comparison {
    /// Whether every value on both sides is finite and within `atol`.
    pub fn passed(&self, atol: f64) -> bool {
        // A NaN difference compares false.
        self.max_abs_diff <= atol
    }
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

/// Runs the reference `__input` through `model` (built from `config`) and
/// compares every recorded activation that has a `__` counterpart in
/// `reference`. An input that does not fit the model, an empty batch
/// included, is refused before anything runs.
pub fn compare(
    model: &Model,
    config: &ModelConfig,
    reference: &StateDict,
    source: &str,
) -> Result<Vec<Comparison>, ModelError> {
    let refuse = |reason: String| ModelError::WeightsFile {
        path: source.to_string(),
        reason,
    };
    let input = reference
        .tensors
        .get("__input")
        .ok_or_else(|| refuse("has no __input tensor to run".to_string()))?;
    let (channels, size) = (config.in_chans(), config.img_size());
    if input.shape.len() != 4 || input.shape[0] == 0 || input.shape[1..] != [channels, size, size] {
        return Err(refuse(format!(
            "__input has shape {:?}; the model takes [B, {channels}, {size}, {size}] with B >= 1",
            input.shape
        )));
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
            return Err(refuse(format!(
                "__{name} has shape {:?}, the model gives {:?}",
                expected.shape, ours.shape
            )));
        }
        let non_finite = |values: &[f32]| values.iter().filter(|v| !v.is_finite()).count();
        comparisons.push(Comparison {
            tensor: name,
            max_abs_diff: max_abs_diff(&ours.values, &expected.values),
            reference_max_abs: expected
                .values
                .iter()
                .filter(|v| v.is_finite())
                .fold(0.0, |m, v| m.max(v.abs() as f64)),
            non_finite: [non_finite(&ours.values), non_finite(&expected.values)],
        });
    }
    Ok(comparisons)
}

/// The largest `|a − b|` over two equally long slices, or NaN when either
/// holds a NaN or an infinity: a difference that no tolerance accepts.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "compared tensors differ in length");
    a.iter()
        .zip(b)
        .try_fold(0.0f64, |max, (x, y)| {
            (x.is_finite() && y.is_finite()).then(|| max.max((*x as f64 - *y as f64).abs()))
        })
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;
    use crate::weights::state_dict;

    #[test]
    fn non_finite_values_never_pass() {
        assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
        for (a, b) in [
            ([f32::NAN, 0.0], [f32::NAN, 0.0]),
            ([0.0, 0.0], [0.0, f32::NAN]),
            ([f32::INFINITY, 0.0], [f32::INFINITY, 0.0]),
            ([0.0, f32::NEG_INFINITY], [0.0, 1.0]),
        ] {
            let diff = max_abs_diff(&a, &b);
            assert!(diff.is_nan(), "{a:?} vs {b:?}: {diff}");
            let comparison = Comparison {
                tensor: "logits".into(),
                max_abs_diff: diff,
                reference_max_abs: 0.0,
                non_finite: [0, 0],
            };
            assert!(!comparison.passed(f64::INFINITY));
        }
    }

    #[test]
    fn inputs_that_do_not_fit_are_refused_before_running() {
        let mut config = registry::find("vit_cifar").unwrap().config;
        config
            .apply_kwargs(&["embed_dim=8", "depth=1", "num_heads=2"])
            .unwrap();
        let model = config.init(&Default::default()).unwrap();
        let mut reference = state_dict(&model);
        for shape in [
            vec![0, 3, 32, 32],
            vec![1, 3, 224, 224],
            vec![1, 0, 32, 32],
            vec![1, 3, 32, 0],
            vec![3, 32, 32],
        ] {
            let len = shape.iter().product();
            reference.tensors.insert(
                "__input".into(),
                HostTensor::new(shape.clone(), vec![0.0; len]),
            );
            let error = compare(&model, &config, &reference, "ref.safetensors")
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("ref.safetensors") && error.contains("[B, 3, 32, 32]"),
                "{shape:?}: {error}"
            );
        }
    }
}
