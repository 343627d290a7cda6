//! Parity with timm 0.3.4's `VisionTransformer` on `$T2T_FIXTURES/vit`.

use serde_json::Value;
use t2t_models::parity::compare;
use t2t_models::weights::{load_state_dict, read_safetensors};

mod common;
mod embeddings;

fn check(file: &str) {
    let Some(path) = common::fixture("vit", file) else {
        return;
    };
    let reference = read_safetensors(&path).unwrap();
    let meta: Value = serde_json::from_str(&reference.metadata["config"]).unwrap();
    let kwargs: Vec<String> = meta["kwargs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut config = common::timm_vit_defaults();
    config.apply_kwargs(&kwargs).unwrap();

    let model = load_state_dict(
        config.init(&t2t_models::device::for_tests()).unwrap(),
        &reference,
        file,
    )
    .unwrap();
    let counted = t2t_models::complexity::param_counts(&model);
    assert_eq!(counted.all as u64, meta["params"].as_u64().unwrap());

    let comparisons = compare(&model, &config, &reference, file).unwrap();
    // The fixture's block tolerance (see below) bounds both.
    embeddings::check_embeddings(&model, &reference, file, 2e-4);
    let names: Vec<&str> = comparisons.iter().map(|c| c.tensor.as_str()).collect();
    assert_eq!(names, ["patch_embed", "block0", "features", "logits"]);
    for c in &comparisons {
        // The fixture's suggestion: 1e-4, and 1e-5·max|ref| on the block output.
        let atol = if c.tensor == "block0" { 2e-4 } else { 1e-4 };
        eprintln!(
            "{file}: {} max_abs_diff {:.3e} (ref max {:.2})",
            c.tensor, c.max_abs_diff, c.reference_max_abs
        );
        assert!(
            c.passed(atol),
            "{file}: {} differs by {:e}",
            c.tensor,
            c.max_abs_diff
        );
    }
}

#[test]
fn vit_patch16_224_stressed() {
    check("vit_p16_224_d192_L2_stress.safetensors");
}

#[test]
fn vit_cifar_patch4_stressed() {
    check("vit_cifar_p4_32_d192_L2_stress.safetensors");
}
