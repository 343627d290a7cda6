//! LayerNorm followed by a Linear layer, `LN(x)·W + b`, as one operation.
//! Every pre-norm sublayer starts so, and as two operations the normalised
//! activations would be kept for the Linear layer's weight gradient, a
//! second full copy of the input; here only the input is kept, and the
//! backward pass normalises it again. Both passes work a task of rows at a
//! time, so the normalised rows live only in a task's own buffer.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, AutodiffBackend, Backend, Dispatch, Flex};
use burn::tensor::Tensor;

use super::matrix::Threads;
use super::row_tasks::{filled_rows, sum_in_order, task_slice, Split};
use super::{check_shapes, layer_norm, linear, on_flex, read, write};

/// `LN(x)·W + b`, a task of rows at a time: each task normalises its rows
/// into a buffer of its own and accumulates their product onto its output
/// rows, which start as the bias.
fn forward(
    x: &[f32],
    [gamma, beta]: [&[f32]; 2],
    [weight, bias]: [&[f32]; 2],
    epsilon: f32,
) -> Vec<f32> {
    let (d_in, d_out) = (gamma.len(), bias.len());
    let rows = x.len() / d_in;
    let split = Split::of(rows);
    if split.threads == Threads::All {
        // One task, whose products use every core: so does its LayerNorm.
        let normalised = layer_norm::forward(x, gamma, beta, epsilon);
        return linear::forward(&normalised, weight, bias);
    }
    let (y, _) = filled_rows(rows, bias, split.rows, |t, y| {
        let x = task_slice(x, d_in, t, split.rows);
        let mut normalised = vec![0.0; x.len()];
        layer_norm::normalise_rows(x, gamma, beta, epsilon, &mut normalised);
        linear::accumulate_rows(split.threads, &normalised, weight, d_out, y);
    });
    y
}

/// Gradients of x, γ, β, W and b, a task of rows at a time: each task
/// normalises its rows again and runs both backward passes on them.
fn backward(
    x: &[f32],
    [gamma, beta]: [&[f32]; 2],
    weight: &[f32],
    grad: &[f32],
    epsilon: f32,
) -> [Vec<f32>; 5] {
    let d_in = gamma.len();
    let d_out = weight.len() / d_in;
    let rows = x.len() / d_in;
    let split = Split::of(rows);
    if split.threads == Threads::All {
        // One task, whose products use every core: so do its LayerNorm's
        // passes.
        let normalised = layer_norm::forward(x, gamma, beta, epsilon);
        let [grad_normalised, grad_weight, grad_bias] =
            linear::backward(&normalised, weight, d_out, grad);
        let [grad_x, grad_gamma, grad_beta] =
            layer_norm::backward(x, gamma, &grad_normalised, epsilon);
        return [grad_x, grad_gamma, grad_beta, grad_weight, grad_bias];
    }
    let (grad_x, partials) = filled_rows(rows, &vec![0.0; d_in], split.rows, |t, dx| {
        let x = task_slice(x, d_in, t, split.rows);
        let dy = task_slice(grad, d_out, t, split.rows);
        let mut normalised = vec![0.0; x.len()];
        layer_norm::normalise_rows(x, gamma, beta, epsilon, &mut normalised);
        let mut grad_normalised = vec![0.0; x.len()];
        let [dweight, dbias] = linear::backward_rows(
            split.threads,
            &normalised,
            weight,
            d_out,
            dy,
            &mut grad_normalised,
        );
        let [dgamma, dbeta] = layer_norm::backward_rows(x, gamma, &grad_normalised, epsilon, dx);
        [dgamma, dbeta, dweight, dbias]
    });
    let [grad_gamma, grad_beta, grad_weight, grad_bias] =
        sum_in_order(partials, [d_in, d_in, d_in * d_out, d_out]);
    [grad_x, grad_gamma, grad_beta, grad_weight, grad_bias]
}

/// Checks x `[.., in]`, γ and β `[in]` and W `[in, out]` (with `in` and
/// `out` positive) against each other, and that `out_shape` (b's in the
/// forward pass, the output gradient's in the backward pass) ends in `out`.
fn check_operands(
    kernel: &str,
    x: &[usize],
    [gamma, beta]: [&[usize]; 2],
    weight: &[usize],
    out_shape: &[usize],
) {
    let consistent = matches!(weight, [d_in, d_out] if *d_in > 0 && *d_out > 0
        && x.last() == Some(d_in) && gamma == [*d_in] && beta == [*d_in]
        && out_shape.last() == Some(d_out));
    check_shapes(kernel, consistent, &[x, gamma, beta, weight, out_shape]);
}

#[backend_extension(Flex, Autodiff)]
pub trait NormLinearOps: Backend {
    fn norm_linear(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;

    /// The gradients of x, γ, β, W and b.
    #[allow(clippy::type_complexity)]
    fn norm_linear_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    );
}

impl NormLinearOps for Flex {
    fn norm_linear(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        let (x_values, mut shape) = read(&x);
        let ((gamma, gamma_shape), (beta, beta_shape)) = (read(&gamma), read(&beta));
        let ((weight, weight_shape), (bias, bias_shape)) = (read(&weight), read(&bias));
        check_operands(
            "norm_linear",
            &shape,
            [&gamma_shape, &beta_shape],
            &weight_shape,
            &bias_shape,
        );
        check_shapes("norm_linear", bias_shape.len() == 1, &[&bias_shape]);
        let y = forward(&x_values, [&gamma, &beta], [&weight, &bias], epsilon as f32);
        *shape.last_mut().unwrap() = bias.len();
        write(y, shape)
    }

    fn norm_linear_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor, FlexTensor, FlexTensor) {
        let (x_values, x_shape) = read(&x);
        let ((gamma, gamma_shape), (beta, beta_shape)) = (read(&gamma), read(&beta));
        let ((weight, weight_shape), (grad, grad_shape)) = (read(&weight), read(&grad));
        check_operands(
            "norm_linear_backward",
            &x_shape,
            [&gamma_shape, &beta_shape],
            &weight_shape,
            &grad_shape,
        );
        let rows = &x_shape[..x_shape.len() - 1];
        check_shapes(
            "norm_linear_backward",
            &grad_shape[..grad_shape.len() - 1] == rows,
            &[&grad_shape, &x_shape],
        );
        let [dx, dgamma, dbeta, dweight, dbias] =
            backward(&x_values, [&gamma, &beta], &weight, &grad, epsilon as f32);
        (
            write(dx, &x_shape),
            write(dgamma, &gamma_shape),
            write(dbeta, &gamma_shape),
            write(dweight, &weight_shape),
            write(dbias, &weight_shape[1..]),
        )
    }
}

/// Keeps x, γ, β and W.
#[derive(Debug)]
struct NormLinearBackward;

impl<B: Backend + NormLinearOps> Backward<B, 5> for NormLinearBackward {
    type State = ([FloatTensor<B>; 4], f64);

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let ([x, gamma, beta, weight], epsilon) = ops.state;
        let (dx, dgamma, dbeta, dweight, dbias) =
            B::norm_linear_backward(x, gamma, beta, weight, grad, epsilon);
        register_parents!(B, grads, ops.parents, [dx, dgamma, dbeta, dweight, dbias]);
    }
}

impl<B: Backend + NormLinearOps, C: CheckpointStrategy> NormLinearOps for Autodiff<B, C> {
    fn norm_linear(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let nodes = [
            x.node(),
            gamma.node(),
            beta.node(),
            weight.node(),
            bias.node(),
        ];
        let [x, gamma, beta, weight, bias] =
            [x, gamma, beta, weight, bias].map(Autodiff::<B, C>::inner);
        match NormLinearBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::norm_linear(
                    x.clone(),
                    gamma.clone(),
                    beta.clone(),
                    weight.clone(),
                    bias,
                    epsilon,
                );
                prep.finish(([x, gamma, beta, weight], epsilon), output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::norm_linear(x, gamma, beta, weight, bias, epsilon))
            }
        }
    }

    fn norm_linear_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let [x, gamma, beta, weight, grad] =
            [x, gamma, beta, weight, grad].map(Autodiff::<B, C>::inner);
        let (dx, dgamma, dbeta, dweight, dbias) =
            B::norm_linear_backward(x, gamma, beta, weight, grad, epsilon);
        (
            Autodiff::<B, C>::from_inner(dx),
            Autodiff::<B, C>::from_inner(dgamma),
            Autodiff::<B, C>::from_inner(dbeta),
            Autodiff::<B, C>::from_inner(dweight),
            Autodiff::<B, C>::from_inner(dbias),
        )
    }
}

/// `LN(x)·W + b` for LayerNorm parameters (γ, β, ε) and Linear parameters
/// (W `[in, out]`, b): the fused kernel on the CPU backend, the two burn
/// operations elsewhere.
pub fn norm_linear<const D: usize>(
    x: Tensor<D>,
    [gamma, beta]: [Tensor<1>; 2],
    epsilon: f64,
    weight: Tensor<2>,
    bias: Tensor<1>,
) -> Tensor<D> {
    if !on_flex(x.device()) {
        let normalised = burn::tensor::module::layer_norm(x, gamma, Some(beta), epsilon);
        return burn::tensor::module::linear(normalised, weight, Some(bias));
    }
    Tensor::from_dispatch(<Dispatch as NormLinearOps>::norm_linear(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        epsilon,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::module::{layer_norm, linear};
    use burn::tensor::{Device, Distribution};

    #[test]
    fn matches_layer_norm_then_linear_forward_and_backward() {
        let device = Device::flex().autodiff();
        let random = |shape: Vec<usize>, mean: f64| {
            Tensor::<1>::random(
                [shape.iter().product::<usize>()],
                Distribution::Normal(mean, 1.0),
                &device,
            )
        };
        for (batch, tokens, d_in, d_out) in [(2, 3, 5, 7), (3, 300, 147, 192), (2, 2050, 9, 6)] {
            let x = random(vec![batch, tokens, d_in], 0.5)
                .reshape([batch, tokens, d_in])
                .require_grad();
            let gamma = random(vec![d_in], 1.0).require_grad();
            let beta = random(vec![d_in], 0.0).require_grad();
            let weight = random(vec![d_in, d_out], 0.0)
                .reshape([d_in, d_out])
                .require_grad();
            let bias = random(vec![d_out], 0.0).require_grad();
            let weights = random(vec![batch, tokens, d_out], 0.0).reshape([batch, tokens, d_out]);

            let ours = norm_linear(
                x.clone(),
                [gamma.clone(), beta.clone()],
                1e-5,
                weight.clone(),
                bias.clone(),
            );
            let plain = linear(
                layer_norm(x.clone(), gamma.clone(), Some(beta.clone()), 1e-5),
                weight.clone(),
                Some(bias.clone()),
            );
            let diff = (ours.clone() - plain.clone())
                .abs()
                .max()
                .into_scalar::<f32>();
            assert!(diff < 1e-4, "forward differs by {diff}");

            let g_ours = (ours * weights.clone()).sum().backward();
            let g_plain = (plain * weights).sum().backward();
            // Parameter gradients sum over rows, and their error with them.
            let summed = 2e-5 * (batch * tokens) as f32;
            let check = |name: &str, a: Tensor<1>, b: Tensor<1>, tolerance: f32| {
                let diff = (a - b).abs().max().into_scalar::<f32>();
                assert!(diff < tolerance, "{name} gradient differs by {diff}");
            };
            let flat = |t: Tensor<3>| t.reshape([batch * tokens * d_in]);
            check(
                "x",
                flat(x.grad(&g_ours).unwrap()),
                flat(x.grad(&g_plain).unwrap()),
                1e-4,
            );
            check(
                "γ",
                gamma.grad(&g_ours).unwrap(),
                gamma.grad(&g_plain).unwrap(),
                summed,
            );
            check(
                "β",
                beta.grad(&g_ours).unwrap(),
                beta.grad(&g_plain).unwrap(),
                summed,
            );
            let w = |t: Tensor<2>| t.reshape([d_in * d_out]);
            check(
                "W",
                w(weight.grad(&g_ours).unwrap()),
                w(weight.grad(&g_plain).unwrap()),
                summed,
            );
            check(
                "b",
                bias.grad(&g_ours).unwrap(),
                bias.grad(&g_plain).unwrap(),
                summed,
            );
        }
    }
}
