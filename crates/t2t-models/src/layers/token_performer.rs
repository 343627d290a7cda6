use burn::module::{Initializer, Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use crate::kernels::{gelu, performer_attention};

use super::{
    dense, layer_norm, layer_norm_macs, linear, linear_macs, Dropout, LayerNorm, Sublayer,
};
use crate::complexity::Macs;

/// The random-feature ratio m/emb of the official Token_performer.
const KERNEL_RATIO: f64 = 0.5;
/// The official layer hard-codes its two dropouts at 0.1.
const DROPOUT: f64 = 0.1;

/// T2T layer with Performer attention (one head, linear in the token count):
/// ```text
/// k, q, v = split(kqv(LN1(x)))          # order k, q, v
/// φ(z)    = exp(z·wᵀ − ‖z‖²/2) / √m
/// y       = φ(q)·(vᵀφ(k))ᵀ / (φ(q)·Σₜφ(k) + ε)
/// y       = v + proj(y)                 # skip from v
/// out     = y + mlp(LN2(y))
/// ```
#[derive(Module, Debug)]
pub struct TokenPerformer {
    pub norm1: LayerNorm,
    pub kqv: Linear,
    pub proj: Linear,
    pub dp: Dropout,
    pub norm2: LayerNorm,
    pub mlp: PerformerMlp,
    /// Random features `[m, emb]`; part of the checkpoint, never trained.
    pub w: Param<Tensor<2>>,
}

/// `nn.Sequential(Linear, GELU, Linear, Dropout)` (saved as `mlp.0`, `mlp.2`).
#[derive(Module, Debug)]
pub struct PerformerMlp {
    pub fc1: Linear,
    pub fc2: Linear,
    pub drop: Dropout,
}

impl TokenPerformer {
    pub fn new(dim: usize, emb: usize, device: &Device) -> Self {
        let m = (emb as f64 * KERNEL_RATIO) as usize;
        let w = Initializer::Orthogonal {
            gain: (m as f64).sqrt(),
        }
        .init([m, emb], device)
        .set_require_grad(false);
        Self {
            norm1: layer_norm(dim, 1e-5, device),
            kqv: linear(dim, 3 * emb, true, device),
            proj: linear(emb, emb, true, device),
            dp: Dropout::new(DROPOUT),
            norm2: layer_norm(emb, 1e-5, device),
            mlp: PerformerMlp {
                fc1: linear(emb, emb, true, device),
                fc2: linear(emb, emb, true, device),
                drop: Dropout::new(DROPOUT),
            },
            w,
        }
    }

    fn random_features(&self) -> usize {
        self.w.lazy_shape().dims::<2>()[0]
    }
}

impl Sublayer for TokenPerformer {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let kqv = self.norm1.then_linear(&self.kqv, x);
        let emb = kqv.dims()[2] / 3;
        let v = kqv.clone().narrow(2, 2 * emb, emb);
        let y = performer_attention(kqv, self.w.val());
        let y = v + self.dp.forward(dense(&self.proj, y));
        let mlp = &self.mlp;
        let branch = dense(&mlp.fc2, gelu(self.norm2.then_linear(&mlp.fc1, y.clone())));
        y + mlp.drop.forward(branch)
    }

    fn macs(&self, tokens: usize) -> Macs {
        let [dim, kqv_out] = self.kqv.weight.lazy_shape().dims();
        let emb = kqv_out / 3;
        let m = self.random_features();
        // Einsums: w·z for k and q, the normaliser, vᵀφ(k) and φ(q)·kptvᵀ.
        let einsums = tokens * (2 * emb * m + m + emb * m + m * emb);
        layer_norm_macs(dim, tokens)
            + linear_macs(&self.kqv, tokens)
            + Macs::matmuls(einsums as u64)
            + linear_macs(&self.proj, tokens)
            + layer_norm_macs(emb, tokens)
            + linear_macs(&self.mlp.fc1, tokens)
            + linear_macs(&self.mlp.fc2, tokens)
    }
}
