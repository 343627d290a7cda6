//! A Linear layer over rows, `x·W + b`, as one operation: the output starts
//! as the bias and the product accumulates onto it, so that no pass adds the
//! bias and no buffer is zeroed first; the backward pass is two products and
//! a column sum per task of rows (see [`super::row_tasks`]).
//! [`norm_linear`](super::norm_linear) runs the same after its LayerNorm.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, AutodiffBackend, Backend, Dispatch, Flex};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::math::vectorised;
use super::matrix::{matmul_on, Mat, MatMut, Threads};
use super::row_tasks::{filled_rows, sum_in_order, task_slice, Split};
use super::{check_shapes, on_flex, read, write};

/// `x·W + b` for `x` `[rows, in]`, W `[in, out]` and b `[out]`: each task's
/// output rows start as the bias and its product accumulates onto them, so
/// that no pass adds the bias and no buffer is zeroed first.
pub(crate) fn forward(x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let d_out = bias.len();
    let d_in = weight.len() / d_out;
    let rows = x.len() / d_in;
    let split = Split::of(rows);
    let (y, _) = filled_rows(rows, bias, split.rows, |t, y| {
        let x = task_slice(x, d_in, t, split.rows);
        accumulate_rows(split.threads, x, weight, d_out, y)
    });
    y
}

/// `y += x·W` for rows `x` `[rows, in]`, W `[in, out]` and `y` `[rows, out]`,
/// on `threads`.
pub(super) fn accumulate_rows(
    threads: Threads,
    x: &[f32],
    weight: &[f32],
    d_out: usize,
    y: &mut [f32],
) {
    let d_in = weight.len() / d_out;
    let rows = y.len() / d_out;
    matmul_on(
        threads,
        MatMut::dense(y, rows, d_out),
        Mat::dense(x, rows, d_in),
        Mat::dense(weight, d_in, d_out),
        1.0,
        true,
    );
}

/// The gradients of x, W and b, from the output gradient `grad` `[rows, out]`.
pub(crate) fn backward(x: &[f32], weight: &[f32], d_out: usize, grad: &[f32]) -> [Vec<f32>; 3] {
    let d_in = weight.len() / d_out;
    let rows = x.len() / d_in;
    let split = Split::of(rows);
    let (grad_x, partials) = filled_rows(rows, &vec![0.0; d_in], split.rows, |t, dx| {
        let x = task_slice(x, d_in, t, split.rows);
        let dy = task_slice(grad, d_out, t, split.rows);
        backward_rows(split.threads, x, weight, d_out, dy, dx)
    });
    let [grad_weight, grad_bias] = sum_in_order(partials, [d_in * d_out, d_out]);
    [grad_x, grad_weight, grad_bias]
}

/// One task's share of the backward pass, its products on `threads`: the
/// input gradient of rows `x` `[rows, in]` into `dx`, from their output
/// gradient `dy` `[rows, out]`; returns their shares of the W and b gradients.
pub(super) fn backward_rows(
    threads: Threads,
    x: &[f32],
    weight: &[f32],
    d_out: usize,
    dy: &[f32],
    dx: &mut [f32],
) -> [Vec<f32>; 2] {
    let d_in = weight.len() / d_out;
    let rows = dy.len() / d_out;
    let grad_y = Mat::dense(dy, rows, d_out);
    matmul_on(
        threads,
        MatMut::dense(dx, rows, d_in),
        grad_y,
        Mat::dense(weight, d_in, d_out).t(),
        1.0,
        false,
    );
    let mut grad_weight = vec![0.0; d_in * d_out];
    matmul_on(
        threads,
        MatMut::dense(&mut grad_weight, d_in, d_out),
        Mat::dense(x, rows, d_in).t(),
        grad_y,
        1.0,
        false,
    );
    [grad_weight, column_sums(threads, dy, d_out)]
}

/// Rows per parallel piece of a column sum spread over the cores.
const SUM_ROWS: usize = 256;

/// The column sums of `dy` `[rows, out]`. With [`Threads::All`] pieces of
/// rows are summed in parallel and their sums added in order, so the result
/// depends on the shape alone.
fn column_sums(threads: Threads, dy: &[f32], d_out: usize) -> Vec<f32> {
    let piece_sums = |dy: &[f32]| {
        let mut sums = vec![0.0; d_out];
        vectorised(
            #[inline(always)]
            || {
                for dy in dy.chunks_exact(d_out) {
                    for (sum, dy) in sums.iter_mut().zip(dy) {
                        *sum += dy;
                    }
                }
            },
        );
        [sums]
    };
    match threads {
        Threads::Calling => {
            let [sums] = piece_sums(dy);
            sums
        }
        Threads::All => {
            let parts = dy.par_chunks(SUM_ROWS * d_out).map(piece_sums).collect();
            let [sums] = sum_in_order(parts, [d_out]);
            sums
        }
    }
}

/// Checks x `[rows, in]` and W `[in, out]` (both sizes positive) against
/// each other, and that `out_shape` (b's in the forward pass, the output
/// gradient's in the backward pass) ends in `out`.
fn check_operands(kernel: &str, x: &[usize], weight: &[usize], out_shape: &[usize]) {
    let consistent = matches!((x, weight), ([_, x_in], [d_in, d_out])
        if *d_in > 0 && *d_out > 0 && x_in == d_in && out_shape.last() == Some(d_out));
    check_shapes(kernel, consistent, &[x, weight, out_shape]);
}

#[backend_extension(Flex, Autodiff)]
pub trait LinearOps: Backend {
    fn linear_rows(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The gradients of x, W and b.
    fn linear_rows_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl LinearOps for Flex {
    fn linear_rows(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let ((x, x_shape), (weight, weight_shape)) = (read(&x), read(&weight));
        let (bias, bias_shape) = read(&bias);
        check_operands("linear_rows", &x_shape, &weight_shape, &bias_shape);
        check_shapes("linear_rows", bias_shape.len() == 1, &[&bias_shape]);
        write(forward(&x, &weight, &bias), [x_shape[0], weight_shape[1]])
    }

    fn linear_rows_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let ((x, x_shape), (weight, weight_shape)) = (read(&x), read(&weight));
        let (grad, grad_shape) = read(&grad);
        check_operands("linear_rows_backward", &x_shape, &weight_shape, &grad_shape);
        check_shapes(
            "linear_rows_backward",
            grad_shape.len() == 2 && grad_shape[0] == x_shape[0],
            &[&grad_shape, &x_shape],
        );
        let d_out = weight_shape[1];
        let [dx, dweight, dbias] = backward(&x, &weight, d_out, &grad);
        (
            write(dx, x_shape),
            write(dweight, weight_shape),
            write(dbias, [d_out]),
        )
    }
}

/// Keeps x and W.
#[derive(Debug)]
struct LinearBackward;

impl<B: Backend + LinearOps> Backward<B, 3> for LinearBackward {
    type State = [FloatTensor<B>; 2];

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let [x, weight] = ops.state;
        let (dx, dweight, dbias) = B::linear_rows_backward(x, weight, grad);
        register_parents!(B, grads, ops.parents, [dx, dweight, dbias]);
    }
}

impl<B: Backend + LinearOps, C: CheckpointStrategy> LinearOps for Autodiff<B, C> {
    fn linear_rows(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), weight.node(), bias.node()];
        let [x, weight, bias] = [x, weight, bias].map(Autodiff::<B, C>::inner);
        match LinearBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::linear_rows(x.clone(), weight.clone(), bias);
                prep.finish([x, weight], output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::linear_rows(x, weight, bias)),
        }
    }

    fn linear_rows_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [x, weight, grad] = [x, weight, grad].map(Autodiff::<B, C>::inner);
        let (dx, dweight, dbias) = B::linear_rows_backward(x, weight, grad);
        (
            Autodiff::<B, C>::from_inner(dx),
            Autodiff::<B, C>::from_inner(dweight),
            Autodiff::<B, C>::from_inner(dbias),
        )
    }
}

/// `x·W + b` for x `[rows, in]`, W `[in, out]` and b `[out]` where given: the
/// kernel on the CPU backend, burn's operation elsewhere and without a bias.
pub fn linear(x: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    match bias {
        Some(bias) if on_flex(x.device()) => {
            Tensor::from_dispatch(<Dispatch as LinearOps>::linear_rows(
                x.into_dispatch(),
                weight.into_dispatch(),
                bias.into_dispatch(),
            ))
        }
        bias => burn::tensor::module::linear(x, weight, bias),
    }
}

#[cfg(test)]
mod tests {
    use super::super::max_difference;
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn matches_burns_linear_forward_and_backward() {
        let device = Device::flex().autodiff();
        let random = |shape: [usize; 2], mean: f64| {
            Tensor::<2>::random(shape, Distribution::Normal(mean, 1.0), &device)
        };
        for (rows, d_in, d_out) in [(3, 5, 7), (900, 147, 192), (4100, 9, 6)] {
            let x = random([rows, d_in], 0.5).require_grad();
            let weight = random([d_in, d_out], 0.0).require_grad();
            let bias = random([1, d_out], 0.0).reshape([d_out]).require_grad();
            let weights = random([rows, d_out], 0.0);

            let ours = linear(x.clone(), weight.clone(), Some(bias.clone()));
            let plain = burn::tensor::module::linear(x.clone(), weight.clone(), Some(bias.clone()));
            let diff = max_difference(ours.clone(), plain.clone());
            assert!(diff < 1e-4, "forward differs by {diff}");

            let g_ours = (ours * weights.clone()).sum().backward();
            let g_plain = (plain * weights).sum().backward();
            // Parameter gradients sum over rows, and their error with them.
            let summed = 2e-5 * rows as f32;
            let flat = |t: Tensor<2>| {
                let n: usize = t.dims().iter().product();
                t.reshape([n])
            };
            let gradients = [
                (
                    "x",
                    flat(x.grad(&g_ours).unwrap()),
                    flat(x.grad(&g_plain).unwrap()),
                    1e-4,
                ),
                (
                    "W",
                    flat(weight.grad(&g_ours).unwrap()),
                    flat(weight.grad(&g_plain).unwrap()),
                    summed,
                ),
                (
                    "b",
                    bias.grad(&g_ours).unwrap(),
                    bias.grad(&g_plain).unwrap(),
                    summed,
                ),
            ];
            for (name, ours, plain, tolerance) in gradients {
                let diff = max_difference(ours, plain);
                assert!(diff < tolerance, "{name} gradient differs by {diff}");
            }
        }
    }
}
