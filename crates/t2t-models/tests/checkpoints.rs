//! Real checkpoint containers (`$T2T_FIXTURES/checkpoints`): the official
//! timm-style `.pth.tar` (EMA by default, raw on request), the legacy pickle
//! stream and safetensors all give the reference logits; a malicious pickle
//! is refused without its side effect; a truncated file is a one-line error.

use std::path::PathBuf;

use burn::tensor::Tensor;
use t2t_models::import::{import_weights, WeightsChoice};
use t2t_models::parity::max_abs_diff;
use t2t_models::registry;
use t2t_models::weights::{load_state_dict, read_safetensors, HostTensor};
use t2t_models::Model;

mod common;

fn fixture(name: &str) -> Option<PathBuf> {
    common::fixture("checkpoints", name)
}

/// `T2T_ViT(tokens_type='performer', embed_dim=64, depth=1, num_heads=2, mlp_ratio=2.0)`.
fn tiny_model() -> Model {
    let mut config = registry::find("t2t_vit_7").unwrap().config;
    config
        .apply_kwargs(&["embed_dim=64", "depth=1", "num_heads=2", "mlp_ratio=2.0"])
        .unwrap();
    config.init(&t2t_models::device::for_tests()).unwrap()
}

/// Logits of the weights in `file` on the reference input.
fn logits(file: &str, no_ema: bool) -> (Vec<f32>, String) {
    let expected = read_safetensors(&fixture("expected.safetensors").unwrap()).unwrap();
    let imported = import_weights(
        &fixture(file).unwrap(),
        WeightsChoice::from_flags(no_ema, false),
    )
    .unwrap();
    let model = load_state_dict(tiny_model(), &imported.dict, file).unwrap();
    let input: Tensor<4> = expected.tensors["__input"].to_tensor(&t2t_models::device::for_tests());
    let out = HostTensor::from_data(model.forward(input).into_data());
    (out.values, imported.key)
}

fn reference(name: &str) -> Vec<f32> {
    read_safetensors(&fixture("expected.safetensors").unwrap())
        .unwrap()
        .tensors[name]
        .values
        .clone()
}

#[test]
fn official_checkpoint_gives_ema_logits_by_default_and_raw_on_request() {
    if fixture("expected.safetensors").is_none() {
        return;
    }
    let (ema, key) = logits("official_style.pth.tar", false);
    assert_eq!(key, "state_dict_ema");
    let diff = max_abs_diff(&ema, &reference("__logits_ema"));
    eprintln!("official_style EMA logits max_abs_diff {diff:.3e}");
    assert!(diff < 1e-4);

    let (raw, key) = logits("official_style.pth.tar", true);
    assert_eq!(key, "state_dict");
    let diff = max_abs_diff(&raw, &reference("__logits_raw"));
    eprintln!("official_style raw logits max_abs_diff {diff:.3e}");
    assert!(diff < 1e-4);
}

#[test]
fn legacy_and_safetensors_give_the_same_weights_and_logits() {
    let Some(plain) = fixture("plain.safetensors") else {
        return;
    };
    let plain = import_weights(&plain, WeightsChoice::Preferred)
        .unwrap()
        .dict;
    let legacy = import_weights(&fixture("legacy.pth").unwrap(), WeightsChoice::Preferred)
        .unwrap()
        .dict;
    let official = import_weights(
        &fixture("official_style.pth.tar").unwrap(),
        WeightsChoice::Preferred,
    )
    .unwrap()
    .dict;
    assert_eq!(legacy.tensors, plain.tensors, "legacy.pth, bit for bit");
    assert_eq!(
        official.tensors, plain.tensors,
        "state_dict_ema, bit for bit"
    );
    for file in ["legacy.pth", "plain.safetensors"] {
        let (logits, _) = logits(file, false);
        assert!(
            max_abs_diff(&logits, &reference("__logits_ema")) < 1e-4,
            "{file}"
        );
    }
}

#[test]
fn malicious_pickle_is_refused_and_never_runs() {
    let Some(path) = fixture("malicious.pth") else {
        return;
    };
    let marker = std::path::Path::new("/tmp/PWNED_t2t");
    let _ = std::fs::remove_file(marker);
    let err = import_weights(&path, WeightsChoice::Preferred)
        .err()
        .expect("refused")
        .to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("malicious.pth") && err.contains("posix.system"),
        "{err}"
    );
    assert!(!marker.exists(), "the payload ran");
}

#[test]
fn truncated_checkpoint_is_a_one_line_error() {
    let Some(path) = fixture("truncated.pth.tar") else {
        return;
    };
    let err = import_weights(&path, WeightsChoice::Preferred)
        .err()
        .expect("refused")
        .to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("truncated.pth.tar"), "{err}");
}
