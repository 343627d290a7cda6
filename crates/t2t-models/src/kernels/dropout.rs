//! Dropout whose mask is a hash of (seed, element index). burn's dropout
//! draws a float mask from a cryptographic generator and keeps it, full
//! size, for the backward pass; here the mask costs a few integer operations
//! per element and the backward pass regenerates it from the seeds alone.
//! A tensor is masked either under one seed, or under one seed per sample
//! (see [`crate::layers::with_sample_keys`]), element indices then counting
//! within the sample.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, AutodiffBackend, Backend, Dispatch, Flex};
use burn::tensor::{Distribution, Tensor, TensorData};
use rayon::prelude::*;

use crate::layers::next_sample_seeds;

use super::math::vectorised;
use super::{on_flex, read, write};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// A 32-bit integer hash with good avalanche (Wellons' "lowbias32").
#[inline(always)]
fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// The mask hash of element `index` under a seed split into two halves.
#[inline(always)]
fn hash(index: u32, low: u32, high: u32) -> u32 {
    mix(mix(index ^ low) ^ high)
}

fn split(seed: u64) -> (u32, u32) {
    (seed as u32, (seed >> 32) as u32)
}

/// A uniform draw in [0, 1) from a seed: the hash of element 0 under it.
pub(crate) fn unit_interval(seed: u64) -> f64 {
    let (low, high) = split(seed);
    hash(0, low, high) as f64 / 4_294_967_296.0
}

/// `x ⊙ mask / (1 − prob)`. `x` splits into `seeds.len()` equal rows, and
/// element i of row r is kept when its hash under `seeds[r]` reaches
/// `prob · 2³²`.
fn apply(x: &[f32], prob: f64, seeds: &[u64]) -> Vec<f32> {
    assert!(
        (0.0..1.0).contains(&prob),
        "dropout: probability {prob} is not in [0, 1)"
    );
    assert!(
        !seeds.is_empty() && x.len().is_multiple_of(seeds.len()),
        "dropout: {} seeds for {} elements",
        seeds.len(),
        x.len()
    );
    if x.is_empty() {
        return Vec::new();
    }
    let threshold = (prob * 4_294_967_296.0).min(u32::MAX as f64) as u32;
    let scale = (1.0 / (1.0 - prob)) as f32;
    let row = x.len() / seeds.len();
    let mut out = vec![0.0; x.len()];
    out.par_chunks_mut(row)
        .zip(x.par_chunks(row))
        .zip(seeds)
        .for_each(|((out, x), &seed)| {
            let (low, high) = split(seed);
            out.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .enumerate()
                .for_each(|(chunk, (out, x))| {
                    let first = (chunk * CHUNK) as u32;
                    vectorised(
                        #[inline(always)]
                        || {
                            for (i, (out, x)) in out.iter_mut().zip(x).enumerate() {
                                let hash = hash(first.wrapping_add(i as u32), low, high);
                                // The mask as a factor, as PyTorch applies it: a
                                // select here was left scalar for AVX2 (4× slower).
                                let keep = (hash >= threshold) as u32 as f32;
                                *out = x * scale * keep;
                            }
                        },
                    )
                })
        });
    out
}

#[backend_extension(Flex, Autodiff)]
pub trait DropoutOps: Backend {
    /// Also the backward pass: the gradient goes through the same mask.
    fn hashed_dropout(x: FloatTensor<Self>, prob: f64, seeds: Vec<u64>) -> FloatTensor<Self>;
}

impl DropoutOps for Flex {
    fn hashed_dropout(x: FlexTensor, prob: f64, seeds: Vec<u64>) -> FlexTensor {
        let (values, shape) = read(&x);
        write(apply(&values, prob, &seeds), shape)
    }
}

#[derive(Debug)]
struct DropoutBackward;

impl<B: Backend + DropoutOps> Backward<B, 1> for DropoutBackward {
    type State = (f64, Vec<u64>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (prob, seeds) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::hashed_dropout(grad, prob, seeds)
        });
    }
}

impl<B: Backend + DropoutOps, C: CheckpointStrategy> DropoutOps for Autodiff<B, C> {
    fn hashed_dropout(x: FloatTensor<Self>, prob: f64, seeds: Vec<u64>) -> FloatTensor<Self> {
        let output = B::hashed_dropout(Autodiff::<B, C>::inner(x.clone()), prob, seeds.clone());
        match DropoutBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((prob, seeds), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }
}

/// Zeroes each element of `x` with probability `prob` and scales the rest
/// by 1/(1 − prob). With keyed samples each sample has its own mask;
/// otherwise the mask's seed comes from the device's generator, so a seeded
/// device gives the same masks (on other backends than the CPU one, burn's
/// Bernoulli-mask dropout).
pub fn dropout<const D: usize>(x: Tensor<D>, prob: f64) -> Tensor<D> {
    let sample_seeds = next_sample_seeds(x.dims()[0]);
    if !on_flex(x.device()) {
        let mask = match sample_seeds {
            Some(seeds) => {
                let ones = vec![1.0; x.shape().num_elements()];
                let mask = TensorData::new(apply(&ones, prob, &seeds), x.shape());
                Tensor::from_data(mask, &x.device())
            }
            None => x.random_like(Distribution::Bernoulli(1.0 - prob)) / (1.0 - prob),
        };
        return x * mask;
    }
    let seeds = sample_seeds.unwrap_or_else(|| vec![seed_from(&x)]);
    Tensor::from_dispatch(<Dispatch as DropoutOps>::hashed_dropout(
        x.into_dispatch(),
        prob,
        seeds,
    ))
}

/// 64 random bits from the generator of `x`'s device.
fn seed_from<const D: usize>(x: &Tensor<D>) -> u64 {
    let parts = Tensor::<1>::random([4], Distribution::Uniform(0.0, 65536.0), &x.device())
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32 data");
    parts
        .iter()
        .fold(0, |seed, &part| (seed << 16) | part as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn drops_at_the_rate_and_the_gradient_follows_the_mask() {
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::random([300, 1000], Distribution::Uniform(1.0, 2.0), &device)
            .require_grad();
        let prob = 0.1;
        let y = dropout(x.clone(), prob);
        let grads = y.clone().sum().backward();
        let y = y.into_data().try_into_vec::<f32>().unwrap();
        let x_values = x.clone().into_data().try_into_vec::<f32>().unwrap();
        let grad = x
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();

        let dropped = y.iter().filter(|v| **v == 0.0).count() as f64 / y.len() as f64;
        // 300k Bernoulli(0.1) draws: standard deviation 0.00055.
        assert!((dropped - prob).abs() < 0.003, "dropped {dropped}");
        let scale = 1.0 / (1.0 - prob as f32);
        for ((y, x), g) in y.iter().zip(&x_values).zip(&grad) {
            if *y == 0.0 {
                assert_eq!(*g, 0.0);
            } else {
                assert!((y - x * scale).abs() < 1e-6 && (g - scale).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn masks_differ_between_calls_and_repeat_with_the_device_seed() {
        let device = Device::flex();
        let x = Tensor::<1>::ones([4096], &device);
        let mask = |x: Tensor<1>| {
            let v = dropout(x, 0.5).into_data().try_into_vec::<f32>().unwrap();
            v.iter().map(|v| *v != 0.0).collect::<Vec<_>>()
        };
        device.seed(7);
        let (a, b) = (mask(x.clone()), mask(x.clone()));
        device.seed(7);
        let c = mask(x.clone());
        assert_ne!(a, b);
        assert_eq!(a, c);
        // Neighbouring elements are independent: about half of the pairs differ.
        let changes = a.windows(2).filter(|w| w[0] != w[1]).count() as f64 / 4095.0;
        assert!((changes - 0.5).abs() < 0.05, "{changes}");
    }
}
