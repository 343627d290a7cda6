//! The data a checkpoint holds, as interpreted from its pickle.

use std::fmt;

use crate::dtype::DType;

/// A tensor converted to `f32`, contiguous in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
    /// The element type it was stored with.
    pub dtype: DType,
}

/// A `module.name` reference found in a pickle. It is never imported or called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    pub module: String,
    pub name: String,
}

impl Global {
    pub(crate) fn is(&self, module: &str, name: &str) -> bool {
        self.module == module && self.name == name
    }

    /// Bytes of text the name holds.
    pub(crate) fn text_len(&self) -> usize {
        self.module.len() + self.name.len()
    }
}

impl fmt::Display for Global {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// An interpreted pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than `i64`: its little-endian two's complement bytes as pickled.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Entries in the order the pickle inserts them (a duplicate key is kept as written).
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Tensor(Tensor),
    /// An inert placeholder for a class or function the pickle names.
    Global(Global),
    /// An instance of an allowed data class, or the state a pickle attached to a placeholder.
    Object {
        global: Global,
        args: Vec<Value>,
        state: Option<Box<Value>>,
    },
}

impl Value {
    /// The value under string `key` of a dict (the last one written, as Python keeps it).
    pub fn get(&self, key: &str) -> Option<&Value> {
        let Value::Dict(entries) = self else {
            return None;
        };
        entries
            .iter()
            .rev()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
            .map(|(_, v)| v)
    }
}
