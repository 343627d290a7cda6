//! Parity with the official Fastformer code on `$T2T_FIXTURES/fastformer`:
//! `FastSelfAttention` and the BERT-style `FastformerLayer`, with and without
//! a padding mask.

use burn::module::Module;
use burn::tensor::Tensor;
use t2t_models::layers::{FastAttentionConfig, FastformerLayer};
use t2t_models::parity::max_abs_diff;
use t2t_models::weights::{load_state_dict, read_safetensors, HostTensor, StateDict};

mod common;

const ATOL: f64 = 1e-5;

fn reference(file: &str) -> Option<StateDict> {
    common::fixture("fastformer", file).map(|p| read_safetensors(&p).unwrap())
}

fn assert_close(file: &str, name: &str, ours: Tensor<3>, dict: &StateDict) {
    let ours = HostTensor::from_data(ours.into_data());
    let expected = &dict.tensors[name];
    assert_eq!(ours.shape, expected.shape);
    let diff = max_abs_diff(&ours.values, &expected.values);
    eprintln!("{file}: {name} max_abs_diff {diff:.3e}");
    assert!(diff <= ATOL, "{file}: {name} differs by {diff:e}");
}

/// Runs `forward(x, mask)` unmasked and with the stored padding mask.
fn check<M: Module>(
    file: &str,
    module: M,
    forward: impl Fn(&M, Tensor<3>, Option<Tensor<3>>) -> Tensor<3>,
) {
    let Some(dict) = reference(file) else { return };
    let device = t2t_models::device::for_tests();
    let module = load_state_dict(module, &dict, file).unwrap();
    let input: Tensor<3> = dict.tensors["__input"].to_tensor(&device);
    let mask: Tensor<3> = dict.tensors["__ext_mask"].to_tensor(&device);
    assert_close(
        file,
        "__output",
        forward(&module, input.clone(), None),
        &dict,
    );
    assert_close(
        file,
        "__output_masked",
        forward(&module, input, Some(mask)),
        &dict,
    );
}

#[test]
fn fast_self_attention() {
    for file in [
        "fastformer_self_attn_h64_heads4_n17_stress.safetensors",
        "fastformer_self_attn_h64_heads4_n17_init.safetensors",
    ] {
        let module = FastAttentionConfig::default().init(64, 4, &t2t_models::device::for_tests());
        check(file, module, |m, x, mask| m.forward_masked(x, mask));
    }
}

#[test]
fn fastformer_layer() {
    for file in [
        "fastformer_layer_h64_heads4_n17_stress.safetensors",
        "fastformer_layer_h64_heads4_n17_init.safetensors",
    ] {
        let module = FastformerLayer::new(64, 4, 256, &t2t_models::device::for_tests());
        check(file, module, |m, x, mask| m.forward(x, mask));
    }
}
