//! Soft split (`nn.Unfold` + transpose) straight into token-major output.
//!
//! burn's `unfold4d` gives `[B, C·k·k, L]`, which the T2T module transposes,
//! and each later split first turns tokens back into an image: two copies of
//! every activation per stage. This kernel reads an image `[B, C, H, W]` or
//! tokens on a square grid `[B, H·W, C]` and writes `[B, L, C·k·k]` (feature
//! `c·k·k + i·k + j`) in one pass, with zero padding; its backward scatters
//! the gradient back to the input layout.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, AutodiffBackend, Backend, Dispatch, Flex};
use burn::tensor::module::unfold4d;
use burn::tensor::ops::{PadMode, UnfoldOptions};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::row_tasks::filled_rows;
use super::{check_shapes, on_flex, read, write};

/// Input geometry of a split.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    pub(crate) batch: usize,
    pub(crate) channels: usize,
    pub(crate) side: usize,
    /// Tokens `[B, H·W, C]` rather than an image `[B, C, H, W]`.
    pub(crate) channels_last: bool,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
}

impl Geometry {
    fn out_side(&self) -> usize {
        (self.side + 2 * self.padding - self.kernel) / self.stride + 1
    }

    fn features(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    fn input_len(&self) -> usize {
        self.channels * self.side * self.side
    }

    fn input_shape(&self) -> Vec<usize> {
        match self.channels_last {
            true => vec![self.batch, self.side * self.side, self.channels],
            false => vec![self.batch, self.channels, self.side, self.side],
        }
    }

    fn output_shape(&self) -> [usize; 3] {
        [
            self.batch,
            self.out_side() * self.out_side(),
            self.features(),
        ]
    }

    /// Checks that the split is well formed and `shape` is its input's (or,
    /// with `output`, its output's, for the backward pass).
    fn check(&self, shape: &[usize], output: bool) {
        let expected = match output {
            true => self.output_shape().to_vec(),
            false => self.input_shape(),
        };
        let well_formed = self.channels > 0
            && self.kernel > 0
            && self.stride > 0
            && self.side + 2 * self.padding >= self.kernel;
        check_shapes(
            "soft_split",
            well_formed && shape == expected,
            &[shape, &expected, &[self.kernel, self.stride, self.padding]],
        );
    }

    /// The input coordinate that tap `offset` of output position `origin`
    /// reads along one axis, or `None` in the zero padding.
    fn inside(&self, origin: usize, offset: usize) -> Option<usize> {
        (origin * self.stride + offset)
            .checked_sub(self.padding)
            .filter(|v| *v < self.side)
    }

    /// Calls `visit` with every run of input elements that output token
    /// `token` reads (taps in the zero padding are skipped). In an image a
    /// run is part of one input row, going to consecutive features; in
    /// tokens it is one pixel's channels, going to features `k·k` apart.
    #[inline]
    fn for_each_run(&self, token: usize, mut visit: impl FnMut(Run)) {
        let out = self.out_side();
        let (k, k2) = (self.kernel, self.kernel * self.kernel);
        let (oy, ox) = (token / out, token % out);
        if self.channels_last {
            for ki in 0..k {
                let Some(y) = self.inside(oy, ki) else {
                    continue;
                };
                for kj in 0..k {
                    let Some(x) = self.inside(ox, kj) else {
                        continue;
                    };
                    visit(Run {
                        input: (y * self.side + x) * self.channels,
                        feature: ki * k + kj,
                        feature_step: k2,
                        len: self.channels,
                    });
                }
            }
        } else {
            // The taps kj with x = ox·stride + kj − padding inside the row.
            let first = (0..k).find(|&kj| self.inside(ox, kj).is_some());
            let Some(first) = first else { return };
            let len = (first..k)
                .take_while(|&kj| self.inside(ox, kj).is_some())
                .count();
            let x = ox * self.stride + first - self.padding;
            for ki in 0..k {
                let Some(y) = self.inside(oy, ki) else {
                    continue;
                };
                for c in 0..self.channels {
                    visit(Run {
                        input: (c * self.side + y) * self.side + x,
                        feature: c * k2 + ki * k + first,
                        feature_step: 1,
                        len,
                    });
                }
            }
        }
    }

    /// Each task writes the tokens of one row of the output grid, starting
    /// from zeros (the padding) in its own rows: the output is never zeroed
    /// by one core first.
    fn forward(&self, input: &[f32]) -> Vec<f32> {
        let (out, features) = (self.out_side(), self.features());
        let tokens = out * out;
        let rows = self.batch * tokens;
        let (output, _) = filled_rows(rows, &vec![0.0; features], out, |task, band| {
            let first_row = task * out;
            for (row, dst) in (first_row..).zip(band.chunks_exact_mut(features)) {
                let (b, token) = (row / tokens, row % tokens);
                let sample = &input[b * self.input_len()..(b + 1) * self.input_len()];
                self.for_each_run(token, |run| {
                    let src = &sample[run.input..run.input + run.len];
                    if run.feature_step == 1 {
                        dst[run.feature..run.feature + run.len].copy_from_slice(src);
                    } else {
                        for (i, &v) in src.iter().enumerate() {
                            dst[run.feature + i * run.feature_step] = v;
                        }
                    }
                });
            }
        });
        output
    }

    fn backward(&self, grad: &[f32]) -> Vec<f32> {
        let (tokens, features) = (self.out_side() * self.out_side(), self.features());
        let mut input_grad = vec![0f32; self.batch * self.input_len()];
        // Samples are independent: one task each, summing overlapping windows.
        input_grad
            .par_chunks_mut(self.input_len())
            .enumerate()
            .for_each(|(b, dst)| {
                let sample = &grad[b * tokens * features..(b + 1) * tokens * features];
                for (token, src) in sample.chunks(features).enumerate() {
                    self.for_each_run(token, |run| {
                        let dst = &mut dst[run.input..run.input + run.len];
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d += src[run.feature + i * run.feature_step];
                        }
                    });
                }
            });
        input_grad
    }
}

/// Input elements `input..input + len` of a sample, which an output token
/// takes as its features `feature + i·feature_step`.
struct Run {
    input: usize,
    feature: usize,
    feature_step: usize,
    len: usize,
}

#[backend_extension(Flex, Autodiff)]
pub trait SoftSplitOps: Backend {
    fn soft_split(x: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self>;

    fn soft_split_backward(grad: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self>;
}

impl SoftSplitOps for Flex {
    fn soft_split(x: FlexTensor, geometry: Geometry) -> FlexTensor {
        let (values, shape) = read(&x);
        geometry.check(&shape, false);
        write(geometry.forward(&values), geometry.output_shape())
    }

    fn soft_split_backward(grad: FlexTensor, geometry: Geometry) -> FlexTensor {
        let (values, shape) = read(&grad);
        geometry.check(&shape, true);
        write(geometry.backward(&values), geometry.input_shape())
    }
}

#[derive(Debug)]
struct SoftSplitBackward;

impl<B: Backend + SoftSplitOps> Backward<B, 1> for SoftSplitBackward {
    type State = Geometry;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let geometry = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::soft_split_backward(grad, geometry)
        });
    }
}

impl<B: Backend + SoftSplitOps, C: CheckpointStrategy> SoftSplitOps for Autodiff<B, C> {
    fn soft_split(x: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
        let output = B::soft_split(Autodiff::<B, C>::inner(x.clone()), geometry);
        match SoftSplitBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(geometry, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn soft_split_backward(grad: FloatTensor<Self>, geometry: Geometry) -> FloatTensor<Self> {
        let inner = Autodiff::<B, C>::inner(grad);
        Autodiff::<B, C>::from_inner(B::soft_split_backward(inner, geometry))
    }
}

/// The soft split in burn's ops, `nn.Unfold` semantics: `unfold4d` and a
/// transpose. Padding first and unfolding without padding is much faster
/// than unfolding with padding.
fn plain_soft_split(image: Tensor<4>, kernel: usize, stride: usize, padding: usize) -> Tensor<3> {
    let p = padding;
    let padded = image.pad((p, p, p, p), PadMode::Constant(0.0));
    let columns = unfold4d(
        padded,
        [kernel, kernel],
        UnfoldOptions::new([stride, stride], [0, 0], [1, 1]),
    );
    columns.swap_dims(1, 2)
}

/// `[B, C, H, W]` image → `[B, L, C·k·k]` tokens; off the CPU backend, in
/// burn's ops.
pub fn soft_split_image(
    image: Tensor<4>,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Tensor<3> {
    if !on_flex(image.device()) {
        return plain_soft_split(image, kernel, stride, padding);
    }
    let [batch, channels, side, _] = image.dims();
    let geometry = Geometry {
        batch,
        channels,
        side,
        channels_last: false,
        kernel,
        stride,
        padding,
    };
    Tensor::from_dispatch(<Dispatch as SoftSplitOps>::soft_split(
        image.into_dispatch(),
        geometry,
    ))
}

/// `[B, H·W, C]` tokens on a square grid → `[B, L, C·k·k]` tokens: the
/// re-structurization into an image and the split in one step. Off the CPU
/// backend, the image is made and split with burn's ops.
pub fn soft_split_tokens(
    tokens: Tensor<3>,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Tensor<3> {
    let [batch, length, channels] = tokens.dims();
    let side = (length as f64).sqrt() as usize;
    if !on_flex(tokens.device()) {
        let image = tokens
            .swap_dims(1, 2)
            .reshape([batch, channels, side, side]);
        return soft_split_image(image, kernel, stride, padding);
    }
    let geometry = Geometry {
        batch,
        channels,
        side,
        channels_last: true,
        kernel,
        stride,
        padding,
    };
    Tensor::from_dispatch(<Dispatch as SoftSplitOps>::soft_split(
        tokens.into_dispatch(),
        geometry,
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
    fn matches_unfold_forward_and_backward_in_both_layouts() {
        let device = Device::flex().autodiff();
        for (channels, side, kernel, stride, padding) in [
            (3, 16, 7, 4, 2),
            (5, 8, 3, 2, 1),
            (4, 6, 3, 1, 1),
            (2, 9, 3, 2, 0),
        ] {
            let image = Tensor::<4>::random(
                [2, channels, side, side],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
            .require_grad();
            let expected = plain_soft_split(image.clone(), kernel, stride, padding);
            let weights =
                Tensor::<3>::random(expected.dims(), Distribution::Normal(0.0, 1.0), &device);
            let expected_grads = (expected.clone() * weights.clone()).sum().backward();

            let ours = soft_split_image(image.clone(), kernel, stride, padding);
            assert_eq!(max_diff(ours.clone(), expected.clone()), 0.0);
            let grads = (ours * weights.clone()).sum().backward();
            let diff = max_diff(
                image.grad(&grads).unwrap(),
                image.grad(&expected_grads).unwrap(),
            );
            assert!(diff < 1e-5, "image gradient differs by {diff}");

            // The same image as tokens [B, H·W, C].
            let tokens = image
                .clone()
                .reshape([2, channels, side * side])
                .swap_dims(1, 2)
                .detach()
                .require_grad();
            let ours = soft_split_tokens(tokens.clone(), kernel, stride, padding);
            assert_eq!(max_diff(ours.clone(), expected), 0.0);
            let grads = (ours * weights).sum().backward();
            let token_grad = tokens.grad(&grads).unwrap();
            let image_grad = image
                .grad(&expected_grads)
                .unwrap()
                .reshape([2, channels, side * side])
                .swap_dims(1, 2);
            assert!(max_diff(token_grad, image_grad) < 1e-5);
        }
    }
}
