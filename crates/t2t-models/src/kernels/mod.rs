//! Hot operations that the CPU backend runs slowly, written as burn backend
//! extensions with hand-written backward passes. Each falls back to the plain
//! burn operation on other backends, and is tested against it.

mod attention;
mod dropout;
mod gelu;
mod layer_norm;
mod math;
mod matrix;
mod norm_linear;
mod performer;
mod soft_split;

pub use attention::qkv_attention;
pub use dropout::dropout;
pub use gelu::gelu;
pub use layer_norm::layer_norm;
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

/// Whether the extensions run for tensors on `device` (the CPU backend,
/// with or without autodiff); elsewhere the plain burn operations do.
pub(crate) fn on_flex(device: Device) -> bool {
    device.inner() == Device::flex()
}
