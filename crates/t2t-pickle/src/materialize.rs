//! Turns an interpreted pickle (an arena of nodes that may share or even
//! contain each other) into an owned [`Value`] tree, reading tensor data.
//!
//! Sharing means a small pickle can describe an exponentially large tree, and
//! a cycle an infinite one, so the walk is bounded in depth and every value it
//! produces is charged to a byte allowance set from the size of the file.

use std::borrow::Cow;
use std::mem::size_of;

use crate::budget::Allowance;
use crate::dtype::{gather, Layout};
use crate::error::{malformed, preview, ErrorKind};
use crate::nodes::{Id, Node, TensorData, TensorRef};
use crate::value::{Global, Tensor, Value};

/// Deeper than any real checkpoint nests, shallow enough for any thread's stack.
const MAX_DEPTH: usize = 100;

/// Where torch storages keep their bytes (a zip entry, a legacy stream).
pub(crate) trait Storages {
    /// The first `len` bytes of storage `key`, little-endian.
    fn read(&mut self, key: &str, len: usize) -> Result<Cow<'_, [u8]>, ErrorKind>;
}

/// For pickles that cannot refer to storages (Paddle's plain pickles).
pub(crate) struct NoStorages;

impl Storages for NoStorages {
    fn read(&mut self, key: &str, _len: usize) -> Result<Cow<'_, [u8]>, ErrorKind> {
        Err(malformed(format!(
            "a plain pickle refers to torch storage {:?}",
            preview(key)
        )))
    }
}

pub(crate) struct Materializer<'s> {
    storages: &'s mut dyn Storages,
    /// Bytes that may still be produced.
    output: &'s mut Allowance,
}

impl<'s> Materializer<'s> {
    pub fn new(storages: &'s mut dyn Storages, output: &'s mut Allowance) -> Self {
        Self { storages, output }
    }

    pub fn value(&mut self, nodes: &[Node], root: Id) -> Result<Value, ErrorKind> {
        self.convert(nodes, root, 0, None)
    }

    fn charge(&mut self, bytes: usize) -> Result<(), ErrorKind> {
        self.output.charge(bytes)
    }

    /// Charges the slots of a container before they are allocated.
    fn charge_slots(&mut self, count: usize) -> Result<(), ErrorKind> {
        self.charge(count.saturating_mul(size_of::<Value>()))
    }

    /// `owner` is the object whose arguments or state are being converted:
    /// tensors found there are refused, since only the known containers may
    /// carry weights.
    fn convert(
        &mut self,
        nodes: &[Node],
        id: Id,
        depth: usize,
        owner: Option<&Global>,
    ) -> Result<Value, ErrorKind> {
        if depth > MAX_DEPTH {
            return Err(ErrorKind::TooLarge(format!(
                "nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        let depth = depth + 1;
        Ok(match &nodes[id] {
            Node::None => Value::None,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Int(*i),
            Node::Float(f) => Value::Float(*f),
            Node::BigInt(bytes) => {
                self.charge(bytes.len())?;
                Value::BigInt(bytes.clone())
            }
            Node::Str(s) => {
                self.charge(s.len())?;
                Value::Str(s.clone())
            }
            Node::Bytes(bytes) => {
                self.charge(bytes.len())?;
                Value::Bytes(bytes.clone())
            }
            Node::List(items) => Value::List(self.convert_all(nodes, items, depth, owner)?),
            Node::Tuple(items) => Value::Tuple(self.convert_all(nodes, items, depth, owner)?),
            Node::Set(items) => Value::Set(self.convert_all(nodes, items, depth, owner)?),
            Node::Dict(pairs) => {
                self.charge_slots(2 * pairs.len())?;
                let mut entries = Vec::with_capacity(pairs.len());
                for &(key, value) in pairs {
                    let key = self.convert(nodes, key, depth, owner)?;
                    entries.push((key, self.convert(nodes, value, depth, owner)?));
                }
                Value::Dict(entries)
            }
            Node::Global(global) => {
                self.charge(global.text_len())?;
                Value::Global((**global).clone())
            }
            Node::Object(object) => {
                self.charge(object.global.text_len())?;
                let owner = Some(&object.global);
                let state = match object.state {
                    Some(state) => Some(Box::new(self.convert(nodes, state, depth, owner)?)),
                    None => None,
                };
                Value::Object {
                    global: object.global.clone(),
                    args: self.convert_all(nodes, &object.args, depth, owner)?,
                    state,
                }
            }
            // A bare storage reads as the flat tensor of its elements.
            Node::Storage(storage) => self.tensor(
                &TensorRef {
                    layout: Layout::dense(vec![storage.numel], false),
                    data: TensorData::Storage((**storage).clone()),
                },
                owner,
            )?,
            Node::Tensor(tensor) => self.tensor(tensor, owner)?,
        })
    }

    fn convert_all(
        &mut self,
        nodes: &[Node],
        items: &[Id],
        depth: usize,
        owner: Option<&Global>,
    ) -> Result<Vec<Value>, ErrorKind> {
        self.charge_slots(items.len())?;
        items
            .iter()
            .map(|&item| self.convert(nodes, item, depth, owner))
            .collect()
    }

    fn tensor(&mut self, tensor: &TensorRef, owner: Option<&Global>) -> Result<Value, ErrorKind> {
        if let Some(owner) = owner {
            return Err(ErrorKind::TensorInObject(owner.clone()));
        }
        let numel = tensor.layout.numel().unwrap_or(usize::MAX);
        self.charge(numel.saturating_mul(size_of::<f32>()))?;
        self.charge(tensor.layout.shape.len().saturating_mul(size_of::<usize>()))?;
        let (values, dtype) = match &tensor.data {
            TensorData::Storage(storage) => {
                let len = storage.numel.saturating_mul(storage.dtype.size());
                self.charge(len)?;
                let bytes = self.storages.read(&storage.key, len)?;
                (
                    gather(&bytes, storage.dtype, &tensor.layout)?,
                    storage.dtype,
                )
            }
            TensorData::Inline { dtype, bytes } => (gather(bytes, *dtype, &tensor.layout)?, *dtype),
        };
        Ok(Value::Tensor(Tensor {
            shape: tensor.layout.shape.clone(),
            values,
            dtype,
        }))
    }
}
