use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{activation::softmax, Device, Tensor};

use super::{dense, linear, linear_macs, Sublayer};
use crate::complexity::Macs;
use crate::kernels::{merge_heads, split_heads};

/// How the additive-attention scores of each head are computed.
#[derive(Module, Debug)]
pub enum ScoreVectors {
    /// The official code: one `Linear(H, heads)` reading all H features.
    Dense(Linear),
    /// The paper: one vector `w ∈ R^d` per head over that head's own features,
    /// stored as `[heads, d]`.
    PerHead(Param<Tensor<2>>),
}

impl ScoreVectors {
    /// Scores `[B, heads, N]` of `x` `[B, N, H]`, already divided by √d.
    fn scores(&self, x: Tensor<3>, heads: usize) -> Tensor<3> {
        let head_dim = x.dims()[2] / heads;
        let scores = match self {
            ScoreVectors::Dense(linear) => dense(linear, x).swap_dims(1, 2),
            ScoreVectors::PerHead(w) => {
                let x = split_heads(x, heads); // [B, heads, N, d]
                let w = w.val().unsqueeze_dim::<3>(0).unsqueeze_dim::<4>(3); // [1, heads, d, 1]
                x.matmul(w).squeeze_dim::<3>(3)
            }
        };
        scores.div_scalar((head_dim as f64).sqrt())
    }

    fn macs(&self, tokens: usize) -> Macs {
        match self {
            ScoreVectors::Dense(linear) => linear_macs(linear, tokens),
            ScoreVectors::PerHead(w) => {
                Macs::layers((tokens * w.lazy_shape().num_elements()) as u64)
            }
        }
    }
}

/// Fastformer's additive attention (Wu et al., 2021), linear in the number
/// of tokens:
/// ```text
/// α = softmax_N(score_q(q)/√d)      q_g = Σ α·q      (per head)
/// p = k ∗ q_g
/// β = softmax_N(score_k(p)/√d)      k_g = Σ β·p
/// out = transform(k_g ∗ v) + q      v = q unless a value projection is used
/// ```
#[derive(Module, Debug)]
pub struct FastAttention {
    pub query: Linear,
    pub query_att: ScoreVectors,
    pub key: Linear,
    pub key_att: ScoreVectors,
    /// The paper's separate value projection; the official code uses V = Q.
    pub value: Option<Linear>,
    pub transform: Linear,
    pub num_heads: usize,
}

/// The switches between the official code (the default) and the paper's form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FastAttentionConfig {
    /// A separate value projection (the paper) instead of V = Q (the code).
    pub value_proj: bool,
    /// One score vector per head over its own features (the paper) instead of
    /// a dense `Linear(H, heads)` (the code).
    pub per_head_scores: bool,
}

impl FastAttentionConfig {
    pub fn init(&self, dim: usize, num_heads: usize, device: &Device) -> FastAttention {
        let scores = || match self.per_head_scores {
            false => ScoreVectors::Dense(linear(dim, num_heads, true, device)),
            true => {
                let w = burn::module::Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                };
                ScoreVectors::PerHead(w.init([num_heads, dim / num_heads], device))
            }
        };
        FastAttention {
            query: linear(dim, dim, true, device),
            query_att: scores(),
            key: linear(dim, dim, true, device),
            key_att: scores(),
            value: self.value_proj.then(|| linear(dim, dim, true, device)),
            transform: linear(dim, dim, true, device),
            num_heads,
        }
    }
}

impl FastAttention {
    /// Additive attention with an optional additive mask `[B, 1, N]`
    /// (0 for tokens, -10000 for padding, as the official encoder builds it).
    pub fn forward_masked(&self, x: Tensor<3>, mask: Option<Tensor<3>>) -> Tensor<3> {
        self.attend(x, mask).0
    }

    /// The pooling weights `[B, heads, N]` of `x`: α over the queries (what
    /// forms the global query) and β over the keys (the global key). The
    /// forward pass computes them anyway, so nothing extra is materialised.
    pub fn pooling_weights(&self, x: Tensor<3>) -> [Tensor<3>; 2] {
        self.attend(x, None).1
    }

    /// The output and the pooling weights `[α, β]`.
    fn attend(&self, x: Tensor<3>, mask: Option<Tensor<3>>) -> (Tensor<3>, [Tensor<3>; 2]) {
        let heads = self.num_heads;
        let pool = |scores: Tensor<3>, values: Tensor<3>| {
            let scores = match &mask {
                Some(mask) => scores + mask.clone(),
                None => scores,
            };
            // [B, heads, 1, N] @ [B, heads, N, d] → [B, heads, 1, d] → [B, 1, H]
            let weights = softmax(scores, 2);
            let pooled = weights
                .clone()
                .unsqueeze_dim::<4>(2)
                .matmul(split_heads(values, heads));
            (merge_heads(pooled), weights)
        };
        let q = dense(&self.query, x.clone());
        let k = dense(&self.key, x.clone());
        let (global_query, alpha) = pool(self.query_att.scores(q.clone(), heads), q.clone());
        let p = k * global_query;
        let (global_key, beta) = pool(self.key_att.scores(p.clone(), heads), p);
        let v = match &self.value {
            Some(value) => dense(value, x),
            None => q.clone(),
        };
        (dense(&self.transform, v * global_key) + q, [alpha, beta])
    }
}

impl Sublayer for FastAttention {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_masked(x, None)
    }

    fn macs(&self, tokens: usize) -> Macs {
        let [dim, _] = self.query.weight.lazy_shape().dims();
        let value = self
            .value
            .as_ref()
            .map(|v| linear_macs(v, tokens))
            .unwrap_or_default();
        linear_macs(&self.query, tokens)
            + linear_macs(&self.key, tokens)
            + value
            + linear_macs(&self.transform, tokens)
            + self.query_att.macs(tokens)
            + self.key_att.macs(tokens)
            // The two pooling matmuls; the element-wise products are not counted.
            + Macs::matmuls((2 * tokens * dim) as u64)
    }
}
