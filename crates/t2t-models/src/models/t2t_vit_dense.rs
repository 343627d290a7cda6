//! The dense ablation of T2T-ViT: each block appends `growth_rate` new
//! features to its input (DenseNet concatenation), and a transition halves
//! the width between stages.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use crate::kernels::gelu;

use super::t2t_vit::dense_widths;
use super::T2tVitConfig;
use crate::complexity::Macs;
use crate::layers::{self, linear, linear_macs, Block, Sublayer};

/// A pre-norm block whose output is narrowed to `growth_rate` features and
/// concatenated to its input. Saved flat: `blocks.i.norm1`, `blocks.i.dense_linear`.
#[derive(Module, Debug)]
pub struct DenseBlock {
    pub block: Block,
    pub dense_linear: Linear,
}

/// Linear + GELU that halves the width between dense stages.
#[derive(Module, Debug)]
pub struct Transition {
    pub linear: Linear,
}

/// One entry of the dense model's `blocks` list.
// Built once per model; the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum DenseLayer {
    Block(DenseBlock),
    Transition(Transition),
}

impl DenseLayer {
    /// The official layer list. The drop-path rate of every block in stage `s`
    /// is `rates[s]`, as upstream indexes its per-block schedule by stage.
    pub(crate) fn stack(
        config: &T2tVitConfig,
        growth_rate: usize,
        stages: &[usize],
        rates: &[f64],
        device: &Device,
    ) -> Vec<DenseLayer> {
        let widths = dense_widths(config.embed_dim, growth_rate, stages);
        let mut widths = widths.into_iter();
        let mut layers = Vec::new();
        for (stage, &count) in stages.iter().enumerate() {
            let mut out_width = 0;
            for _ in 0..count {
                let dim = widths.next().expect("one width per block");
                layers.push(DenseLayer::Block(DenseBlock {
                    block: config.block(dim, rates.get(stage).copied().unwrap_or(0.0), device),
                    dense_linear: linear(dim, growth_rate, true, device),
                }));
                out_width = dim + growth_rate;
            }
            if stage + 1 != stages.len() {
                layers.push(DenseLayer::Transition(Transition {
                    linear: linear(out_width, out_width / 2, true, device),
                }));
            }
        }
        layers
    }
}

impl Sublayer for DenseLayer {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            DenseLayer::Block(dense) => {
                let new = layers::dense(&dense.dense_linear, dense.block.forward(x.clone()));
                Tensor::cat(vec![x, new], 2)
            }
            DenseLayer::Transition(t) => gelu(layers::dense(&t.linear, x)),
        }
    }

    fn macs(&self, tokens: usize) -> Macs {
        match self {
            DenseLayer::Block(dense) => {
                dense.block.macs(tokens) + linear_macs(&dense.dense_linear, tokens)
            }
            DenseLayer::Transition(t) => linear_macs(&t.linear, tokens),
        }
    }
}
