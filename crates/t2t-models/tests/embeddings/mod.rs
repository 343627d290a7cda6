//! `Model::embed` (what `t2t embed` stores) against a golden file.

use std::collections::BTreeMap;

use t2t_models::parity::max_abs_diff;
use t2t_models::weights::{HostTensor, StateDict};
use t2t_models::Model;

/// Embeds the golden `__input`: `pre_logits` must be the official
/// `forward_features` (`__features`) and the class token of `features`, and
/// `blocks.0` must be `__block0`, each within `atol`.
pub fn check_embeddings(model: &Model, reference: &StateDict, file: &str, atol: f64) {
    let input = reference.tensors["__input"].to_tensor(&t2t_models::device::for_tests());
    let embedded: BTreeMap<String, HostTensor> =
        model.embed(input, &[0]).unwrap().into_iter().collect();
    let (features, pre_logits) = (&embedded["features"], &embedded["pre_logits"]);
    let (batch, width) = (pre_logits.shape[0], pre_logits.shape[1]);
    assert_eq!(features.shape[0], batch, "{file}");
    let per_image = features.values.len() / batch;
    for b in 0..batch {
        assert_eq!(
            features.values[b * per_image..b * per_image + width],
            pre_logits.values[b * width..(b + 1) * width],
            "{file}: pre_logits of image {b} is not its class token"
        );
    }
    for (ours, golden) in [("pre_logits", "__features"), ("blocks.0", "__block0")] {
        let (ours, expected) = (&embedded[ours], &reference.tensors[golden]);
        assert_eq!(ours.shape, expected.shape, "{file}: {golden}");
        let diff = max_abs_diff(&ours.values, &expected.values);
        eprintln!("{file}: embedded vs {golden} max_abs_diff {diff:.3e}");
        assert!(
            diff <= atol,
            "{file}: {golden} differs by {diff:e} > {atol:e}"
        );
    }
}
