//! The graph of ViT and FViT:
//!
//! ```text
//! image ─ patch embed (p×p conv) ─ encoder
//! ```

use super::graph::{scoped, Attr, Graph};
use super::layers::Emit;
use crate::layers::{FastAttention, PatchEmbed, ScoreVectors};
use crate::models::VisionTransformer;

/// ViT or FViT on `images` `[B, C, H, W]`; returns the logits.
pub(super) fn emit<L: Emit>(
    graph: &mut Graph,
    model: &VisionTransformer<L>,
    images: &str,
) -> String {
    let tokens = patch_embed(graph, "patch_embed", &model.patch_embed, images);
    model.encoder.emit(graph, "", &tokens)
}

/// A p×p convolution with stride p, flattened to tokens `[B, (H/p)·(W/p), D]`.
fn patch_embed(graph: &mut Graph, scope: &str, embed: &PatchEmbed, images: &str) -> String {
    let conv = &embed.proj;
    let key = scoped(scope, "proj");
    let mut inputs = vec![graph.param(&scoped(&key, "weight"), &conv.weight)];
    if let Some(bias) = &conv.bias {
        inputs.push(graph.param(&scoped(&key, "bias"), bias));
    }
    let [kh, kw] = conv.kernel_size.map(|k| k as i64);
    let [sh, sw] = conv.stride.map(|s| s as i64);
    let inputs: Vec<&str> = std::iter::once(images)
        .chain(inputs.iter().map(String::as_str))
        .collect();
    let grid = graph.op(
        &key,
        "Conv",
        &inputs,
        &[
            Attr::Ints("kernel_shape", &[kh, kw]),
            Attr::Ints("strides", &[sh, sw]),
        ],
    );
    let tokens = graph.reshape(&key, &grid, &[0, 0, -1]);
    graph.transpose(&key, &tokens, &[0, 2, 1])
}

impl Emit for FastAttention {
    fn emit(&self, graph: &mut Graph, scope: &str, x: &str) -> String {
        let key = |name: &str| scoped(scope, name);
        let width = self.query.weight.lazy_shape().dims::<2>()[1];
        let pool = Pooling {
            heads: self.num_heads,
            width,
        };
        let q = graph.linear(&key("query"), &self.query, x);
        let k = graph.linear(&key("key"), &self.key, x);
        let global_query = pool.emit(graph, &key("query_att"), &self.query_att, &q);
        let p = graph.op(scope, "Mul", &[&k, &global_query], &[]);
        let global_key = pool.emit(graph, &key("key_att"), &self.key_att, &p);
        let v = match &self.value {
            Some(value) => graph.linear(&key("value"), value, x),
            None => q.clone(),
        };
        let mixed = graph.op(scope, "Mul", &[&v, &global_key], &[]);
        let y = graph.linear(&key("transform"), &self.transform, &mixed);
        graph.op(scope, "Add", &[&y, &q], &[])
    }
}

/// Fastformer's additive pooling of `[B, N, H]` tokens into one `[B, 1, H]`,
/// per head: `Σₙ softmax_N(score(x)/√d)ₙ · xₙ`.
struct Pooling {
    heads: usize,
    width: usize,
}

impl Pooling {
    fn emit(&self, graph: &mut Graph, scope: &str, scores: &ScoreVectors, x: &str) -> String {
        let (heads, head_dim) = (self.heads as i64, (self.width / self.heads) as i64);
        // Scores as one row per head, `[B, heads, 1, N]`.
        let scores = match scores {
            ScoreVectors::Dense(linear) => {
                let scores = graph.linear(scope, linear, x);
                let scores = graph.transpose(scope, &scores, &[0, 2, 1]);
                graph.reshape(scope, &scores, &[0, 0, 1, -1])
            }
            ScoreVectors::PerHead(w) => {
                let w = graph.param(scope, w);
                let w = graph.reshape(scope, &w, &[heads, head_dim, 1]);
                let x = graph.split_heads(scope, x, self.heads, self.width);
                let scores = graph.op(scope, "MatMul", &[&x, &w], &[]);
                graph.transpose(scope, &scores, &[0, 1, 3, 2])
            }
        };
        let sqrt_d = graph.scalar((head_dim as f32).sqrt());
        let scores = graph.op(scope, "Div", &[&scores, &sqrt_d], &[]);
        let weights = graph.op(scope, "Softmax", &[&scores], &[Attr::Int("axis", -1)]);
        let values = graph.split_heads(scope, x, self.heads, self.width);
        let pooled = graph.op(scope, "MatMul", &[&weights, &values], &[]);
        graph.merge_heads(scope, &pooled, self.width)
    }
}
