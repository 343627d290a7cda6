//! Looking inside a model: the attention weights of every block, which the
//! fused kernels of the forward pass never materialise, and attention
//! rollout (Abnar & Zuidema, "Quantifying Attention Flow in Transformers",
//! 2020) over them.

use burn::tensor::{Tensor, TensorData};

use crate::layers::{Attention, Block, FastAttention, Mlp};
use crate::weights::HostTensor;
use crate::{Model, ModelError, Taps};

/// The attention weights of one block.
// Only one value at a time exists, moved to a visitor: boxing the larger
// variant would add an allocation and save nothing.
#[allow(clippy::large_enum_variant)]
pub enum AttentionWeights {
    /// Softmax probabilities `[B, heads, N, N]`, a row per query.
    Softmax(Tensor<4>),
    /// Fastformer's pooling weights `[α, β]`, each `[B, heads, N]`: α over
    /// the queries, β over the keys.
    Additive([Tensor<3>; 2]),
}

/// A block whose token mixer can show its weights.
pub trait ShowsAttention {
    /// The weights of the block's mixer for the block input `x` `[B, N, C]`.
    fn attention_weights(&self, x: Tensor<3>) -> AttentionWeights;
}

impl ShowsAttention for Block<Attention, Mlp> {
    fn attention_weights(&self, x: Tensor<3>) -> AttentionWeights {
        AttentionWeights::Softmax(self.attn.probabilities_normed(&self.norm1, x))
    }
}

impl ShowsAttention for Block<FastAttention, Mlp> {
    fn attention_weights(&self, x: Tensor<3>) -> AttentionWeights {
        AttentionWeights::Additive(self.attn.pooling_weights(self.norm1.forward(x)))
    }
}

/// A block visitor of [`crate::models::Encoder::forward_visiting`] that hands
/// the block's attention weights on to `visit`.
fn showing<'a, L: ShowsAttention>(
    visit: &'a mut dyn FnMut(usize, AttentionWeights),
) -> impl FnMut(usize, &L, &Tensor<3>) + 'a {
    move |index, block, x| visit(index, block.attention_weights(x.clone()))
}

impl Model {
    /// The forward pass of `images` (a non-empty batch) that records `taps`
    /// and hands `visit` the attention weights of every block, first block
    /// first. Each block's weights are computed a second time from its
    /// input, outside the fused kernels, so this costs about two forward
    /// passes and `N²` values a head for one block at a time.
    ///
    /// The ghost and dense backbones are refused: their blocks mix tokens
    /// through other layers.
    pub fn forward_attention(
        &self,
        images: Tensor<4>,
        taps: &mut Taps,
        visit: &mut dyn FnMut(usize, AttentionWeights),
    ) -> Result<Tensor<2>, ModelError> {
        if images.dims()[0] == 0 {
            return Err(ModelError::BadConfig("no image to inspect".into()));
        }
        match self {
            Model::T2tVit(m) => Ok(m.forward_visiting(images, taps, &mut showing(visit))),
            Model::Vit(m) => Ok(m.forward_visiting(images, taps, &mut showing(visit))),
            Model::Fvit(m) => Ok(m.forward_visiting(images, taps, &mut showing(visit))),
            Model::T2tVitGhost(_) | Model::T2tVitDense(_) => Err(ModelError::BadConfig(
                "the ghost and dense backbones have no attention weights to show".into(),
            )),
        }
    }
}

/// How the heads of a block become one attention matrix (vit-explain's
/// `head_fusion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadFusion {
    Mean,
    Max,
    Min,
}

impl HeadFusion {
    /// `[B, heads, N, N]` → `[B, N, N]`.
    pub fn fuse(self, probabilities: Tensor<4>) -> Tensor<3> {
        let fused = match self {
            HeadFusion::Mean => probabilities.mean_dim(1),
            HeadFusion::Max => probabilities.max_dim(1),
            HeadFusion::Min => probabilities.min_dim(1),
        };
        fused.squeeze_dim(1)
    }

    pub fn name(self) -> &'static str {
        match self {
            HeadFusion::Mean => "mean",
            HeadFusion::Max => "max",
            HeadFusion::Min => "min",
        }
    }
}

/// Attention rollout of one image, fed one block at a time.
pub struct Rollout {
    discard_ratio: f64,
    /// Tokens, class token first; set by the first block.
    tokens: usize,
    /// The head-fused attention of each block so far, `N × N` row-major.
    blocks: Vec<Vec<f32>>,
}

impl Rollout {
    /// A rollout that zeroes the lowest `discard_ratio` of each block's
    /// fused weights.
    pub fn new(discard_ratio: f64) -> Self {
        Self {
            discard_ratio,
            tokens: 0,
            blocks: Vec::new(),
        }
    }

    /// Adds the next block's head-fused attention `[N, N]` (or `[1, N, N]`).
    pub fn push(&mut self, fused: TensorData) {
        let fused = HostTensor::from_data(fused);
        let tokens = *fused.shape.last().expect("a matrix");
        assert!(
            self.blocks.is_empty() || tokens == self.tokens,
            "every block has N tokens"
        );
        assert_eq!(
            fused.values.len(),
            tokens * tokens,
            "one image's N × N weights"
        );
        self.tokens = tokens;
        self.blocks.push(fused.values);
    }

    /// The class token's row of `Â_L ⋯ Â_1` over the patch tokens, divided
    /// by its largest value. `Â = rows_normalised((A + I) / 2)`, where `A` is
    /// a block's fused attention with its lowest `discard_ratio` entries
    /// zeroed; as in vit-explain, the entry of index 0 (class token to class
    /// token) is never discarded.
    pub fn mask(&self) -> Vec<f32> {
        let n = self.tokens;
        // Row 0 of the product, from the last block back: e₀ᵀ Â_L, then
        // times Â_{L-1}, ... Â_1. Vector-matrix products keep this O(L N²).
        let mut row = vec![0.0f64; n];
        row[0] = 1.0;
        for block in self.blocks.iter().rev() {
            let a = self.mixed(block);
            let mut next = vec![0.0f64; n];
            for (weight, a_row) in row.iter().zip(a.chunks(n)) {
                for (out, value) in next.iter_mut().zip(a_row) {
                    *out += weight * value;
                }
            }
            row = next;
        }
        let max = row[1..].iter().copied().fold(0.0f64, f64::max);
        row[1..]
            .iter()
            .map(|&v| if max > 0.0 { (v / max) as f32 } else { 0.0 })
            .collect()
    }

    /// `Â` of one block's fused attention, in f64.
    fn mixed(&self, fused: &[f32]) -> Vec<f64> {
        let n = self.tokens;
        let mut a: Vec<f64> = fused.iter().map(|&v| v as f64).collect();
        // int(N² · ratio) as vit-explain counts, the lowest values first.
        let discard = (a.len() as f64 * self.discard_ratio) as usize;
        if discard > 0 {
            let mut order: Vec<usize> = (0..a.len()).collect();
            order.select_nth_unstable_by(discard - 1, |&i, &j| {
                a[i].total_cmp(&a[j]).then(i.cmp(&j))
            });
            for &i in order[..discard].iter().filter(|&&i| i != 0) {
                a[i] = 0.0;
            }
        }
        for (i, row) in a.chunks_mut(n).enumerate() {
            row[i] += 1.0;
            let sum: f64 = row.iter().sum();
            for v in row.iter_mut() {
                *v /= sum;
            }
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::registry;

    #[test]
    fn materialised_probabilities_give_the_fused_attention_output() {
        let device = crate::device::for_tests();
        let mut config = registry::find("vit_cifar").unwrap().config;
        config.apply_kwargs(&["depth=2", "embed_dim=192"]).unwrap();
        let Model::Vit(model) = config.init(&device).unwrap() else {
            unreachable!()
        };
        let block = &model.encoder.blocks[0];
        let x = Tensor::<3>::random([2, 17, 192], Distribution::Default, &device);
        let AttentionWeights::Softmax(probs) = block.attention_weights(x.clone()) else {
            unreachable!()
        };
        let heads = block.attn.num_heads;
        assert_eq!(probs.dims(), [2, heads, 17, 17]);
        let row_sums: Vec<f32> = probs.clone().sum_dim(3).into_data().try_to_vec().unwrap();
        assert!(row_sums.iter().all(|s| (s - 1.0).abs() < 1e-5));
        // probabilities @ v, merged and projected, is what the fused kernel gives.
        let qkv = block.norm1.then_linear(&block.attn.qkv, x.clone());
        let v = qkv
            .slice([0..2, 0..17, 384..576])
            .reshape([2, 17, heads, 192 / heads])
            .swap_dims(1, 2);
        let merged = probs.matmul(v).swap_dims(1, 2).reshape([2, 17, 192]);
        let direct = block.attn.proj.forward(merged);
        let fused = crate::layers::Sublayer::forward_normed(&block.attn, &block.norm1, x);
        let diff: f32 = (direct - fused).abs().max().into_scalar();
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn rollout_of_uniform_attention_is_flat_and_the_class_token_is_kept() {
        let n = 5;
        let mut rollout = Rollout::new(0.0);
        for _ in 0..3 {
            rollout.push(TensorData::new(vec![1.0 / n as f32; n * n], [n, n]));
        }
        assert_eq!(rollout.mask(), vec![1.0; n - 1]);
        // Discarding every entry leaves the class token's own weight and the identity.
        let mut rollout = Rollout::new(1.0);
        rollout.push(TensorData::new(vec![1.0 / n as f32; n * n], [n, n]));
        let a = rollout.mixed(&[1.0 / n as f32; 25]);
        assert!((a[0] - 1.0).abs() < 1e-12 && a[1] == 0.0 && (a[n + 1] - 1.0).abs() < 1e-12);
    }
}
