//! A small builder for an ONNX graph: nodes in execution order, initializers
//! (weights and constants), and the operators every model uses in more than
//! one place (linear layers, LayerNorm, exact GELU, multi-head attention).

use std::collections::HashSet;

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::Tensor;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{AttributeProto, NodeProto, TensorProto};

use crate::layers::LayerNorm;
use crate::weights::HostTensor;

/// Nodes and initializers, named after the module they come from: a node's
/// output is `<module key>/<op>_<index>`, a weight keeps its PyTorch key.
pub(crate) struct Graph {
    pub opset: i64,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    initializer_names: HashSet<String>,
}

/// A node attribute.
pub(crate) enum Attr<'a> {
    Int(&'a str, i64),
    Ints(&'a str, &'a [i64]),
    Float(&'a str, f32),
}

impl Attr<'_> {
    fn proto(&self) -> AttributeProto {
        let mut proto = AttributeProto::new();
        let (name, kind) = match *self {
            Attr::Int(name, value) => {
                proto.i = value;
                (name, AttributeType::INT)
            }
            Attr::Ints(name, values) => {
                proto.ints = values.to_vec();
                (name, AttributeType::INTS)
            }
            Attr::Float(name, value) => {
                proto.f = value;
                (name, AttributeType::FLOAT)
            }
        };
        proto.name = name.to_string();
        proto.type_ = kind.into();
        proto
    }
}

/// `a.b` for a module `b` inside `a`; the top level has the empty key.
pub(crate) fn scoped(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

impl Graph {
    pub fn new(opset: i64) -> Self {
        Self {
            opset,
            nodes: Vec::new(),
            initializers: Vec::new(),
            initializer_names: HashSet::new(),
        }
    }

    /// Adds an `op` node reading `inputs`, with one output; returns its name.
    pub fn op(&mut self, scope: &str, op: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        self.op_outputs(scope, op, inputs, attrs, 1).remove(0)
    }

    /// Adds an `op` node with `count` outputs; returns their names.
    pub fn op_outputs(
        &mut self,
        scope: &str,
        op: &str,
        inputs: &[&str],
        attrs: &[Attr],
        count: usize,
    ) -> Vec<String> {
        let name = format!("{scope}/{op}_{}", self.nodes.len());
        let outputs: Vec<String> = match count {
            1 => vec![name.clone()],
            _ => (0..count).map(|i| format!("{name}:{i}")).collect(),
        };
        let mut node = NodeProto::new();
        node.name = name;
        node.op_type = op.to_string();
        node.input = inputs.iter().map(|s| s.to_string()).collect();
        node.output = outputs.clone();
        node.attribute = attrs.iter().map(Attr::proto).collect();
        self.nodes.push(node);
        outputs
    }

    /// A float initializer in row-major order.
    pub fn weight(&mut self, name: &str, tensor: &HostTensor) -> String {
        let raw = tensor.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, DataType::FLOAT, &tensor.shape, raw)
    }

    pub fn param<const D: usize>(&mut self, name: &str, param: &Param<Tensor<D>>) -> String {
        self.weight(name, &HostTensor::from_data(param.val().into_data()))
    }

    /// A float scalar constant.
    pub fn scalar(&mut self, value: f32) -> String {
        let raw = || value.to_le_bytes().to_vec();
        self.constant(format!("const/{value:e}"), DataType::FLOAT, &[], raw)
    }

    /// A 1-D int64 constant (shapes, axes, split sizes).
    pub fn ints(&mut self, values: &[i64]) -> String {
        let shown: Vec<String> = values.iter().map(i64::to_string).collect();
        let raw = || values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let name = format!("const/[{}]", shown.join(","));
        self.constant(name, DataType::INT64, &[values.len()], raw)
    }

    /// A 0-d int64 constant, e.g. the index of a `Gather` that drops its axis.
    pub fn int_scalar(&mut self, value: i64) -> String {
        let raw = || value.to_le_bytes().to_vec();
        self.constant(format!("const/{value}"), DataType::INT64, &[], raw)
    }

    /// An initializer named after its value, written once and shared by
    /// every node that uses it.
    fn constant(
        &mut self,
        name: String,
        dtype: DataType,
        shape: &[usize],
        raw: impl FnOnce() -> Vec<u8>,
    ) -> String {
        if !self.initializer_names.contains(&name) {
            self.initializer(&name, dtype, shape, raw());
        }
        name
    }

    fn initializer(
        &mut self,
        name: &str,
        dtype: DataType,
        shape: &[usize],
        raw: Vec<u8>,
    ) -> String {
        let mut tensor = TensorProto::new();
        tensor.name = name.to_string();
        tensor.data_type = dtype as i32;
        tensor.dims = shape.iter().map(|&d| d as i64).collect();
        tensor.raw_data = raw;
        self.initializers.push(tensor);
        self.initializer_names.insert(name.to_string());
        name.to_string()
    }

    /// Renames the node output `value` to `name` (the graph's output).
    pub fn rename_output(&mut self, value: &str, name: &str) {
        for output in self.nodes.iter_mut().flat_map(|n| n.output.iter_mut()) {
            if output == value {
                *output = name.to_string();
            }
        }
    }

    pub fn into_parts(self) -> (Vec<NodeProto>, Vec<TensorProto>) {
        (self.nodes, self.initializers)
    }

    /// `x·W + b` for burn's `[in, out]` weight, stored as it is.
    pub fn linear(&mut self, scope: &str, layer: &Linear, x: &str) -> String {
        let weight = self.param(&scoped(scope, "weight"), &layer.weight);
        let product = self.op(scope, "MatMul", &[x, &weight], &[]);
        match &layer.bias {
            Some(bias) => {
                let bias = self.param(&scoped(scope, "bias"), bias);
                self.op(scope, "Add", &[&product, &bias], &[])
            }
            None => product,
        }
    }

    /// LayerNormalization over the last axis (opset 17).
    pub fn layer_norm(&mut self, scope: &str, norm: &LayerNorm, x: &str) -> String {
        let weight = self.param(&scoped(scope, "weight"), &norm.weight);
        let bias = self.param(&scoped(scope, "bias"), &norm.bias);
        self.op(
            scope,
            "LayerNormalization",
            &[x, &weight, &bias],
            &[
                Attr::Int("axis", -1),
                Attr::Float("epsilon", norm.eps as f32),
            ],
        )
    }

    /// Exact GELU, `0.5·x·(1 + erf(x/√2))`, in the form ONNX Runtime fuses
    /// into one kernel.
    pub fn gelu(&mut self, scope: &str, x: &str) -> String {
        let sqrt2 = self.scalar(std::f32::consts::SQRT_2);
        let one = self.scalar(1.0);
        let half = self.scalar(0.5);
        let scaled = self.op(scope, "Div", &[x, &sqrt2], &[]);
        let erf = self.op(scope, "Erf", &[&scaled], &[]);
        let shifted = self.op(scope, "Add", &[&erf, &one], &[]);
        let product = self.op(scope, "Mul", &[x, &shifted], &[]);
        self.op(scope, "Mul", &[&product, &half], &[])
    }

    pub fn transpose(&mut self, scope: &str, x: &str, perm: &[i64]) -> String {
        self.op(scope, "Transpose", &[x], &[Attr::Ints("perm", perm)])
    }

    /// Reshape; a 0 keeps that input dimension (the dynamic batch).
    pub fn reshape(&mut self, scope: &str, x: &str, shape: &[i64]) -> String {
        let shape = self.ints(shape);
        self.op(scope, "Reshape", &[x, &shape], &[])
    }

    /// Splits the last axis of `[B, N, P·width]` into its `P` parts.
    pub fn split_last<const P: usize>(
        &mut self,
        scope: &str,
        x: &str,
        width: usize,
    ) -> [String; P] {
        let sizes = self.ints(&[width as i64; P]);
        let outputs = self.op_outputs(scope, "Split", &[x, &sizes], &[Attr::Int("axis", -1)], P);
        std::array::from_fn(|i| outputs[i].clone())
    }

    /// `[B, N, H·d]` → `[B, H, N, d]`.
    pub fn split_heads(&mut self, scope: &str, x: &str, heads: usize, width: usize) -> String {
        let x = self.reshape(scope, x, &[0, 0, heads as i64, (width / heads) as i64]);
        self.transpose(scope, &x, &[0, 2, 1, 3])
    }

    /// `[B, H, N, d]` → `[B, N, H·d]`.
    pub fn merge_heads(&mut self, scope: &str, x: &str, width: usize) -> String {
        let x = self.transpose(scope, x, &[0, 2, 1, 3]);
        self.reshape(scope, &x, &[0, 0, width as i64])
    }

    /// Multi-head softmax attention of `[B, N, C]` queries, keys and values,
    /// heads merged: `softmax(q·scale @ kᵀ) @ v` per head.
    pub fn softmax_attention(
        &mut self,
        scope: &str,
        [q, k, v]: [&str; 3],
        heads: usize,
        width: usize,
        scale: f64,
    ) -> String {
        let q = self.split_heads(scope, q, heads, width);
        let v = self.split_heads(scope, v, heads, width);
        // `[B, N, H, d]` → `[B, H, d, N]`: kᵀ per head in one step.
        let k = self.reshape(scope, k, &[0, 0, heads as i64, (width / heads) as i64]);
        let k_t = self.transpose(scope, &k, &[0, 2, 3, 1]);
        let scale = self.scalar(scale as f32);
        let q = self.op(scope, "Mul", &[&q, &scale], &[]);
        let scores = self.op(scope, "MatMul", &[&q, &k_t], &[]);
        let weights = self.op(scope, "Softmax", &[&scores], &[Attr::Int("axis", -1)]);
        let heads_out = self.op(scope, "MatMul", &[&weights, &v], &[]);
        self.merge_heads(scope, &heads_out, width)
    }
}
