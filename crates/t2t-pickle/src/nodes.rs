//! The objects a pickle is interpreted into: an arena of nodes, the data
//! classes and tensors among them. The interpreter (`vm`) makes them, the
//! allowed calls (`calls`) build them, and `materialize` reads them.

use crate::dtype::{DType, Layout};
use crate::value::Global;

/// Index of a node in the arena.
pub(crate) type Id = usize;

/// An interpreted object. Large variants are boxed to keep the arena dense.
#[derive(Debug)]
pub(crate) enum Node {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Global(Box<Global>),
    Object(Box<Object>),
    Storage(Box<StorageRef>),
    Tensor(Box<TensorRef>),
}

impl Node {
    /// What the node holds besides itself: (references to other nodes,
    /// bytes of data), as charged to the budget when it is made.
    pub(crate) fn contents(&self) -> (usize, usize) {
        match self {
            Node::None | Node::Bool(_) | Node::Int(_) | Node::Float(_) => (0, 0),
            Node::BigInt(bytes) | Node::Bytes(bytes) => (0, bytes.len()),
            Node::Str(text) => (0, text.len()),
            Node::List(items) | Node::Tuple(items) | Node::Set(items) => (items.len(), 0),
            Node::Dict(pairs) => (2 * pairs.len(), 0),
            Node::Global(global) => (0, global.text_len()),
            Node::Object(object) => (
                object.args.len() + usize::from(object.state.is_some()),
                object.global.text_len(),
            ),
            Node::Storage(storage) => (0, storage.key.len()),
            Node::Tensor(tensor) => (0, tensor.data_len()),
        }
    }
}

/// An instance of an allowed data class, or state attached to a placeholder.
#[derive(Debug)]
pub(crate) struct Object {
    pub global: Global,
    pub args: Vec<Id>,
    pub state: Option<Id>,
}

/// A torch storage named by a persistent id; its bytes stay in the container
/// until the tree is materialized.
#[derive(Debug, Clone)]
pub(crate) struct StorageRef {
    pub key: String,
    pub dtype: DType,
    pub numel: usize,
}

/// Where a tensor's elements come from.
#[derive(Debug, Clone)]
pub(crate) enum TensorData {
    Storage(StorageRef),
    /// A numpy array's little-endian bytes, carried inside the pickle.
    Inline {
        dtype: DType,
        bytes: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct TensorRef {
    pub data: TensorData,
    pub layout: Layout,
}

impl TensorRef {
    /// Bytes the tensor holds: its inline data or storage key, and its layout.
    fn data_len(&self) -> usize {
        let data = match &self.data {
            TensorData::Storage(storage) => storage.key.len(),
            TensorData::Inline { bytes, .. } => bytes.len(),
        };
        let layout = self.layout.shape.len() + self.layout.stride.len();
        data.saturating_add(layout.saturating_mul(std::mem::size_of::<usize>()))
    }
}
