//! Parity with the official T2T-ViT code on the golden files in
//! `$T2T_FIXTURES/t2t` (skipped, with a message, when the variable is unset).

use std::path::PathBuf;

use serde_json::Value;
use t2t_models::parity::{compare, merge_weights};
use t2t_models::registry::{self, ModelConfig};
use t2t_models::weights::{load_state_dict, read_safetensors, StateDict};

mod common;
mod embeddings;

fn fixture(name: &str) -> Option<PathBuf> {
    common::fixture("t2t", name)
}

/// The configuration a golden file was made with, from its metadata.
fn config_of(reference: &StateDict) -> ModelConfig {
    let meta: Value = serde_json::from_str(&reference.metadata["config"]).unwrap();
    let mut config = match meta["arch"].as_str() {
        Some(arch) => registry::find(arch).unwrap().config,
        None => common::official_t2t_defaults(),
    };
    let mut kwargs = vec![format!("img_size={}", meta["img_size"])];
    if let Some(map) = meta["kwargs"].as_object() {
        kwargs.extend(
            map.iter()
                .map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"'))),
        );
    }
    config.apply_kwargs(&kwargs).unwrap();
    config
}

/// Checks every `__*` tensor of `file` against the model, with the official
/// parameter counts of its metadata.
fn check(file: &str, atol_all: f64, atol_logits: f64) {
    let Some(path) = fixture(file) else { return };
    let reference = read_safetensors(&path).unwrap();
    let meta: Value = serde_json::from_str(&reference.metadata["config"]).unwrap();
    let weights = match meta["weights_from"].as_str() {
        Some(base) => read_safetensors(&fixture(&format!("{base}.safetensors")).unwrap()).unwrap(),
        None => reference.clone(),
    };
    let config = config_of(&reference);

    let counted = t2t_models::complexity::param_counts(
        &config
            .init(&t2t_models::device::for_tests().autodiff())
            .unwrap(),
    );
    assert_eq!(
        counted.all as u64,
        meta["params_all"].as_u64().unwrap(),
        "params_all"
    );
    assert_eq!(
        counted.trainable as u64,
        meta["params_trainable"].as_u64().unwrap(),
        "params_trainable"
    );

    let model = config.init(&t2t_models::device::for_tests()).unwrap();
    let model = load_state_dict(model, &merge_weights(&weights, &reference), file).unwrap();
    let comparisons = compare(&model, &config, &reference, file).unwrap();
    embeddings::check_embeddings(&model, &reference, file, atol_all);
    let expected: Vec<&str> = reference
        .tensors
        .keys()
        .filter_map(|k| k.strip_prefix("__"))
        .filter(|k| *k != "input")
        .collect();
    let compared: Vec<&str> = comparisons.iter().map(|c| c.tensor.as_str()).collect();
    for name in &expected {
        assert!(compared.contains(name), "{file}: __{name} was not produced");
    }
    for c in &comparisons {
        let atol = if c.tensor == "logits" {
            atol_logits
        } else {
            atol_all
        };
        eprintln!(
            "{file}: {} max_abs_diff {:.3e} (ref max {:.2})",
            c.tensor, c.max_abs_diff, c.reference_max_abs
        );
        assert!(
            c.passed(atol),
            "{file}: {} differs by {:e} > {atol:e}",
            c.tensor,
            c.max_abs_diff
        );
    }
}

#[test]
fn t2t_vit_7() {
    check("t2t_vit_7.safetensors", 1e-4, 1e-5);
}

#[test]
fn t2t_vit_7_at_384() {
    check("t2t_vit_7_384.safetensors", 1e-4, 1e-5);
}

#[test]
fn t2t_vit_14() {
    check("t2t_vit_14.safetensors", 1e-4, 1e-5);
}

#[test]
fn t2t_vit_14_resnext() {
    check("t2t_vit_14_resnext.safetensors", 1e-4, 1e-5);
}

#[test]
fn performer_t2t_stressed() {
    check("t2t_vit_7_d2_stress.safetensors", 1e-3, 1e-3);
}

#[test]
fn transformer_t2t_stressed() {
    check("t2t_vit_t_7_d2_stress.safetensors", 1e-3, 1e-3);
}
