use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::{layer_norm, layer_norm_macs, Attention, DropPath, LayerNorm, Mlp, Sublayer};
use crate::complexity::Macs;

/// Pre-norm transformer block:
/// `x += drop_path(attn(norm1(x)))`, then `x += drop_path(mlp(norm2(x)))`.
/// Generic over the token mixer and the MLP, so that ViT, T2T-ViT, FViT and
/// the ghost ablation share it.
#[derive(Module, Debug)]
pub struct Block<A = Attention, M = Mlp> {
    pub norm1: LayerNorm,
    pub attn: A,
    pub drop_path: DropPath,
    pub norm2: LayerNorm,
    pub mlp: M,
}

impl<A: Sublayer, M: Sublayer> Block<A, M> {
    /// A block of width `dim` around `attn` and `mlp`, LayerNorm epsilon `eps`.
    pub fn new(dim: usize, attn: A, mlp: M, drop_path: f64, eps: f64, device: &Device) -> Self {
        Self {
            norm1: layer_norm(dim, eps, device),
            attn,
            drop_path: DropPath::new(drop_path),
            norm2: layer_norm(dim, eps, device),
            mlp,
        }
    }
}

impl<A: Sublayer, M: Sublayer> Sublayer for Block<A, M> {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone()
            + self
                .drop_path
                .forward(self.attn.forward_normed(&self.norm1, x));
        x.clone()
            + self
                .drop_path
                .forward(self.mlp.forward_normed(&self.norm2, x))
    }

    fn macs(&self, tokens: usize) -> Macs {
        layer_norm_macs(self.norm1.width(), tokens) * 2
            + self.attn.macs(tokens)
            + self.mlp.macs(tokens)
    }
}
