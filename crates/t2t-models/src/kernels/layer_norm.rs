//! LayerNorm over the last dimension with its own backward pass. Under
//! autodiff, burn composes LayerNorm from eight tensor operations and keeps
//! three full-size intermediates for the backward pass; this kernel keeps only
//! its input and recomputes each row's mean and deviation from it.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, AutodiffBackend, Backend, Dispatch, Flex};
use burn::tensor::{module, Tensor};

use super::math::{dot, sum_by, vectorised};
use super::row_tasks::{filled_rows, sum_in_order, task_slice};
use super::{check_shapes, on_flex, read, write};

/// Mean and 1/√(variance + ε) of one row (two passes, as PyTorch does).
#[inline(always)]
fn row_stats(x: &[f32], epsilon: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = sum_by(x, |v| v) / n;
    let variance = sum_by(x, |v| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (variance + epsilon).sqrt())
}

/// LayerNorm of the rows of `x` (each as wide as γ), on the calling thread.
pub(super) fn normalise_rows(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32, y: &mut [f32]) {
    let width = gamma.len();
    vectorised(
        #[inline(always)]
        || {
            for (y, x) in y.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
                let (mean, inv_std) = row_stats(x, epsilon);
                for (((y, x), g), b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
                    *y = (x - mean) * inv_std * g + b;
                }
            }
        },
    )
}

/// The input gradient of the rows of `x` into `dx`, on the calling thread;
/// returns their shares of the γ and β gradients.
pub(super) fn backward_rows(
    x: &[f32],
    gamma: &[f32],
    dy: &[f32],
    epsilon: f32,
    dx: &mut [f32],
) -> [Vec<f32>; 2] {
    let width = gamma.len();
    let (mut dgamma, mut dbeta) = (vec![0.0; width], vec![0.0; width]);
    let (mut xhat, mut g) = (vec![0.0; width], vec![0.0; width]);
    vectorised(
        #[inline(always)]
        || {
            let rows = dx.chunks_exact_mut(width).zip(x.chunks_exact(width));
            for ((dx, x), dy) in rows.zip(dy.chunks_exact(width)) {
                let (mean, inv_std) = row_stats(x, epsilon);
                // Every slice re-cut to `width`, so the loops need no bounds checks.
                let (xhat, g, gamma) = (&mut xhat[..width], &mut g[..width], &gamma[..width]);
                let (dgamma, dbeta) = (&mut dgamma[..width], &mut dbeta[..width]);
                for i in 0..width {
                    xhat[i] = (x[i] - mean) * inv_std;
                    g[i] = dy[i] * gamma[i];
                    dgamma[i] += dy[i] * xhat[i];
                    dbeta[i] += dy[i];
                }
                // dx = (g − mean(g) − x̂·mean(g·x̂)) / σ, with g = dy·γ.
                let g_mean = sum_by(g, |v| v) / width as f32;
                let gx_mean = dot(g, xhat) / width as f32;
                for i in 0..width {
                    dx[i] = (g[i] - g_mean - xhat[i] * gx_mean) * inv_std;
                }
            }
        },
    );
    [dgamma, dbeta]
}

/// Elements per parallel task (whole rows).
const CHUNK: usize = 1 << 14;

fn rows_per_task(width: usize) -> usize {
    (CHUNK / width).max(1)
}

/// LayerNorm of the rows of `x` (each as wide as γ).
pub(super) fn forward(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f32) -> Vec<f32> {
    let width = gamma.len();
    let rows = x.len() / width;
    let task = rows_per_task(width);
    let zeros = vec![0.0; width];
    let (y, _) = filled_rows(rows, &zeros, task, |t, y| {
        normalise_rows(task_slice(x, width, t, task), gamma, beta, epsilon, y)
    });
    y
}

/// Gradients of the input, γ and β.
pub(super) fn backward(x: &[f32], gamma: &[f32], grad: &[f32], epsilon: f32) -> [Vec<f32>; 3] {
    let width = gamma.len();
    let rows = x.len() / width;
    let task = rows_per_task(width);
    let zeros = vec![0.0; width];
    let (grad_x, partials) = filled_rows(rows, &zeros, task, |t, dx| {
        let (x, dy) = (
            task_slice(x, width, t, task),
            task_slice(grad, width, t, task),
        );
        backward_rows(x, gamma, dy, epsilon, dx)
    });
    let [grad_gamma, grad_beta] = sum_in_order(partials, [width; 2]);
    [grad_x, grad_gamma, grad_beta]
}

/// Checks that rows of `x` are as wide as γ (and β), a positive width.
fn check_operands(kernel: &str, x: &[usize], gamma: &[usize], beta: &[usize]) {
    let consistent =
        matches!(gamma, [width] if *width > 0 && x.last() == Some(width)) && beta == gamma;
    check_shapes(kernel, consistent, &[x, gamma, beta]);
}

#[backend_extension(Flex, Autodiff)]
pub trait LayerNormOps: Backend {
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;

    /// The gradients of `x`, γ and β.
    fn fused_layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl LayerNormOps for Flex {
    fn fused_layer_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        let (x, shape) = read(&x);
        let (gamma, gamma_shape) = read(&gamma);
        let (beta, beta_shape) = read(&beta);
        check_operands("layer_norm", &shape, &gamma_shape, &beta_shape);
        let y = forward(&x, &gamma, &beta, epsilon as f32);
        write(y, shape)
    }

    fn fused_layer_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        grad: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (x, shape) = read(&x);
        let (gamma, gamma_shape) = read(&gamma);
        let (grad, grad_shape) = read(&grad);
        check_operands("layer_norm_backward", &shape, &gamma_shape, &gamma_shape);
        check_shapes(
            "layer_norm_backward",
            grad_shape == shape,
            &[&grad_shape, &shape],
        );
        let [dx, dgamma, dbeta] = backward(&x, &gamma, &grad, epsilon as f32);
        (
            write(dx, &shape),
            write(dgamma, &gamma_shape),
            write(dbeta, &gamma_shape),
        )
    }
}

/// Keeps the input and γ.
#[derive(Debug)]
struct LayerNormBackward;

impl<B: Backend + LayerNormOps> Backward<B, 3> for LayerNormBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, gamma, epsilon) = ops.state;
        let (dx, dgamma, dbeta) = B::fused_layer_norm_backward(x, gamma, grad, epsilon);
        register_parents!(B, grads, ops.parents, [dx, dgamma, dbeta]);
    }
}

impl<B: Backend + LayerNormOps, C: CheckpointStrategy> LayerNormOps for Autodiff<B, C> {
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), gamma.node(), beta.node()];
        let x = Autodiff::<B, C>::inner(x);
        let gamma = Autodiff::<B, C>::inner(gamma);
        let beta = Autodiff::<B, C>::inner(beta);
        match LayerNormBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::fused_layer_norm(x.clone(), gamma.clone(), beta, epsilon);
                prep.finish((x, gamma, epsilon), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_layer_norm(x, gamma, beta, epsilon)),
        }
    }

    fn fused_layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (dx, dgamma, dbeta) = B::fused_layer_norm_backward(
            Autodiff::<B, C>::inner(x),
            Autodiff::<B, C>::inner(gamma),
            Autodiff::<B, C>::inner(grad),
            epsilon,
        );
        (
            Autodiff::<B, C>::from_inner(dx),
            Autodiff::<B, C>::from_inner(dgamma),
            Autodiff::<B, C>::from_inner(dbeta),
        )
    }
}

/// `(x − mean) / √(var + ε) · γ + β` over the last dimension: the fused kernel
/// on the CPU backend, burn's own operation elsewhere.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    if !on_flex(x.device()) {
        return module::layer_norm(x, gamma, Some(beta), epsilon);
    }
    Tensor::from_dispatch(<Dispatch as LayerNormOps>::fused_layer_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn matches_burns_layer_norm_forward_and_backward() {
        let device = Device::flex().autodiff();
        for (rows, width) in [(3, 5), (37, 147), (5000, 64)] {
            let x = Tensor::<3>::random([1, rows, width], Distribution::Normal(1.0, 3.0), &device)
                .require_grad();
            let gamma = Tensor::<1>::random([width], Distribution::Normal(1.0, 0.5), &device)
                .require_grad();
            let beta = Tensor::<1>::random([width], Distribution::Normal(0.0, 0.5), &device)
                .require_grad();
            let weights =
                Tensor::<3>::random([1, rows, width], Distribution::Normal(0.0, 1.0), &device);

            let ours = layer_norm(x.clone(), gamma.clone(), beta.clone(), 1e-5);
            let plain = module::layer_norm(x.clone(), gamma.clone(), Some(beta.clone()), 1e-5);
            assert!(max_diff(ours.clone(), plain.clone()) < 2e-5);

            let g_ours = (ours * weights.clone()).sum().backward();
            let g_plain = (plain * weights).sum().backward();
            let dx = max_diff(x.grad(&g_ours).unwrap(), x.grad(&g_plain).unwrap());
            assert!(dx < 1e-4, "input gradient differs by {dx}");
            // γ and β gradients sum over all rows.
            let tolerance = 1e-5 * rows as f32;
            let dg = max_diff(gamma.grad(&g_ours).unwrap(), gamma.grad(&g_plain).unwrap());
            let db = max_diff(beta.grad(&g_ours).unwrap(), beta.grad(&g_plain).unwrap());
            assert!(dg < tolerance && db < tolerance, "γ by {dg}, β by {db}");
        }
    }
}
