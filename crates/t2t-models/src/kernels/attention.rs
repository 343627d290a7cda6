//! Multi-head softmax attention straight from the `qkv` projection
//! `[B, N, 3·C]` (order q, k, v; head h in columns h·d..(h+1)·d of each) to
//! merged heads `[B, N, C]`:
//! ```text
//! P = softmax(scale · q·kᵀ)        per sample and head
//! y = P·v
//! ```
//! Heads are read and written in place, so there are no split/merge copies,
//! and each head's `N × N` probabilities live only inside its task: the
//! backward pass recomputes them from `qkv`, its only saved state.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, AutodiffBackend, Backend, Dispatch, Flex};
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::math::{dot, exp, max, sum_by, vectorised};
use super::matrix::{matmul, Mat, MatMut};
use super::{check_shapes, on_flex, read, write};

const QUERY: usize = 0;
const KEY: usize = 1;
const VALUE: usize = 2;

#[derive(Clone, Copy, Debug)]
struct Geometry {
    tokens: usize,
    heads: usize,
    head_dim: usize,
    scale: f32,
}

impl Geometry {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// `part` (q, k or v) of `head` in one sample's `qkv` rows.
    fn part<'a>(&self, sample: &'a [f32], part: usize, head: usize) -> Mat<'a> {
        let offset = part * self.width() + head * self.head_dim;
        Mat::rows(sample, offset, self.tokens, self.head_dim, 3 * self.width())
    }

    /// softmax(scale · q·kᵀ) of one head into `probs` `[N, N]`.
    fn probabilities(&self, sample: &[f32], head: usize, probs: &mut [f32]) {
        let n = self.tokens;
        let (q, k) = (self.part(sample, QUERY, head), self.part(sample, KEY, head));
        matmul(MatMut::dense(probs, n, n), q, k.t(), self.scale, false);
        vectorised(
            #[inline(always)]
            || {
                for row in probs.chunks_exact_mut(n) {
                    let max = max(row);
                    row.iter_mut().for_each(|v| *v = exp(*v - max));
                    let inv_sum = 1.0 / sum_by(row, |v| v);
                    row.iter_mut().for_each(|v| *v *= inv_sum);
                }
            },
        );
    }

    fn forward(&self, qkv: &[f32]) -> Vec<f32> {
        let (n, d, width) = (self.tokens, self.head_dim, self.width());
        let mut y = vec![0.0; qkv.len() / 3];
        y.par_chunks_mut(n * width)
            .zip(qkv.par_chunks(n * 3 * width))
            .for_each(|(y, sample)| {
                let heads: Vec<Vec<f32>> = (0..self.heads)
                    .into_par_iter()
                    .map(|head| {
                        let mut probs = vec![0.0; n * n];
                        self.probabilities(sample, head, &mut probs);
                        let mut out = vec![0.0; n * d];
                        let v = self.part(sample, VALUE, head);
                        matmul(
                            MatMut::dense(&mut out, n, d),
                            Mat::dense(&probs, n, n),
                            v,
                            1.0,
                            false,
                        );
                        out
                    })
                    .collect();
                for (head, out) in heads.iter().enumerate() {
                    scatter_columns(y, width, head * d, out, d);
                }
            });
        y
    }

    fn backward(&self, qkv: &[f32], grad: &[f32]) -> Vec<f32> {
        let (n, d, width) = (self.tokens, self.head_dim, self.width());
        let mut grad_qkv = vec![0.0; qkv.len()];
        grad_qkv
            .par_chunks_mut(n * 3 * width)
            .zip(qkv.par_chunks(n * 3 * width))
            .zip(grad.par_chunks(n * width))
            .for_each(|((grad_qkv, sample), grad)| {
                let heads: Vec<[Vec<f32>; 3]> = (0..self.heads)
                    .into_par_iter()
                    .map(|head| {
                        let mut probs = vec![0.0; n * n];
                        self.probabilities(sample, head, &mut probs);
                        let p = Mat::dense(&probs, n, n);
                        let grad_y = Mat::rows(grad, head * d, n, d, width);
                        let (q, k, v) = (
                            self.part(sample, QUERY, head),
                            self.part(sample, KEY, head),
                            self.part(sample, VALUE, head),
                        );
                        // dv = Pᵀ·dy, dP = dy·vᵀ
                        let mut grad_v = vec![0.0; n * d];
                        matmul(MatMut::dense(&mut grad_v, n, d), p.t(), grad_y, 1.0, false);
                        let mut grad_scores = vec![0.0; n * n];
                        matmul(
                            MatMut::dense(&mut grad_scores, n, n),
                            grad_y,
                            v.t(),
                            1.0,
                            false,
                        );
                        // Through the softmax: dS = P ⊙ (dP − Σⱼ Pⱼ·dPⱼ), in place.
                        vectorised(
                            #[inline(always)]
                            || {
                                let rows =
                                    grad_scores.chunks_exact_mut(n).zip(probs.chunks_exact(n));
                                for (ds, p) in rows {
                                    let weighted = dot(p, ds);
                                    ds.iter_mut()
                                        .zip(p)
                                        .for_each(|(ds, p)| *ds = p * (*ds - weighted));
                                }
                            },
                        );
                        // dq = scale·dS·k, dk = scale·dSᵀ·q
                        let ds = Mat::dense(&grad_scores, n, n);
                        let mut grad_q = vec![0.0; n * d];
                        matmul(MatMut::dense(&mut grad_q, n, d), ds, k, self.scale, false);
                        let mut grad_k = vec![0.0; n * d];
                        matmul(
                            MatMut::dense(&mut grad_k, n, d),
                            ds.t(),
                            q,
                            self.scale,
                            false,
                        );
                        [grad_q, grad_k, grad_v]
                    })
                    .collect();
                for (head, parts) in heads.iter().enumerate() {
                    for (part, values) in parts.iter().enumerate() {
                        scatter_columns(grad_qkv, 3 * width, part * width + head * d, values, d);
                    }
                }
            });
        grad_qkv
    }
}

/// Copies dense rows of `width` values into columns `column..column + width`
/// of rows `row_stride` apart.
fn scatter_columns(dst: &mut [f32], row_stride: usize, column: usize, src: &[f32], width: usize) {
    for (dst, src) in dst
        .chunks_exact_mut(row_stride)
        .zip(src.chunks_exact(width))
    {
        dst[column..column + width].copy_from_slice(src);
    }
}

#[backend_extension(Flex, Autodiff)]
pub trait AttentionOps: Backend {
    fn qkv_attention(qkv: FloatTensor<Self>, heads: usize, scale: f64) -> FloatTensor<Self>;
    fn qkv_attention_backward(
        qkv: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        heads: usize,
        scale: f64,
    ) -> FloatTensor<Self>;
}

/// The geometry of `qkv` `[B, N, 3·C]` split into `heads`, checked.
fn geometry(shape: &[usize], heads: usize, scale: f64) -> Geometry {
    let consistent = heads > 0
        && matches!(shape, [_, tokens, row] if *tokens > 0 && *row > 0 && row % (3 * heads) == 0);
    check_shapes("qkv_attention", consistent, &[shape, &[heads]]);
    Geometry {
        tokens: shape[1],
        heads,
        head_dim: shape[2] / 3 / heads,
        scale: scale as f32,
    }
}

impl AttentionOps for Flex {
    fn qkv_attention(qkv: FlexTensor, heads: usize, scale: f64) -> FlexTensor {
        let (qkv, shape) = read(&qkv);
        let g = geometry(&shape, heads, scale);
        let y = g.forward(&qkv);
        write(y, [shape[0], g.tokens, g.width()])
    }

    fn qkv_attention_backward(
        qkv: FlexTensor,
        grad: FlexTensor,
        heads: usize,
        scale: f64,
    ) -> FlexTensor {
        let (qkv, shape) = read(&qkv);
        let (grad, grad_shape) = read(&grad);
        let g = geometry(&shape, heads, scale);
        check_shapes(
            "qkv_attention_backward",
            grad_shape == [shape[0], g.tokens, g.width()],
            &[&grad_shape, &shape],
        );
        write(g.backward(&qkv, &grad), shape)
    }
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: Backend + AttentionOps> Backward<B, 1> for AttentionBackward {
    type State = (FloatTensor<B>, usize, f64);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (qkv, heads, scale) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::qkv_attention_backward(qkv, grad, heads, scale)
        });
    }
}

impl<B: Backend + AttentionOps, C: CheckpointStrategy> AttentionOps for Autodiff<B, C> {
    fn qkv_attention(qkv: FloatTensor<Self>, heads: usize, scale: f64) -> FloatTensor<Self> {
        let inner = Autodiff::<B, C>::inner(qkv.clone());
        match AttentionBackward
            .prepare::<C>([qkv.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::qkv_attention(inner.clone(), heads, scale);
                prep.finish((inner, heads, scale), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::qkv_attention(inner, heads, scale)),
        }
    }

    fn qkv_attention_backward(
        qkv: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        heads: usize,
        scale: f64,
    ) -> FloatTensor<Self> {
        Autodiff::<B, C>::from_inner(B::qkv_attention_backward(
            Autodiff::<B, C>::inner(qkv),
            Autodiff::<B, C>::inner(grad),
            heads,
            scale,
        ))
    }
}

/// Multi-head softmax attention of a `qkv` projection `[B, N, 3·C]` (q, k, v
/// side by side, each `heads` heads wide), heads merged `[B, N, C]`:
/// `softmax(q·scale @ kᵀ) @ v` per head, with dropout at `dropout` on the
/// probabilities while training. The fused kernel on the CPU backend; the
/// backend's own fused attention off the autodiff graph; plain operations
/// otherwise, and whenever dropout needs the probabilities.
pub fn qkv_attention(qkv: Tensor<3>, heads: usize, scale: f64, dropout: Option<f64>) -> Tensor<3> {
    if on_flex(qkv.device()) && dropout.is_none() {
        return Tensor::from_dispatch(<Dispatch as AttentionOps>::qkv_attention(
            qkv.into_dispatch(),
            heads,
            scale,
        ));
    }
    if !qkv.is_tracked() {
        // No dropout applies outside training either.
        let [q, k, v] = split_qkv(qkv, heads);
        let options = AttentionModuleOptions {
            scale: Some(scale),
            ..Default::default()
        };
        return merge_heads(attention(q, k, v, None, None, options));
    }
    plain_attention(qkv, heads, scale, dropout)
}

/// The attention in plain operations, materialising the probabilities.
fn plain_attention(qkv: Tensor<3>, heads: usize, scale: f64, dropout: Option<f64>) -> Tensor<3> {
    let [q, k, v] = split_qkv(qkv, heads);
    let probabilities = attention_probabilities(q, k, scale);
    let probabilities = match dropout {
        Some(prob) => super::dropout(probabilities, prob),
        None => probabilities,
    };
    merge_heads(probabilities.matmul(v))
}

/// `softmax(q·scale @ kᵀ)` of heads `[B, H, N, d]`: the weights `[B, H, N, N]`
/// (row = query) that the fused kernels never materialise.
pub(crate) fn attention_probabilities(q: Tensor<4>, k: Tensor<4>, scale: f64) -> Tensor<4> {
    softmax(q.mul_scalar(scale).matmul(k.swap_dims(2, 3)), 3)
}

/// q, k and v `[B, H, N, d]` of a `qkv` projection `[B, N, 3·H·d]`.
pub(crate) fn split_qkv(qkv: Tensor<3>, heads: usize) -> [Tensor<4>; 3] {
    let mut parts = qkv.chunk(3, 2).into_iter().map(|x| split_heads(x, heads));
    [(); 3].map(|()| parts.next().unwrap())
}

/// `[B, N, H·d]` → `[B, H, N, d]`.
pub(crate) fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [batch, tokens, width] = x.dims();
    x.reshape([batch, tokens, heads, width / heads])
        .swap_dims(1, 2)
}

/// `[B, H, N, d]` → `[B, N, H·d]`.
pub(crate) fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [batch, heads, tokens, head_dim] = x.dims();
    x.swap_dims(1, 2).reshape([batch, tokens, heads * head_dim])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn matches_the_plain_operations_forward_and_backward() {
        let device = Device::flex().autodiff();
        for (batch, tokens, heads, head_dim) in [(2, 7, 1, 5), (3, 17, 4, 8), (1, 50, 3, 16)] {
            let width = heads * head_dim;
            let qkv = Tensor::<3>::random(
                [batch, tokens, 3 * width],
                Distribution::Normal(0.0, 2.0),
                &device,
            )
            .require_grad();
            let weights = Tensor::<3>::random(
                [batch, tokens, width],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let scale = (head_dim as f64).powf(-0.5);

            let ours = qkv_attention(qkv.clone(), heads, scale, None);
            let plain = plain_attention(qkv.clone(), heads, scale, None);
            let diff = max_diff(ours.clone(), plain.clone());
            assert!(diff < 1e-5, "forward differs by {diff}");

            let grads_ours = (ours * weights.clone()).sum().backward();
            let grads_plain = (plain * weights).sum().backward();
            let diff = max_diff(
                qkv.grad(&grads_ours).unwrap(),
                qkv.grad(&grads_plain).unwrap(),
            );
            assert!(diff < 1e-4, "gradient differs by {diff}");
        }
    }
}
