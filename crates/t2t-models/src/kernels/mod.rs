//! Hot operations that the CPU backend runs slowly, written as burn backend
//! extensions with hand-written backward passes. Each falls back to the plain
//! burn operation on other backends, and is tested against it.

/// Gives each parent of a backward step that tracks gradients its gradient:
/// `register_parents!(B, grads, ops.parents, [dx, dw, ...])`, the gradients
/// in the order of the operation's inputs. (A macro: the parents' node type
/// cannot be named outside the autodiff crate.)
macro_rules! register_parents {
    ($backend:ty, $grads:expr, $parents:expr, $parent_grads:expr) => {
        for (node, grad) in $parents.into_iter().zip($parent_grads) {
            if let Some(node) = node {
                $grads.register::<$backend>(node.id, grad);
            }
        }
    };
}

mod attention;
mod dropout;
mod gelu;
mod layer_norm;
mod linear;
mod math;
mod matrix;
mod norm_linear;
mod performer;
mod row_tasks;
pub mod simd;
mod soft_split;

pub use attention::qkv_attention;
pub(crate) use attention::{attention_probabilities, merge_heads, split_heads, split_qkv};
pub use dropout::dropout;
pub(crate) use dropout::unit_interval;
pub use gelu::gelu;
pub use layer_norm::layer_norm;
pub use linear::linear;
pub use norm_linear::norm_linear;
pub use performer::{performer_attention, EPSILON as PERFORMER_EPSILON};
pub use soft_split::{soft_split_image, soft_split_tokens};

use std::borrow::Cow;

use burn::backend::flex::FlexTensor;
use burn::tensor::{Device, Shape, TensorData};

/// A CPU-backend tensor's values as f32 in row-major order, with its shape:
/// borrowed when the tensor is laid out so already (the usual case, and the
/// autodiff state may hold the same buffer), copied otherwise.
fn read(tensor: &FlexTensor) -> (Cow<'_, [f32]>, Vec<usize>) {
    let shape = tensor.layout().shape().to_vec();
    match tensor.as_slice::<f32>() {
        Some(values) => (Cow::Borrowed(values), shape),
        None => (Cow::Owned(flex_values(tensor.clone()).0), shape),
    }
}

/// A CPU-backend tensor of `values` in row-major order: the counterpart of
/// [`read`] for a kernel's results.
fn write(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// A CPU-backend tensor's values as f32, in row-major order, with its shape;
/// the buffer is reused when the tensor holds the only reference to it.
fn flex_values(tensor: FlexTensor) -> (Vec<f32>, Vec<usize>) {
    let data = tensor.into_data();
    let shape = data.shape().to_vec();
    (
        data.convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 data"),
        shape,
    )
}

/// Stops a kernel whose operands do not have the shapes that it indexes
/// them by, before it reads or writes anything. The layers pass consistent
/// shapes (configurations are validated before a model is built), so this
/// guards against a bug reading past a buffer or dividing by a zero size.
#[track_caller]
fn check_shapes(kernel: &str, consistent: bool, shapes: &[&[usize]]) {
    assert!(
        consistent,
        "{kernel}: inconsistent operand shapes {shapes:?}"
    );
}

/// The largest absolute difference between a kernel's result and the plain
/// operations'.
#[cfg(test)]
fn max_difference<const D: usize>(
    ours: burn::tensor::Tensor<D>,
    plain: burn::tensor::Tensor<D>,
) -> f32 {
    (ours - plain).abs().max().into_scalar::<f32>()
}

/// Whether the extensions run for tensors on `device` (the CPU backend,
/// with or without autodiff); elsewhere the plain burn operations do.
pub(crate) fn on_flex(device: Device) -> bool {
    device.inner() == Device::flex()
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;

    use super::attention::AttentionOps;
    use super::gelu::GeluOps;
    use super::layer_norm::LayerNormOps;
    use super::norm_linear::NormLinearOps;
    use super::performer::PerformerOps;
    use super::soft_split::{Geometry, SoftSplitOps};
    use super::*;

    /// A tensor of `shape` filled with ones (no values when it is empty).
    fn ones(shape: &[usize]) -> FlexTensor {
        write(vec![1.0; shape.iter().product()], shape.to_vec())
    }

    fn shape(tensor: &FlexTensor) -> Vec<usize> {
        tensor.layout().shape().to_vec()
    }

    #[test]
    fn empty_batches_give_empty_results_forward_and_backward() {
        let image = ones(&[0, 3, 16, 16]);
        let image_split = Geometry {
            batch: 0,
            channels: 3,
            side: 16,
            channels_last: false,
            kernel: 7,
            stride: 4,
            padding: 2,
        };
        let split = Flex::soft_split(image, image_split);
        assert_eq!(shape(&split), [0, 16, 147]);
        let back = Flex::soft_split_backward(split, image_split);
        assert_eq!(shape(&back), [0, 3, 16, 16]);
        let tokens = Flex::soft_split(
            ones(&[0, 16, 8]),
            Geometry {
                batch: 0,
                channels: 8,
                side: 4,
                channels_last: true,
                kernel: 3,
                stride: 2,
                padding: 1,
            },
        );
        assert_eq!(shape(&tokens), [0, 4, 72]);

        let (kqv, w) = (ones(&[0, 5, 24]), ones(&[4, 8]));
        let y = Flex::performer_attention(kqv.clone(), w.clone());
        assert_eq!(shape(&y), [0, 5, 8]);
        assert_eq!(
            shape(&Flex::performer_attention_backward(kqv, w, y)),
            [0, 5, 24]
        );

        let qkv = ones(&[0, 7, 24]);
        let y = Flex::qkv_attention(qkv.clone(), 2, 0.5);
        assert_eq!(shape(&y), [0, 7, 8]);
        assert_eq!(
            shape(&Flex::qkv_attention_backward(qkv, y, 2, 0.5)),
            [0, 7, 24]
        );

        let (x, gamma, beta) = (ones(&[0, 5, 6]), ones(&[6]), ones(&[6]));
        let y = Flex::fused_layer_norm(x.clone(), gamma.clone(), beta.clone(), 1e-5);
        assert_eq!(shape(&y), [0, 5, 6]);
        let (dx, dgamma, _) = Flex::fused_layer_norm_backward(x.clone(), gamma.clone(), y, 1e-5);
        assert_eq!((shape(&dx), shape(&dgamma)), (vec![0, 5, 6], vec![6]));

        let (weight, bias) = (ones(&[6, 4]), ones(&[4]));
        let y = Flex::norm_linear(
            x.clone(),
            gamma.clone(),
            beta.clone(),
            weight.clone(),
            bias,
            1e-5,
        );
        assert_eq!(shape(&y), [0, 5, 4]);
        let (dx, _, _, dweight, dbias) =
            Flex::norm_linear_backward(x.clone(), gamma, beta, weight, y, 1e-5);
        assert_eq!(
            (shape(&dx), shape(&dweight), shape(&dbias)),
            (vec![0, 5, 6], vec![6, 4], vec![4])
        );
        let y = Flex::fast_gelu(x.clone());
        assert_eq!(shape(&Flex::fast_gelu_backward(x, y)), [0, 5, 6]);
    }

    #[test]
    #[should_panic(expected = "norm_linear: inconsistent operand shapes")]
    fn operands_that_disagree_are_refused_before_any_read() {
        // Rows of 6 for a LayerNorm of 5.
        Flex::norm_linear(
            ones(&[2, 6]),
            ones(&[5]),
            ones(&[5]),
            ones(&[5, 4]),
            ones(&[4]),
            1e-5,
        );
    }

    #[test]
    #[should_panic(expected = "soft_split: inconsistent operand shapes")]
    fn a_split_of_zero_channels_is_refused() {
        Flex::soft_split(
            ones(&[1, 0, 8, 8]),
            Geometry {
                batch: 1,
                channels: 0,
                side: 8,
                channels_last: false,
                kernel: 3,
                stride: 2,
                padding: 1,
            },
        );
    }

    #[test]
    #[should_panic(expected = "performer_attention: inconsistent operand shapes")]
    fn performer_features_of_another_width_are_refused() {
        Flex::performer_attention(ones(&[1, 5, 24]), ones(&[4, 6]));
    }

    #[test]
    #[should_panic(expected = "qkv_attention: inconsistent operand shapes")]
    fn attention_heads_that_do_not_divide_the_width_are_refused() {
        Flex::qkv_attention(ones(&[1, 5, 24]), 3, 1.0);
    }
}
