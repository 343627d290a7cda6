//! Export to ONNX, for serving with ONNX Runtime, TensorRT or OpenVINO.
//!
//! The graph is written from the model's own modules and weights, one file
//! per model family as in [`crate::models`], each module's graph following
//! its forward pass in evaluation mode. The input `pixel_values`
//! `[batch, C, H, W]` (normalised RGB) has a dynamic batch dimension; the
//! output is `logits` `[batch, classes]`. The evaluation transform (mean,
//! std, crop fraction, interpolation) and, for 1000-class heads, the
//! ImageNet class names travel in the model's `metadata_props`, so that the
//! preprocessing can be built from the file alone.

mod graph;
mod layers;
mod t2t_vit;
mod vit;

use std::ops::RangeInclusive;

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto::{self, Tensor as TensorType};
use onnx_protobuf::{
    GraphProto, Message, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};

use self::graph::{scoped, Attr, Graph};
use self::layers::Emit;
use crate::models::{Backbone, Encoder, Model};
use crate::registry::{imagenet_class_names, ModelConfig, ModelSpec};
use crate::ModelError;

pub const INPUT: &str = "pixel_values";
pub const OUTPUT: &str = "logits";
/// LayerNormalization exists from opset 17; every operator used here keeps
/// its meaning up to 21.
pub const OPSETS: RangeInclusive<i64> = 17..=21;
/// The name of the dynamic batch dimension.
const BATCH: &str = "batch";

/// Fails with the reason when `config` cannot be exported at `opset`.
pub fn check_exportable(config: &ModelConfig, opset: i64) -> Result<(), ModelError> {
    if !OPSETS.contains(&opset) {
        return Err(ModelError::Export(format!(
            "opset {opset} is not supported (LayerNormalization needs 17; supported: {} to {})",
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    if let ModelConfig::T2tVit(c) = config {
        let ablation = match c.backbone {
            Backbone::Ghost => "the ghost ablation",
            Backbone::Dense { .. } => "the dense ablation",
            Backbone::Standard | Backbone::SqueezeExcite => return Ok(()),
        };
        return Err(ModelError::Export(format!(
            "{ablation} of the paper's design study is left out: it has no released weights \
             and no reference outputs to verify an export against"
        )));
    }
    Ok(())
}

/// The serialised ONNX model of `model`, built as `spec` describes;
/// `weights` says where its weights came from (kept in the file's doc string).
pub fn export(
    spec: &ModelSpec,
    model: &Model,
    opset: i64,
    weights: &str,
) -> Result<Vec<u8>, ModelError> {
    check_exportable(&spec.config, opset)?;
    let mut graph = Graph::new(opset);
    let (logits, outputs) = match (model, &spec.config) {
        (Model::T2tVit(m), ModelConfig::T2tVit(c)) => (
            t2t_vit::emit(&mut graph, m, c, INPUT),
            output_width(&m.encoder),
        ),
        (Model::Vit(m), ModelConfig::Vit(_)) => {
            (vit::emit(&mut graph, m, INPUT), output_width(&m.encoder))
        }
        (Model::Fvit(m), ModelConfig::Vit(_)) => {
            (vit::emit(&mut graph, m, INPUT), output_width(&m.encoder))
        }
        _ => {
            return Err(ModelError::Export(format!(
                "the model does not match the configuration of {}",
                spec.name
            )))
        }
    };
    graph.rename_output(&logits, OUTPUT);
    let (in_chans, size) = match &spec.config {
        ModelConfig::T2tVit(c) => (c.in_chans, c.img_size),
        ModelConfig::Vit(c) => (c.in_chans, c.img_size),
    };
    let (nodes, initializers) = graph.into_parts();
    let mut onnx_graph = GraphProto::new();
    onnx_graph.name = spec.name.to_string();
    onnx_graph.node = nodes;
    onnx_graph.initializer = initializers;
    onnx_graph.input = vec![value_info(
        INPUT,
        &[None, Some(in_chans), Some(size), Some(size)],
    )];
    onnx_graph.output = vec![value_info(OUTPUT, &[None, Some(outputs)])];

    let mut opset_import = OperatorSetIdProto::new();
    opset_import.version = opset;
    let mut proto = ModelProto::new();
    proto.ir_version = ir_version(opset);
    proto.opset_import = vec![opset_import];
    proto.producer_name = "t2t".to_string();
    proto.producer_version = env!("CARGO_PKG_VERSION").to_string();
    proto.doc_string = format!("{} with weights from {weights}", spec.name);
    proto.metadata_props = metadata(spec)
        .into_iter()
        .map(|(key, value)| {
            let mut entry = StringStringEntryProto::new();
            entry.key = key.to_string();
            entry.value = value;
            entry
        })
        .collect();
    proto.graph = Some(onnx_graph).into();
    proto
        .write_to_bytes()
        .map_err(|e| ModelError::Export(format!("cannot serialise the graph: {e}")))
}

/// Classes of the head, or the feature width of a model without one.
fn output_width<L>(encoder: &Encoder<L>) -> usize {
    match &encoder.head {
        Some(head) => head.weight.lazy_shape().dims::<2>()[1],
        None => encoder.norm.width(),
    }
}

/// The newest IR version that each opset's release of ONNX wrote.
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=18 => 8,
        19 | 20 => 9,
        _ => 10,
    }
}

/// A float tensor's name and shape; `None` is the dynamic batch dimension.
fn value_info(name: &str, shape: &[Option<usize>]) -> ValueInfoProto {
    let dims = shape
        .iter()
        .map(|d| {
            let mut dim = Dimension::new();
            dim.value = Some(match d {
                Some(size) => dimension::Value::DimValue(*size as i64),
                None => dimension::Value::DimParam(BATCH.to_string()),
            });
            dim
        })
        .collect();
    let mut tensor_shape = TensorShapeProto::new();
    tensor_shape.dim = dims;
    let mut tensor = TensorType::new();
    tensor.elem_type = DataType::FLOAT as i32;
    tensor.shape = Some(tensor_shape).into();
    let mut value_type = TypeProto::new();
    value_type.value = Some(type_proto::Value::TensorType(tensor));
    let mut info = ValueInfoProto::new();
    info.name = name.to_string();
    info.type_ = Some(value_type).into();
    info
}

/// The evaluation transform and class names: JSON values under plain keys.
fn metadata(spec: &ModelSpec) -> Vec<(&'static str, String)> {
    let data = &spec.data;
    let mut entries = vec![
        ("model", spec.name.to_string()),
        ("img_size", spec.config.img_size().to_string()),
        (
            "input",
            format!(
                "{INPUT}: float32 [batch, 3, H, W], RGB scaled to [0, 1], then (x - mean) / std"
            ),
        ),
        ("mean", json_floats(&data.mean)),
        ("std", json_floats(&data.std)),
        ("crop_pct", data.crop_pct.to_string()),
        ("interpolation", data.interpolation.name().to_string()),
    ];
    if spec.config.num_classes() == 1000 {
        let names = serde_json::to_string(&imagenet_class_names()).expect("strings serialise");
        entries.push(("class_names", names));
    }
    entries
}

fn json_floats(values: &[f64]) -> String {
    serde_json::to_string(values).expect("finite floats serialise")
}

impl<L: Emit> Emit for Encoder<L> {
    /// `[cls] + pos`, the blocks, the norm, and the head on token 0.
    fn emit(&self, graph: &mut Graph, scope: &str, tokens: &str) -> String {
        let key = |name: &str| scoped(scope, name);
        // The class token, broadcast to `[B, 1, D]` for the dynamic batch.
        let batch = graph.op(
            scope,
            "Shape",
            &[tokens],
            &[Attr::Int("start", 0), Attr::Int("end", 1)],
        );
        let ones = graph.ints(&[1, 1]);
        let cls_shape = graph.op(scope, "Concat", &[&batch, &ones], &[Attr::Int("axis", 0)]);
        let cls = graph.param(&key("cls_token"), &self.cls_token);
        let cls = graph.op(scope, "Expand", &[&cls, &cls_shape], &[]);
        let x = graph.op(scope, "Concat", &[&cls, tokens], &[Attr::Int("axis", 1)]);
        let pos_embed = graph.param(&key("pos_embed"), &self.pos_embed);
        let mut x = graph.op(scope, "Add", &[&x, &pos_embed], &[]);
        for (index, block) in self.blocks.iter().enumerate() {
            x = block.emit(graph, &key(&format!("blocks.{index}")), &x);
        }
        let x = graph.layer_norm(&key("norm"), &self.norm, &x);
        let first = graph.int_scalar(0);
        let features = graph.op(scope, "Gather", &[&x, &first], &[Attr::Int("axis", 1)]);
        match &self.head {
            Some(head) => graph.linear(&key("head"), head, &features),
            None => features,
        }
    }
}
