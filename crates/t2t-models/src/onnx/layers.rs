//! The graphs of the layers every model shares, in evaluation mode: dropout
//! and drop path are the identity and leave no node.

use super::graph::{scoped, Attr, Graph};
use crate::layers::{Attention, Block, Mlp, SqueezeExcite};

/// A module that can write its forward pass into an ONNX graph.
pub(crate) trait Emit {
    /// Adds the forward pass on `x` to `graph`, naming everything under the
    /// module's PyTorch key `scope`; returns the output's name.
    fn emit(&self, graph: &mut Graph, scope: &str, x: &str) -> String;
}

impl Emit for Mlp {
    fn emit(&self, graph: &mut Graph, scope: &str, x: &str) -> String {
        let hidden = graph.linear(&scoped(scope, "fc1"), &self.fc1, x);
        let hidden = graph.gelu(scope, &hidden);
        graph.linear(&scoped(scope, "fc2"), &self.fc2, &hidden)
    }
}

impl Emit for Attention {
    fn emit(&self, graph: &mut Graph, scope: &str, x: &str) -> String {
        let width = self.proj.weight.lazy_shape().dims::<2>()[0];
        let qkv = graph.linear(&scoped(scope, "qkv"), &self.qkv, x);
        let [q, k, v] = graph.split_last(scope, &qkv, width);
        let y = graph.softmax_attention(scope, [&q, &k, &v], self.num_heads, width, self.scale);
        let y = graph.linear(&scoped(scope, "proj"), &self.proj, &y);
        match &self.se_layer {
            Some(se) => se.emit(graph, &scoped(scope, "se_layer"), &y),
            None => y,
        }
    }
}

impl Emit for SqueezeExcite {
    fn emit(&self, graph: &mut Graph, scope: &str, x: &str) -> String {
        // ReduceMean took its axes as an attribute until opset 18, as an input since.
        let squeezed = if graph.opset < 18 {
            let attrs = [Attr::Ints("axes", &[1]), Attr::Int("keepdims", 1)];
            graph.op(scope, "ReduceMean", &[x], &attrs)
        } else {
            let axes = graph.ints(&[1]);
            graph.op(
                scope,
                "ReduceMean",
                &[x, &axes],
                &[Attr::Int("keepdims", 1)],
            )
        };
        let reduced = graph.linear(&scoped(scope, "fc.0"), &self.fc.reduce, &squeezed);
        let reduced = graph.op(scope, "Relu", &[&reduced], &[]);
        let expanded = graph.linear(&scoped(scope, "fc.2"), &self.fc.expand, &reduced);
        let gate = graph.op(scope, "Sigmoid", &[&expanded], &[]);
        graph.op(scope, "Mul", &[x, &gate], &[])
    }
}

impl<A: Emit, M: Emit> Emit for Block<A, M> {
    fn emit(&self, graph: &mut Graph, scope: &str, x: &str) -> String {
        let normed = graph.layer_norm(&scoped(scope, "norm1"), &self.norm1, x);
        let mixed = self.attn.emit(graph, &scoped(scope, "attn"), &normed);
        let x = graph.op(scope, "Add", &[x, &mixed], &[]);
        let normed = graph.layer_norm(&scoped(scope, "norm2"), &self.norm2, &x);
        let branch = self.mlp.emit(graph, &scoped(scope, "mlp"), &normed);
        graph.op(scope, "Add", &[&x, &branch], &[])
    }
}
