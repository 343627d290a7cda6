//! The graph of T2T-ViT:
//!
//! ```text
//! image ─ soft split ─ T2T layer ─ restructure ─ soft split ─ T2T layer ─ restructure ─ soft split
//!       ─ project ─ encoder
//! ```

use super::graph::{scoped, Attr, Graph};
use super::layers::Emit;
use crate::kernels::PERFORMER_EPSILON;
use crate::layers::{SoftSplit, TokenPerformer, TokenTransformer};
use crate::models::{T2tModule, T2tVit, T2tVitConfig, TokenLayer};
use crate::weights::HostTensor;

/// T2T-ViT on `images` `[B, C, H, W]`; returns the logits.
pub(super) fn emit<L: Emit>(
    graph: &mut Graph,
    model: &T2tVit<L>,
    config: &T2tVitConfig,
    images: &str,
) -> String {
    let tokens = tokens_to_token(graph, &model.tokens_to_token, config, images);
    model.encoder.emit(graph, "", &tokens)
}

/// The T2T module: image → `[B, (H/16)², embed_dim]` tokens.
fn tokens_to_token(
    graph: &mut Graph,
    module: &T2tModule,
    config: &T2tVitConfig,
    images: &str,
) -> String {
    let scope = "tokens_to_token";
    let key = |name: &str| scoped(scope, name);
    let side0 = module.soft_split0.out_size(config.img_size);
    let side1 = module.soft_split1.out_size(side0);
    let token_dim = config.token_dim;

    let x = soft_split(
        graph,
        &key("soft_split0"),
        &module.soft_split0,
        config.in_chans,
        images,
    );
    let x = module.attention1.emit(graph, &key("attention1"), &x);
    let x = tokens_to_image(graph, scope, &x, token_dim, side0);
    let x = soft_split(
        graph,
        &key("soft_split1"),
        &module.soft_split1,
        token_dim,
        &x,
    );
    let x = module.attention2.emit(graph, &key("attention2"), &x);
    let x = tokens_to_image(graph, scope, &x, token_dim, side1);
    let x = soft_split(
        graph,
        &key("soft_split2"),
        &module.soft_split2,
        token_dim,
        &x,
    );
    graph.linear(&key("project"), &module.project, &x)
}

/// `nn.Unfold` then `transpose(1, 2)`: `[B, C, H, W]` → `[B, L, C·k·k]`.
///
/// ONNX has no unfold, so the split is a convolution with one-hot filters:
/// output channel `c·k·k + i·k + j` copies pixel (i, j) of each window of
/// channel c, which is unfold's channel-major feature order. The filters
/// are grouped by input channel (`group = C`, weights `[C·k·k, 1, k, k]`):
/// the same one-hot convolution as a dense `[C·k·k, C, k, k]` one without
/// its all-zero blocks, C times fewer multiply-adds. Every output is one
/// input times 1 plus zeros, so the copy is exact.
fn soft_split(
    graph: &mut Graph,
    scope: &str,
    split: &SoftSplit,
    channels: usize,
    image: &str,
) -> String {
    let k = split.kernel;
    let window = k * k;
    let mut one_hot = vec![0.0; channels * window * window];
    for out_channel in 0..channels * window {
        // Within its group, filter `i·k + j` picks window position `i·k + j`.
        one_hot[out_channel * window + out_channel % window] = 1.0;
    }
    let filters = HostTensor::new(vec![channels * window, 1, k, k], one_hot);
    let filters = graph.weight(&scoped(scope, "one_hot"), &filters);
    let (kernel, stride, pad) = (k as i64, split.stride as i64, split.padding as i64);
    let columns = graph.op(
        scope,
        "Conv",
        &[image, &filters],
        &[
            Attr::Ints("kernel_shape", &[kernel, kernel]),
            Attr::Ints("strides", &[stride, stride]),
            Attr::Ints("pads", &[pad, pad, pad, pad]),
            Attr::Int("group", channels as i64),
        ],
    );
    let columns = graph.reshape(scope, &columns, &[0, 0, -1]);
    graph.transpose(scope, &columns, &[0, 2, 1])
}

/// Re-structurization: tokens `[B, side², C]` back to an image `[B, C, side, side]`.
fn tokens_to_image(
    graph: &mut Graph,
    scope: &str,
    tokens: &str,
    channels: usize,
    side: usize,
) -> String {
    let image = graph.transpose(scope, tokens, &[0, 2, 1]);
    graph.reshape(
        scope,
        &image,
        &[0, channels as i64, side as i64, side as i64],
    )
}

impl Emit for TokenLayer {
    fn emit(&self, graph: &mut Graph, scope: &str, x: &str) -> String {
        match self {
            TokenLayer::Performer(layer) => layer.emit(graph, scope, x),
            TokenLayer::Transformer(layer) => layer.emit(graph, scope, x),
        }
    }
}

impl Emit for TokenPerformer {
    /// The official `single_attn` with its einsums as MatMul, and `prm_exp`
    /// as ReduceSum and Exp; `w` is stored as in the checkpoint.
    fn emit(&self, graph: &mut Graph, scope: &str, x: &str) -> String {
        let key = |name: &str| scoped(scope, name);
        let [features, emb] = self.w.lazy_shape().dims::<2>();
        let normed = graph.layer_norm(&key("norm1"), &self.norm1, x);
        let kqv = graph.linear(&key("kqv"), &self.kqv, &normed);
        let [k, q, v] = graph.split_last(scope, &kqv, emb);

        let w = graph.param(&key("w"), &self.w);
        let w_t = graph.transpose(scope, &w, &[1, 0]);
        let kp = random_features(graph, scope, &k, &w_t, features);
        let qp = random_features(graph, scope, &q, &w_t, features);

        // D = qp · Σₜ kpₜ: [B, T, 1]
        let axes = graph.ints(&[1]);
        let keep = [Attr::Int("keepdims", 1)];
        let kp_sum = graph.op(scope, "ReduceSum", &[&kp, &axes], &keep);
        let kp_sum = graph.transpose(scope, &kp_sum, &[0, 2, 1]);
        let normaliser = graph.op(scope, "MatMul", &[&qp, &kp_sum], &[]);
        // kptv = vᵀ · kp: [B, emb, m]; y = qp · kptvᵀ / (D + ε)
        let v_t = graph.transpose(scope, &v, &[0, 2, 1]);
        let kptv = graph.op(scope, "MatMul", &[&v_t, &kp], &[]);
        let kptv_t = graph.transpose(scope, &kptv, &[0, 2, 1]);
        let y = graph.op(scope, "MatMul", &[&qp, &kptv_t], &[]);
        let epsilon = graph.scalar(PERFORMER_EPSILON);
        let normaliser = graph.op(scope, "Add", &[&normaliser, &epsilon], &[]);
        let y = graph.op(scope, "Div", &[&y, &normaliser], &[]);

        // The skip comes from v, not from x.
        let y = graph.linear(&key("proj"), &self.proj, &y);
        let y = graph.op(scope, "Add", &[&v, &y], &[]);
        let normed = graph.layer_norm(&key("norm2"), &self.norm2, &y);
        let hidden = graph.linear(&key("mlp.0"), &self.mlp.fc1, &normed);
        let hidden = graph.gelu(scope, &hidden);
        let branch = graph.linear(&key("mlp.2"), &self.mlp.fc2, &hidden);
        graph.op(scope, "Add", &[&y, &branch], &[])
    }
}

/// The official `prm_exp`: `φ(z) = exp(z·wᵀ − ‖z‖²/2) / √m`, `[B, T, m]`.
fn random_features(graph: &mut Graph, scope: &str, z: &str, w_t: &str, features: usize) -> String {
    let axes = graph.ints(&[-1]);
    let two = graph.scalar(2.0);
    let sqrt_m = graph.scalar((features as f32).sqrt());
    let squares = graph.op(scope, "Mul", &[z, z], &[]);
    let norm = graph.op(
        scope,
        "ReduceSum",
        &[&squares, &axes],
        &[Attr::Int("keepdims", 1)],
    );
    let half_norm = graph.op(scope, "Div", &[&norm, &two], &[]);
    let wtx = graph.op(scope, "MatMul", &[z, w_t], &[]);
    let exponent = graph.op(scope, "Sub", &[&wtx, &half_norm], &[]);
    let features = graph.op(scope, "Exp", &[&exponent], &[]);
    graph.op(scope, "Div", &[&features, &sqrt_m], &[])
}

impl Emit for TokenTransformer {
    fn emit(&self, graph: &mut Graph, scope: &str, x: &str) -> String {
        let key = |name: &str| scoped(scope, name);
        let attn = &self.attn;
        let emb = attn.proj.weight.lazy_shape().dims::<2>()[0];
        let normed = graph.layer_norm(&key("norm1"), &self.norm1, x);
        let qkv = graph.linear(&key("attn.qkv"), &attn.qkv, &normed);
        let [q, k, v] = graph.split_last(scope, &qkv, emb);
        let y = graph.softmax_attention(scope, [&q, &k, &v], 1, emb, attn.scale);
        let y = graph.linear(&key("attn.proj"), &attn.proj, &y);
        // The skip comes from v, not from x.
        let y = graph.op(scope, "Add", &[&v, &y], &[]);
        let normed = graph.layer_norm(&key("norm2"), &self.norm2, &y);
        let branch = self.mlp.emit(graph, &key("mlp"), &normed);
        graph.op(scope, "Add", &[&y, &branch], &[])
    }
}
