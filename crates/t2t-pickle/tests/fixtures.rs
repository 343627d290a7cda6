//! The checkpoint containers users download (`$T2T_FIXTURES/checkpoints`),
//! checked bit for bit against `plain.safetensors`.

mod common;

use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use t2t_pickle::{load_weights, read_value, state_dicts, DType, ErrorKind, Tensor, Value};

/// The EMA state dict as `safetensors` reads it, in file order.
fn reference(path: &Path) -> Vec<(String, Tensor)> {
    let bytes = std::fs::read(path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Tensor)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), Dtype::F32, "{name}");
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let shape = view.shape().to_vec();
            let tensor = Tensor {
                shape,
                values,
                dtype: DType::F32,
            };
            (name, tensor)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// Same names, shapes and bit patterns (so NaNs and signed zeros count).
fn assert_bit_identical(actual: &[(String, Tensor)], expected: &[(String, Tensor)]) {
    let mut actual = actual.to_vec();
    actual.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(actual.len(), expected.len());
    for ((name, a), (expected_name, e)) in actual.iter().zip(expected) {
        assert_eq!(name, expected_name);
        assert_eq!(a.shape, e.shape, "{name}");
        let bits = |t: &Tensor| t.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(a), bits(e), "{name}");
    }
}

#[test]
fn official_checkpoint_loads_ema_by_default_and_raw_on_request() {
    let (Some(checkpoint), Some(plain)) = (
        common::fixture("official_style.pth.tar"),
        common::fixture("plain.safetensors"),
    ) else {
        return;
    };
    let (key, ema) = load_weights(&checkpoint, false).unwrap();
    assert_eq!(key, "state_dict_ema");
    assert_eq!(ema.len(), 45);
    assert_bit_identical(&ema, &reference(&plain));

    let (key, raw) = load_weights(&checkpoint, true).unwrap();
    assert_eq!(key, "state_dict");
    assert_eq!(raw.len(), 45);
    assert!(raw.iter().all(|(name, _)| !name.starts_with("module.")));
    let ema_names: Vec<_> = ema.iter().map(|(n, _)| n).collect();
    let raw_names: Vec<_> = raw.iter().map(|(n, _)| n).collect();
    assert_eq!(raw_names, ema_names);
    assert_ne!(raw, ema, "the raw weights must differ from the EMA ones");
}

#[test]
fn official_checkpoint_keeps_its_metadata_as_inert_data() {
    let Some(checkpoint) = common::fixture("official_style.pth.tar") else {
        return;
    };
    let value = read_value(&checkpoint).unwrap();
    assert_eq!(value.get("epoch"), Some(&Value::Int(309)));
    assert_eq!(value.get("metric"), Some(&Value::Float(71.68)));
    let Some(Value::Object { global, state, .. }) = value.get("args") else {
        panic!("args is not an object: {:?}", value.get("args"));
    };
    assert_eq!(global.to_string(), "argparse.Namespace");
    let model = state.as_deref().and_then(|s| s.get("model"));
    assert_eq!(model, Some(&Value::Str("t2t_vit_fixture_tiny".into())));
    let steps = value.get("optimizer").and_then(|o| o.get("state"));
    assert!(matches!(steps, Some(Value::Dict(s)) if s.len() == 42));
    let keys: Vec<String> = state_dicts(&value).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["state_dict", "state_dict_ema"]);
}

#[test]
fn legacy_stream_equals_safetensors() {
    let (Some(legacy), Some(plain)) = (
        common::fixture("legacy.pth"),
        common::fixture("plain.safetensors"),
    ) else {
        return;
    };
    let (key, weights) = load_weights(&legacy, false).unwrap();
    assert_eq!(key, "");
    assert_eq!(weights.len(), 45);
    assert_bit_identical(&weights, &reference(&plain));
}

#[test]
fn malicious_checkpoint_is_refused_without_running_its_payload() {
    let Some(malicious) = common::fixture("malicious.pth") else {
        return;
    };
    let marker = Path::new("/tmp/PWNED_t2t");
    assert!(
        !marker.exists(),
        "{} exists before the test",
        marker.display()
    );
    for result in [
        read_value(&malicious).map(drop),
        load_weights(&malicious, false).map(drop),
    ] {
        let error = result.unwrap_err();
        assert!(matches!(&error.kind, ErrorKind::Refused(g) if g.to_string() == "posix.system"));
        let message = error.to_string();
        assert!(message.contains("posix.system"), "{message}");
        assert!(message.contains("malicious.pth"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
    assert!(!marker.exists(), "{} was created", marker.display());
}

#[test]
fn truncated_checkpoint_is_a_one_line_error() {
    let Some(truncated) = common::fixture("truncated.pth.tar") else {
        return;
    };
    let error = load_weights(&truncated, false).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error.kind, ErrorKind::Zip(_)), "{message}");
    assert!(message.contains("truncated.pth.tar"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}
