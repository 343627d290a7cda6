//! Exact (erf) GELU. burn's CPU backend evaluates it one element at a time
//! through a scalar `erff`; this kernel uses a polynomial erf (absolute error
//! below 1.5e-7), vectorised, over chunks shared by all cores, forward and
//! backward.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, AutodiffBackend, Backend, Dispatch, Flex};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::math::{erf, exp, vectorised};
use super::{check_shapes, flex_values, on_flex, read, write};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

#[inline(always)]
fn gelu_value(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// d/dx GELU(x) = Φ(x) + x·φ(x).
#[inline(always)]
fn gelu_slope(x: f32) -> f32 {
    const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    cdf + x * FRAC_1_SQRT_2PI * exp(-0.5 * x * x)
}

#[backend_extension(Flex, Autodiff)]
pub trait GeluOps: Backend {
    fn fast_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    fn fast_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl GeluOps for Flex {
    fn fast_gelu(x: FlexTensor) -> FlexTensor {
        let (mut values, shape) = flex_values(x);
        values.par_chunks_mut(CHUNK).for_each(|chunk| {
            vectorised(
                #[inline(always)]
                || {
                    for v in chunk.iter_mut() {
                        *v = gelu_value(*v);
                    }
                },
            )
        });
        write(values, shape)
    }

    fn fast_gelu_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let (x, x_shape) = read(&x);
        let (mut grad, shape) = flex_values(grad);
        check_shapes("gelu_backward", x_shape == shape, &[&x_shape, &shape]);
        grad.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(g, x)| {
                // A `for` loop: `for_each` on a zip is a `fold` that the
                // compiler may leave out of line, compiled without the
                // instruction set chosen here (it did, and ran 4 lanes wide).
                vectorised(
                    #[inline(always)]
                    || {
                        for (g, &x) in g.iter_mut().zip(x) {
                            *g *= gelu_slope(x);
                        }
                    },
                )
            });
        write(grad, shape)
    }
}

/// The backward step: the input is kept as the state, the output gradient
/// is multiplied by the slope at the input.
#[derive(Debug)]
struct GeluBackward;

impl<B: Backend + GeluOps> Backward<B, 1> for GeluBackward {
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _: &mut burn::backend::autodiff::checkpoint::base::Checkpointer,
    ) {
        let input = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::fast_gelu_backward(input, grad)
        });
    }
}

impl<B: Backend + GeluOps, C: CheckpointStrategy> GeluOps for Autodiff<B, C> {
    fn fast_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let inner = Autodiff::<B, C>::inner(x.clone());
        match GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(inner.clone(), B::fast_gelu(inner)),
            OpsKind::UnTracked(prep) => prep.finish(B::fast_gelu(inner)),
        }
    }

    fn fast_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let slope_input = Autodiff::<B, C>::inner(x);
        Autodiff::<B, C>::from_inner(B::fast_gelu_backward(
            slope_input,
            Autodiff::<B, C>::inner(grad),
        ))
    }
}

/// Exact GELU, `0.5·x·(1 + erf(x/√2))`: the fast kernel on the CPU backend,
/// plain operations elsewhere.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !on_flex(x.device()) {
        return plain_gelu(x);
    }
    Tensor::from_dispatch(<Dispatch as GeluOps>::fast_gelu(x.into_dispatch()))
}

/// Exact GELU in plain operations, whose gradient autodiff derives from
/// erf's. burn's own `gelu` is not used here: the GPU backends differentiate
/// it as the tanh approximation (burn-backend's default `gelu_backward`),
/// which puts gradients off by up to 1e-3 of their size.
fn plain_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    (x.clone() / std::f32::consts::SQRT_2).erf().add_scalar(1.0) * x * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation;
    use burn::tensor::Device;
    use burn::tensor::Distribution;

    #[test]
    fn forward_and_backward_match_burns_gelu() {
        let device = Device::flex().autodiff();
        let x = Tensor::<3>::random([4, 37, 65], Distribution::Normal(0.0, 3.0), &device)
            .require_grad();
        let weights = Tensor::<3>::random([4, 37, 65], Distribution::Normal(0.0, 1.0), &device);

        let ours = gelu(x.clone());
        let plain = activation::gelu(x.clone());
        let diff = (ours.clone() - plain.clone())
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(diff < 5e-7, "forward differs by {diff}");

        let grad_ours = (ours * weights.clone()).sum().backward();
        let grad_plain = (plain * weights).sum().backward();
        let (a, b) = (x.grad(&grad_ours).unwrap(), x.grad(&grad_plain).unwrap());
        let diff = (a - b).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "gradient differs by {diff}");
    }

    /// The fallback of other backends, against the kernel and against the
    /// closed-form derivative Φ(x) + x·φ(x).
    #[test]
    fn the_plain_fallback_has_the_exact_gradient() {
        let device = Device::flex().autodiff();
        let x =
            Tensor::<2>::random([16, 129], Distribution::Normal(0.0, 3.0), &device).require_grad();
        let fallback = plain_gelu(x.clone());
        let diff = (fallback.clone() - gelu(x.clone()))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(diff < 5e-7, "forward differs by {diff}");

        let grads = fallback.sum().backward();
        let gradient: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
        let inputs: Vec<f32> = x.into_data().try_to_vec().unwrap();
        let normal = |v: f64| (-v * v / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        for (&v, &g) in inputs.iter().zip(&gradient) {
            let v = v as f64;
            // Φ(v) by the midpoint rule on [-10, v]: no erf in std.
            let steps = 20_000;
            let width = (v + 10.0) / steps as f64;
            let cdf: f64 = (0..steps)
                .map(|i| normal(-10.0 + (i as f64 + 0.5) * width) * width)
                .sum();
            let exact = cdf + v * normal(v);
            assert!((g as f64 - exact).abs() < 2e-6, "at {v}: {g} vs {exact}");
        }
    }
}
