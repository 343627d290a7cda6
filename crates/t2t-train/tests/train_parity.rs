//! One training step against the official code (`$T2T_FIXTURES/train`):
//! logits, loss, every gradient, and one AdamW step with timm's groups.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;
use t2t_models::layers::set_stochastic;
use t2t_models::parity::max_abs_diff;
use t2t_models::registry;
use t2t_models::weights::{
    load_state_dict, read_safetensors, state_dict, visit_keyed, HostTensor, KeyedVisitor, StateDict,
};
use t2t_models::Model;
use t2t_train::grads::Gradients;
use t2t_train::loss::{smoothed_targets, soft_target_cross_entropy};
use t2t_train::optim::{AdamWConfig, Optimizer, OptimizerConfig};

fn fixture(name: &str) -> Option<PathBuf> {
    t2t_testing::fixture("train", name)
}

fn model_for(reference: &StateDict, weights: &StateDict, device: &Device) -> Model {
    let meta: Value = serde_json::from_str(&reference.metadata["config"]).unwrap();
    let mut config = registry::find("t2t_vit_7").unwrap().config;
    let kwargs: Vec<String> = meta["kwargs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"')))
        .collect();
    config.apply_kwargs(&kwargs).unwrap();
    // The fixtures were made in eval mode: dropouts off, gradients on.
    let model = set_stochastic(config.init(device).unwrap(), false);
    load_state_dict(model, weights, "fixture weights").unwrap()
}

/// Stored `__grad.*` tensors in the model's layout, for the optimizer-alone check.
fn stored_gradients(model: &Model, reference: &StateDict) -> Gradients {
    struct Convert<'a>(&'a StateDict, BTreeMap<String, Tensor<1>>);
    impl KeyedVisitor for Convert<'_> {
        fn visit<const D: usize>(&mut self, key: &str, linear_weight: bool, _: &Param<Tensor<D>>) {
            if let Some(g) = self.0.tensors.get(&format!("__grad.{key}")) {
                let g = if linear_weight {
                    g.transposed()
                } else {
                    g.clone()
                };
                let n = g.values.len();
                self.1.insert(
                    key.to_string(),
                    Tensor::from_data(
                        TensorData::new(g.values, [n]),
                        &t2t_models::device::for_tests(),
                    ),
                );
            }
        }
    }
    let mut convert = Convert(reference, BTreeMap::new());
    visit_keyed(model, &mut convert);
    Gradients { by_key: convert.1 }
}

fn torch_layout(grads: &Gradients, model: &Model) -> BTreeMap<String, HostTensor> {
    // Shapes in PyTorch layout come from the model's own state dict.
    let shapes = state_dict(model);
    grads
        .by_key
        .iter()
        .map(|(key, g)| {
            let values: Vec<f32> = g.to_data().try_to_vec().unwrap();
            let shape = shapes.tensors[key].shape.clone();
            let is_matrix = shape.len() == 2 && !key.ends_with("cls_token");
            let host = if is_matrix {
                HostTensor::new(vec![shape[1], shape[0]], values).transposed()
            } else {
                HostTensor::new(shape, values)
            };
            (key.clone(), host)
        })
        .collect()
}

fn check(file: &str, weights_file: &str) {
    let Some(path) = fixture(file) else { return };
    let reference = read_safetensors(&path).unwrap();
    let weights = read_safetensors(&fixture(weights_file).unwrap()).unwrap();
    let device = t2t_models::device::for_tests().autodiff();
    let model = model_for(&reference, &weights, &device);

    let input: Tensor<4> = reference.tensors["__input"].to_tensor(&device);
    let logits = model.forward(input);
    let ours: Vec<f32> = logits.to_data().try_to_vec().unwrap();
    assert!(max_abs_diff(&ours, &reference.tensors["__logits"].values) < 1e-3);

    let labels: Vec<usize> = reference.tensors["__labels_f32"]
        .values
        .iter()
        .map(|v| *v as usize)
        .collect();
    let targets = match reference.tensors.get("__soft_targets") {
        Some(soft) => soft.to_tensor(&device),
        None => smoothed_targets(&labels, 1000, 0.1, &device),
    };
    let loss = soft_target_cross_entropy(logits, targets);
    let loss_value: f32 = loss.clone().into_scalar();
    let expected_loss = reference.tensors["__loss"].values[0];
    eprintln!("{file}: loss {loss_value} vs {expected_loss}");
    assert!((loss_value - expected_loss).abs() < 1e-5);

    let grads = Gradients::collect(&model, &loss.backward());
    let expected_keys: Vec<&str> = reference
        .tensors
        .keys()
        .filter_map(|k| k.strip_prefix("__grad."))
        .collect();
    assert_eq!(
        grads.by_key.keys().map(String::as_str).collect::<Vec<_>>(),
        expected_keys
    );
    let mut worst: f64 = 0.0;
    for (key, g) in torch_layout(&grads, &model) {
        let g_ref = &reference.tensors[&format!("__grad.{key}")];
        assert_eq!(g.shape, g_ref.shape, "{key}");
        let scale = g_ref.values.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
        let relative = max_abs_diff(&g.values, &g_ref.values) / scale;
        worst = worst.max(relative);
        assert!(
            relative <= 1e-4,
            "{file}: gradient of {key} off by {relative:e} of its max"
        );
    }
    eprintln!("{file}: worst gradient error {worst:.2e} x max|g|");

    // One AdamW step, lr 1e-3, weight decay 0.05, timm's groups.
    let config = AdamWConfig {
        weight_decay: 0.05,
        ..AdamWConfig::default()
    };
    let stepped = |grads: &Gradients| {
        let mut optim = Optimizer::new(OptimizerConfig::AdamW(config));
        state_dict(&optim.step(model.clone(), grads, 1e-3, &|_| 1.0))
    };
    // (a) the optimizer alone, fed the stored gradients: 1e-6 everywhere.
    let alone = stepped(&stored_gradients(&model, &reference));
    // (b) end to end: 1e-6 where |g_ref| is not within a few orders of eps, 2.1e-3 elsewhere.
    let end_to_end = stepped(&grads);
    for (key, after) in &alone.tensors {
        let Some(expected) = reference.tensors.get(&format!("__step1.{key}")) else {
            assert_eq!(after, &weights.tensors[key], "{key} is frozen");
            continue;
        };
        assert!(
            max_abs_diff(&after.values, &expected.values) <= 1e-6,
            "{key}: optimizer step"
        );
        let g_ref = &reference.tensors[&format!("__grad.{key}")].values;
        let scale = g_ref.iter().fold(0f32, |m, v| m.max(v.abs()));
        for ((ours, theirs), g) in end_to_end.tensors[key]
            .values
            .iter()
            .zip(&expected.values)
            .zip(g_ref)
        {
            let tolerance = if g.abs() >= 1e-5 * scale {
                1e-6
            } else {
                2.1e-3
            };
            assert!((ours - theirs).abs() <= tolerance, "{key}: end-to-end step");
        }
    }
}

#[test]
fn performer_label_smoothing() {
    check(
        "t2t_p_d2_stress_ls.safetensors",
        "t2t_p_d2_stress_ls.safetensors",
    );
}

#[test]
fn transformer_label_smoothing() {
    check(
        "t2t_t_d2_stress_ls.safetensors",
        "t2t_t_d2_stress_ls.safetensors",
    );
}

#[test]
fn performer_mixup_soft_targets() {
    check(
        "t2t_p_d2_stress_soft.safetensors",
        "t2t_p_d2_stress_ls.safetensors",
    );
}
