//! The Performer attention of Token_performer, fused: random-feature map,
//! normaliser and kptv in one pass over the tokens, straight from the `kqv`
//! projection `[B, T, 3·E]` (order k, q, v):
//! ```text
//! φ(z) = exp(z·wᵀ − ‖z‖²/2) / √m          w: [m, E] random features
//! y    = φ(q)·(vᵀφ(k))ᵀ / (φ(q)·Σₜφ(k) + ε)
//! ```
//! As plain tensor operations this is a dozen kernels with their
//! intermediates saved for the backward pass; here each sample is two sweeps
//! over token tiles (key sums, then queries) and the backward pass recomputes
//! the features instead of keeping them. `w` is fixed (never trained), so
//! only `kqv` receives a gradient.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, AutodiffBackend, Backend, Dispatch, Flex};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::math::{dot, exp, sum_by, vectorised};
use super::matrix::{matmul, Mat, MatMut};
use super::{check_shapes, on_flex, read, write};

/// Added to the normaliser before dividing (the official value).
pub const EPSILON: f32 = 1e-8;
/// Tokens per parallel task.
const TILE: usize = 128;
const KEY: usize = 0;
const QUERY: usize = 1;
const VALUE: usize = 2;

#[derive(Clone, Copy, Debug)]
struct Geometry {
    tokens: usize,
    emb: usize,
    features: usize,
}

/// Per-sample sums over the keys: Σₜφ(kₜ) `[m]` and vᵀφ(k) `[E, m]`; in the
/// backward pass, their gradients. Tiles' partial sums are added in tile
/// order, so results do not depend on how the tiles were scheduled.
struct KeySums {
    sum: Vec<f32>,
    kptv: Vec<f32>,
}

impl KeySums {
    fn zeros(g: Geometry) -> Self {
        Self {
            sum: vec![0.0; g.features],
            kptv: vec![0.0; g.emb * g.features],
        }
    }

    fn add(mut self, other: Self) -> Self {
        for (a, b) in self.sum.iter_mut().zip(&other.sum) {
            *a += b;
        }
        for (a, b) in self.kptv.iter_mut().zip(&other.kptv) {
            *a += b;
        }
        self
    }
}

impl Geometry {
    /// Width of a `kqv` row.
    fn row(&self) -> usize {
        3 * self.emb
    }

    /// `part` (k, q or v) of tokens `first..first + rows` of one sample.
    fn part<'a>(&self, sample: &'a [f32], first: usize, rows: usize, part: usize) -> Mat<'a> {
        let row = self.row();
        Mat::rows(sample, first * row + part * self.emb, rows, self.emb, row)
    }

    /// φ of `part` (k or q) of a tile of tokens into `out` `[rows, m]`.
    fn random_features(
        &self,
        sample: &[f32],
        w: &[f32],
        first: usize,
        rows: usize,
        part: usize,
        out: &mut [f32],
    ) {
        let (emb, m) = (self.emb, self.features);
        let w = Mat::dense(w, m, emb);
        let z = self.part(sample, first, rows, part);
        matmul(MatMut::dense(out, rows, m), z, w.t(), 1.0, false);
        let inv_sqrt_m = 1.0 / (m as f32).sqrt();
        let row = self.row();
        vectorised(
            #[inline(always)]
            || {
                for (r, phi) in out.chunks_exact_mut(m).enumerate() {
                    let start = (first + r) * row + part * emb;
                    let half_sq_norm = 0.5 * sum_by(&sample[start..start + emb], |z| z * z);
                    for v in phi {
                        *v = exp(*v - half_sq_norm) * inv_sqrt_m;
                    }
                }
            },
        );
    }

    /// `dz = g·w − z ⊙ Σⱼ gⱼ` for `g = dφ ⊙ φ`, the gradient of `part` of a
    /// tile through φ, written into that part of `grad_rows`.
    fn feature_input_grad(
        &self,
        sample: &[f32],
        w: &[f32],
        first: usize,
        part: usize,
        g: &[f32],
        grad_rows: &mut [f32],
    ) {
        let (emb, m, row) = (self.emb, self.features, self.row());
        let rows = g.len() / m;
        matmul(
            MatMut::rows(grad_rows, part * emb, rows, emb, row),
            Mat::dense(g, rows, m),
            Mat::dense(w, m, emb),
            1.0,
            false,
        );
        vectorised(
            #[inline(always)]
            || {
                for (r, (g, dz)) in g
                    .chunks_exact(m)
                    .zip(grad_rows.chunks_exact_mut(row))
                    .enumerate()
                {
                    let g_sum = sum_by(g, |v| v);
                    let z = &sample[(first + r) * row + part * emb..][..emb];
                    for (dz, z) in dz[part * emb..][..emb].iter_mut().zip(z) {
                        *dz -= g_sum * z;
                    }
                }
            },
        );
    }

    fn tiles(&self) -> impl IndexedParallelIterator<Item = (usize, usize)> + '_ {
        (0..self.tokens.div_ceil(TILE))
            .into_par_iter()
            .map(|t| (t * TILE, TILE.min(self.tokens - t * TILE)))
    }

    /// Σₜφ(kₜ) and vᵀφ(k) of one sample.
    fn key_sums(&self, sample: &[f32], w: &[f32]) -> KeySums {
        let m = self.features;
        self.tiles()
            .map(|(first, rows)| {
                let mut kp = vec![0.0; rows * m];
                self.random_features(sample, w, first, rows, KEY, &mut kp);
                let mut sums = KeySums::zeros(*self);
                for phi in kp.chunks_exact(m) {
                    for (s, p) in sums.sum.iter_mut().zip(phi) {
                        *s += p;
                    }
                }
                let v = self.part(sample, first, rows, VALUE);
                let kp = Mat::dense(&kp, rows, m);
                matmul(
                    MatMut::dense(&mut sums.kptv, self.emb, m),
                    v.t(),
                    kp,
                    1.0,
                    false,
                );
                sums
            })
            .collect::<Vec<_>>()
            .into_iter()
            .fold(KeySums::zeros(*self), KeySums::add)
    }

    fn forward(&self, kqv: &[f32], w: &[f32]) -> Vec<f32> {
        let (emb, m) = (self.emb, self.features);
        let batch = kqv.len() / (self.tokens * self.row());
        let mut y = vec![0.0; batch * self.tokens * emb];
        y.par_chunks_mut(self.tokens * emb)
            .zip(kqv.par_chunks(self.tokens * self.row()))
            .for_each(|(y, sample)| {
                let sums = self.key_sums(sample, w);
                y.par_chunks_mut(TILE * emb)
                    .enumerate()
                    .for_each(|(tile, y)| {
                        let (first, rows) = (tile * TILE, y.len() / emb);
                        let mut qp = vec![0.0; rows * m];
                        self.random_features(sample, w, first, rows, QUERY, &mut qp);
                        let kptv = Mat::dense(&sums.kptv, emb, m);
                        matmul(
                            MatMut::dense(y, rows, emb),
                            Mat::dense(&qp, rows, m),
                            kptv.t(),
                            1.0,
                            false,
                        );
                        for (y, qp) in y.chunks_exact_mut(emb).zip(qp.chunks_exact(m)) {
                            let scale = 1.0 / (dot(qp, &sums.sum) + EPSILON);
                            y.iter_mut().for_each(|y| *y *= scale);
                        }
                    });
            });
        y
    }

    fn backward(&self, kqv: &[f32], w: &[f32], grad: &[f32]) -> Vec<f32> {
        let (emb, row) = (self.emb, self.row());
        let mut grad_kqv = vec![0.0; kqv.len()];
        grad_kqv
            .par_chunks_mut(self.tokens * row)
            .zip(kqv.par_chunks(self.tokens * row))
            .zip(grad.par_chunks(self.tokens * emb))
            .for_each(|((grad_kqv, sample), grad_y)| {
                let sums = self.key_sums(sample, w);
                let grad_sums = grad_kqv
                    .par_chunks_mut(TILE * row)
                    .enumerate()
                    .map(|(tile, grad_rows)| {
                        self.query_grad(sample, w, &sums, grad_y, tile * TILE, grad_rows)
                    })
                    .collect::<Vec<_>>()
                    .into_iter()
                    .fold(KeySums::zeros(*self), KeySums::add);
                grad_kqv
                    .par_chunks_mut(TILE * row)
                    .enumerate()
                    .for_each(|(tile, grad_rows)| {
                        self.key_value_grad(sample, w, &grad_sums, tile * TILE, grad_rows)
                    });
            });
        grad_kqv
    }

    /// Writes the gradient of the queries of the tile from `first` into
    /// `grad_rows`, and returns the tile's share of the key sums' gradient.
    fn query_grad(
        &self,
        sample: &[f32],
        w: &[f32],
        sums: &KeySums,
        grad_y: &[f32],
        first: usize,
        grad_rows: &mut [f32],
    ) -> KeySums {
        let (emb, m) = (self.emb, self.features);
        let rows = grad_rows.len() / self.row();
        let mut qp = vec![0.0; rows * m];
        self.random_features(sample, w, first, rows, QUERY, &mut qp);
        let (qp_mat, kptv) = (Mat::dense(&qp, rows, m), Mat::dense(&sums.kptv, emb, m));
        // num = φ(q)·kptvᵀ, then in place: dnum = dy / (D + ε).
        let mut num = vec![0.0; rows * emb];
        matmul(
            MatMut::dense(&mut num, rows, emb),
            qp_mat,
            kptv.t(),
            1.0,
            false,
        );
        let grad_y = &grad_y[first * emb..][..rows * emb];
        let mut grad_norm = vec![0.0; rows];
        for r in 0..rows {
            let scale = 1.0 / (dot(&qp[r * m..][..m], &sums.sum) + EPSILON);
            let (num, dy) = (&mut num[r * emb..][..emb], &grad_y[r * emb..][..emb]);
            grad_norm[r] = -scale * scale * dot(dy, num);
            num.iter_mut().zip(dy).for_each(|(n, dy)| *n = dy * scale);
        }
        let grad_num = Mat::dense(&num, rows, emb);
        // dφ(q) = dnum·kptv + dD ⊗ Σφ(k); dkptv = dnumᵀ·φ(q); dΣφ(k) = φ(q)ᵀ·dD
        let mut grad_qp = vec![0.0; rows * m];
        matmul(
            MatMut::dense(&mut grad_qp, rows, m),
            grad_num,
            kptv,
            1.0,
            false,
        );
        let mut partial = KeySums::zeros(*self);
        matmul(
            MatMut::dense(&mut partial.kptv, emb, m),
            grad_num.t(),
            qp_mat,
            1.0,
            false,
        );
        for r in 0..rows {
            let (dqp, qp) = (&mut grad_qp[r * m..][..m], &qp[r * m..][..m]);
            for j in 0..m {
                partial.sum[j] += grad_norm[r] * qp[j];
                dqp[j] = (dqp[j] + grad_norm[r] * sums.sum[j]) * qp[j];
            }
        }
        self.feature_input_grad(sample, w, first, QUERY, &grad_qp, grad_rows);
        partial
    }

    /// Writes the gradients of the keys and values of the tile from `first`
    /// into `grad_rows`, given the gradient of the key sums.
    fn key_value_grad(
        &self,
        sample: &[f32],
        w: &[f32],
        grad_sums: &KeySums,
        first: usize,
        grad_rows: &mut [f32],
    ) {
        let (emb, m, row) = (self.emb, self.features, self.row());
        let rows = grad_rows.len() / row;
        let mut kp = vec![0.0; rows * m];
        self.random_features(sample, w, first, rows, KEY, &mut kp);
        let grad_kptv = Mat::dense(&grad_sums.kptv, emb, m);
        // dv = φ(k)·dkptvᵀ
        let dv = MatMut::rows(grad_rows, VALUE * emb, rows, emb, row);
        matmul(dv, Mat::dense(&kp, rows, m), grad_kptv.t(), 1.0, false);
        // dφ(k) = v·dkptv + dΣφ(k)
        let mut grad_kp = vec![0.0; rows * m];
        let v = self.part(sample, first, rows, VALUE);
        matmul(
            MatMut::dense(&mut grad_kp, rows, m),
            v,
            grad_kptv,
            1.0,
            false,
        );
        for (dkp, kp) in grad_kp.chunks_exact_mut(m).zip(kp.chunks_exact(m)) {
            for j in 0..m {
                dkp[j] = (dkp[j] + grad_sums.sum[j]) * kp[j];
            }
        }
        self.feature_input_grad(sample, w, first, KEY, &grad_kp, grad_rows);
    }
}

#[backend_extension(Flex, Autodiff)]
pub trait PerformerOps: Backend {
    fn performer_attention(kqv: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self>;
    fn performer_attention_backward(
        kqv: FloatTensor<Self>,
        w: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The geometry of `kqv` `[B, T, 3·E]` with features `w` `[m, E]`, checked.
fn geometry(kqv_shape: &[usize], w_shape: &[usize]) -> Geometry {
    let consistent = matches!(kqv_shape, [_, tokens, row] if *tokens > 0 && *row > 0 && row % 3 == 0)
        && matches!(w_shape, [m, emb] if *m > 0 && 3 * emb == kqv_shape[2]);
    check_shapes("performer_attention", consistent, &[kqv_shape, w_shape]);
    Geometry {
        tokens: kqv_shape[1],
        emb: kqv_shape[2] / 3,
        features: w_shape[0],
    }
}

impl PerformerOps for Flex {
    fn performer_attention(kqv: FlexTensor, w: FlexTensor) -> FlexTensor {
        let (kqv, shape) = read(&kqv);
        let (w, w_shape) = read(&w);
        let g = geometry(&shape, &w_shape);
        let y = g.forward(&kqv, &w);
        write(y, [shape[0], g.tokens, g.emb])
    }

    fn performer_attention_backward(
        kqv: FlexTensor,
        w: FlexTensor,
        grad: FlexTensor,
    ) -> FlexTensor {
        let (kqv, shape) = read(&kqv);
        let (w, w_shape) = read(&w);
        let (grad, grad_shape) = read(&grad);
        let g = geometry(&shape, &w_shape);
        check_shapes(
            "performer_attention_backward",
            grad_shape == [shape[0], g.tokens, g.emb],
            &[&grad_shape, &shape],
        );
        write(g.backward(&kqv, &w, &grad), shape)
    }
}

/// Keeps `kqv` and `w`; everything else is recomputed.
#[derive(Debug)]
struct PerformerBackward;

impl<B: Backend + PerformerOps> Backward<B, 1> for PerformerBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (kqv, w) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::performer_attention_backward(kqv, w, grad)
        });
    }
}

impl<B: Backend + PerformerOps, C: CheckpointStrategy> PerformerOps for Autodiff<B, C> {
    fn performer_attention(kqv: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        let inner = Autodiff::<B, C>::inner(kqv.clone());
        let w = Autodiff::<B, C>::inner(w);
        match PerformerBackward
            .prepare::<C>([kqv.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::performer_attention(inner.clone(), w.clone());
                prep.finish((inner, w), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::performer_attention(inner, w)),
        }
    }

    fn performer_attention_backward(
        kqv: FloatTensor<Self>,
        w: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Autodiff::<B, C>::from_inner(B::performer_attention_backward(
            Autodiff::<B, C>::inner(kqv),
            Autodiff::<B, C>::inner(w),
            Autodiff::<B, C>::inner(grad),
        ))
    }
}

/// Performer attention `[B, T, E]` of a `kqv` projection `[B, T, 3·E]` with
/// fixed random features `w` `[m, E]`: the fused kernel on the CPU backend,
/// plain tensor operations elsewhere.
pub fn performer_attention(kqv: Tensor<3>, w: Tensor<2>) -> Tensor<3> {
    if !on_flex(kqv.device()) {
        return plain_performer_attention(kqv, w);
    }
    Tensor::from_dispatch(<Dispatch as PerformerOps>::performer_attention(
        kqv.into_dispatch(),
        w.detach().into_dispatch(),
    ))
}

/// The same computation as the official einsums, one burn operation each.
fn plain_performer_attention(kqv: Tensor<3>, w: Tensor<2>) -> Tensor<3> {
    let mut parts = kqv.chunk(3, 2).into_iter();
    let (k, q, v) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let m = w.dims()[0];
    let prm_exp = |z: Tensor<3>| {
        let half_sq_norm = z.clone().powi_scalar(2).sum_dim(2).div_scalar(2.0);
        let wtz = z.matmul(w.clone().transpose().unsqueeze());
        (wtz - half_sq_norm).exp().div_scalar((m as f64).sqrt())
    };
    let (kp, qp) = (prm_exp(k), prm_exp(q));
    let normaliser = qp.clone().matmul(kp.clone().sum_dim(1).swap_dims(1, 2));
    let kptv = v.swap_dims(1, 2).matmul(kp);
    qp.matmul(kptv.swap_dims(1, 2)) / normaliser.add_scalar(EPSILON as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    fn max_abs<const D: usize>(a: Tensor<D>) -> f32 {
        a.abs().max().into_scalar::<f32>()
    }

    #[test]
    fn matches_the_plain_operations_forward_and_backward() {
        let device = Device::flex().autodiff();
        // Token counts below, at and across tile boundaries; batch 1 and 3.
        for (batch, tokens, emb, m) in [(3, 5, 8, 4), (1, TILE, 16, 8), (2, 2 * TILE + 17, 64, 32)]
        {
            let kqv = Tensor::<3>::random(
                [batch, tokens, 3 * emb],
                Distribution::Normal(0.0, 0.5),
                &device,
            )
            .require_grad();
            let w = Tensor::<2>::random([m, emb], Distribution::Normal(0.0, 1.0), &device);
            let weights = Tensor::<3>::random(
                [batch, tokens, emb],
                Distribution::Normal(0.0, 1.0),
                &device,
            );

            let ours = performer_attention(kqv.clone(), w.clone());
            let plain = plain_performer_attention(kqv.clone(), w.clone());
            let scale = max_abs(plain.clone());
            let diff = max_diff(ours.clone(), plain.clone());
            assert!(
                diff <= 1e-5 * scale,
                "forward differs by {diff} (scale {scale})"
            );

            let grads_ours = (ours * weights.clone()).sum().backward();
            let grads_plain = (plain * weights).sum().backward();
            let (a, b) = (
                kqv.grad(&grads_ours).unwrap(),
                kqv.grad(&grads_plain).unwrap(),
            );
            let scale = max_abs(b.clone());
            let diff = max_diff(a, b);
            assert!(
                diff <= 1e-4 * scale,
                "gradient differs by {diff} (scale {scale})"
            );
        }
    }
}
