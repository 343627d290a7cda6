//! Cross entropy against soft targets (timm's `SoftTargetCrossEntropy`):
//! label smoothing and mixup/cutmix both arrive as target distributions.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};

/// `mean_b Σ_j -t[b, j] · log_softmax(logits)[b, j]`.
pub fn soft_target_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (targets * log_softmax(logits, 1)).sum_dim(1).mean().neg()
}

/// One-hot targets with label smoothing folded in, as timm's `mixup_target`:
/// `on = 1 - s + s/C`, `off = s/C`.
pub fn smoothed_targets(
    labels: &[usize],
    classes: usize,
    smoothing: f64,
    device: &Device,
) -> Tensor<2> {
    let off = (smoothing / classes as f64) as f32;
    let on = (1.0 - smoothing + smoothing / classes as f64) as f32;
    let mut values = vec![off; labels.len() * classes];
    for (row, &label) in labels.iter().enumerate() {
        values[row * classes + label] = on;
    }
    Tensor::from_data(TensorData::new(values, [labels.len(), classes]), device)
}
