//! A pickle interpreter (protocols 2 to 5) that builds data and runs nothing.
//!
//! Objects live in an arena and the stack and memo hold indices into it, so
//! that an object stored in the memo before it is filled (as pickle always
//! does for lists and dicts) is the same object later opcodes fill. The
//! interpreter is a flat loop that reads at least one byte per step, so it
//! always ends; every length it reads is checked against the bytes left.

use std::collections::HashMap;

use crate::calls;
use crate::cursor::Cursor;
use crate::dtype::{DType, Layout};
use crate::error::{malformed, ErrorKind};
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

/// A finished pickle: its arena, the id of the unpickled object, and the
/// position just past its STOP opcode.
pub(crate) struct Pickle {
    pub nodes: Vec<Node>,
    pub root: Id,
    pub end: usize,
}

/// Interprets the pickle that starts at `start` in `data`.
pub(crate) fn unpickle(data: &[u8], start: usize) -> Result<Pickle, ErrorKind> {
    let mut vm = Vm {
        input: Cursor::new(data, start),
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = vm.run()?;
    Ok(Pickle {
        nodes: vm.nodes,
        root,
        end: vm.input.pos(),
    })
}

mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const BINUNICODE: u8 = b'X';
    pub const EMPTY_LIST: u8 = b']';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    pub const BYTEARRAY8: u8 = 0x96;
    pub const READONLY_BUFFER: u8 = 0x98;
}

struct Vm<'a> {
    input: Cursor<'a>,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    /// Stack heights at each open MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

impl Vm<'_> {
    fn run(&mut self) -> Result<Id, ErrorKind> {
        loop {
            let opcode = self.input.u8()?;
            if opcode == op::STOP {
                return self.pop();
            }
            self.step(opcode)?;
        }
    }

    fn step(&mut self, opcode: u8) -> Result<(), ErrorKind> {
        match opcode {
            op::PROTO => {
                let version = self.input.u8()?;
                if version > 5 {
                    return Err(ErrorKind::Unsupported(format!("pickle protocol {version}")));
                }
            }
            // Frames only help buffered readers; their contents follow inline.
            op::FRAME => {
                self.input.u64()?;
            }
            op::READONLY_BUFFER => {}
            op::MARK => self.marks.push(self.stack.len()),
            op::POP => {
                self.pop()?;
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => self.stack.push(self.top()?),
            op::NONE => self.push(Node::None),
            op::NEWTRUE => self.push(Node::Bool(true)),
            op::NEWFALSE => self.push(Node::Bool(false)),
            op::BININT => {
                let v = i32::from_le_bytes(self.input.array()?);
                self.push(Node::Int(v.into()));
            }
            op::BININT1 => {
                let v = self.input.u8()?;
                self.push(Node::Int(v.into()));
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(self.input.array()?);
                self.push(Node::Int(v.into()));
            }
            op::LONG1 => {
                let len = self.input.u8()?;
                self.long(len.into())?;
            }
            op::LONG4 => {
                let len = i32::from_le_bytes(self.input.array()?);
                let len = usize::try_from(len).map_err(|_| malformed("negative LONG4 length"))?;
                self.long(len)?;
            }
            op::BINFLOAT => {
                let v = f64::from_be_bytes(self.input.array()?);
                self.push(Node::Float(v));
            }
            op::SHORT_BINUNICODE => {
                let len = self.input.u8()?;
                self.string(len.into())?;
            }
            op::BINUNICODE => {
                let len = self.input.u32()?;
                self.string(len.into())?;
            }
            op::BINUNICODE8 => {
                let len = self.input.u64()?;
                self.string(len)?;
            }
            op::SHORT_BINBYTES => {
                let len = self.input.u8()?;
                self.bytes(len.into())?;
            }
            op::BINBYTES => {
                let len = self.input.u32()?;
                self.bytes(len.into())?;
            }
            op::BINBYTES8 | op::BYTEARRAY8 => {
                let len = self.input.u64()?;
                self.bytes(len)?;
            }
            op::EMPTY_LIST => self.push(Node::List(Vec::new())),
            op::EMPTY_DICT => self.push(Node::Dict(Vec::new())),
            op::EMPTY_TUPLE => self.push(Node::Tuple(Vec::new())),
            op::EMPTY_SET => self.push(Node::Set(Vec::new())),
            op::TUPLE1 => self.tuple_of(1)?,
            op::TUPLE2 => self.tuple_of(2)?,
            op::TUPLE3 => self.tuple_of(3)?,
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push(Node::Tuple(items));
            }
            op::LIST => {
                let items = self.pop_mark()?;
                self.push(Node::List(items));
            }
            op::FROZENSET => {
                let items = self.pop_mark()?;
                self.push(Node::Set(items));
            }
            op::DICT => {
                let items = self.pop_mark()?;
                self.push(Node::Dict(Vec::new()));
                self.set_items(&items)?;
            }
            op::APPEND => {
                let item = self.pop()?;
                self.extend(&[item])?;
            }
            op::APPENDS | op::ADDITEMS => {
                let items = self.pop_mark()?;
                self.extend(&items)?;
            }
            op::SETITEM => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.set_items(&[key, value])?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                self.set_items(&items)?;
            }
            op::BINPUT => {
                let key = self.input.u8()?;
                self.memo.insert(key.into(), self.top()?);
            }
            op::LONG_BINPUT => {
                let key = self.input.u32()?;
                self.memo.insert(key, self.top()?);
            }
            op::MEMOIZE => {
                let key = u32::try_from(self.memo.len()).map_err(|_| malformed("memo overflow"))?;
                self.memo.insert(key, self.top()?);
            }
            op::BINGET => {
                let key = self.input.u8()?;
                self.get(key.into())?;
            }
            op::LONG_BINGET => {
                let key = self.input.u32()?;
                self.get(key)?;
            }
            op::GLOBAL => {
                let module = utf8(self.input.line()?)?;
                let name = utf8(self.input.line()?)?;
                self.push(Node::Global(Box::new(Global { module, name })));
            }
            op::STACK_GLOBAL => {
                let name = self.pop_string()?;
                let module = self.pop_string()?;
                self.push(Node::Global(Box::new(Global { module, name })));
            }
            op::REDUCE | op::NEWOBJ => {
                let args = self.pop()?;
                let callee = self.pop()?;
                let node = calls::call(&self.nodes, callee, args)?;
                self.push(node);
            }
            op::NEWOBJ_EX => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                if !matches!(&self.nodes[kwargs], Node::Dict(d) if d.is_empty()) {
                    return Err(ErrorKind::Unsupported(
                        "keyword arguments to NEWOBJ_EX".into(),
                    ));
                }
                let node = calls::call(&self.nodes, class, args)?;
                self.push(node);
            }
            op::BUILD => {
                let state = self.pop()?;
                self.build(state)?;
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                let storage = calls::persistent_storage(&self.nodes, pid)?;
                self.push(Node::Storage(Box::new(storage)));
            }
            _ => {
                return Err(ErrorKind::Unsupported(format!(
                    "pickle opcode {opcode:#04x}"
                )))
            }
        }
        Ok(())
    }

    fn push(&mut self, node: Node) {
        self.stack.push(self.nodes.len());
        self.nodes.push(node);
    }

    /// Stack height below which the innermost MARK forbids popping.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn top(&self) -> Result<Id, ErrorKind> {
        match self.stack.last() {
            Some(&id) if self.stack.len() > self.floor() => Ok(id),
            _ => Err(malformed("pickle stack underflow")),
        }
    }

    fn pop(&mut self) -> Result<Id, ErrorKind> {
        let id = self.top()?;
        self.stack.pop();
        Ok(id)
    }

    /// Everything pushed since the innermost MARK, which is closed.
    fn pop_mark(&mut self) -> Result<Vec<Id>, ErrorKind> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| malformed("pickle closes a MARK it never opened"))?;
        // `pop` never goes below the mark, so the stack is still at least this high.
        Ok(self.stack.split_off(mark))
    }

    fn pop_string(&mut self) -> Result<String, ErrorKind> {
        let id = self.pop()?;
        match &self.nodes[id] {
            Node::Str(s) => Ok(s.clone()),
            _ => Err(malformed("STACK_GLOBAL needs two strings")),
        }
    }

    fn tuple_of(&mut self, len: usize) -> Result<(), ErrorKind> {
        if self.stack.len() < self.floor() + len {
            return Err(malformed("pickle stack underflow"));
        }
        let items = self.stack.split_off(self.stack.len() - len);
        self.push(Node::Tuple(items));
        Ok(())
    }

    fn get(&mut self, key: u32) -> Result<(), ErrorKind> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| malformed(format!("memo entry {key} read before it is written")))?;
        self.stack.push(id);
        Ok(())
    }

    /// Python's integer pickling: little-endian two's complement of any width.
    fn long(&mut self, len: usize) -> Result<(), ErrorKind> {
        let bytes = self.input.take(len)?;
        let node = if len <= 8 {
            let fill = if bytes.last().is_some_and(|&b| b >= 0x80) {
                0xff
            } else {
                0
            };
            let mut wide = [fill; 8];
            wide[..len].copy_from_slice(bytes);
            Node::Int(i64::from_le_bytes(wide))
        } else {
            Node::BigInt(bytes.to_vec())
        };
        self.push(node);
        Ok(())
    }

    fn string(&mut self, len: u64) -> Result<(), ErrorKind> {
        let text = utf8(self.input.take_u64(len)?)?;
        self.push(Node::Str(text));
        Ok(())
    }

    fn bytes(&mut self, len: u64) -> Result<(), ErrorKind> {
        let bytes = self.input.take_u64(len)?.to_vec();
        self.push(Node::Bytes(bytes));
        Ok(())
    }

    /// APPEND(S) onto a list, ADDITEMS onto a set.
    fn extend(&mut self, items: &[Id]) -> Result<(), ErrorKind> {
        let target = self.top()?;
        match &mut self.nodes[target] {
            Node::List(list) | Node::Set(list) => {
                list.extend_from_slice(items);
                Ok(())
            }
            _ => Err(malformed("APPEND to something that is not a list")),
        }
    }

    /// SETITEM(S) of alternating keys and values onto a dict.
    fn set_items(&mut self, items: &[Id]) -> Result<(), ErrorKind> {
        if !items.len().is_multiple_of(2) {
            return Err(malformed("SETITEMS with a key but no value"));
        }
        let target = self.top()?;
        let Node::Dict(dict) = &mut self.nodes[target] else {
            return Err(malformed("SETITEM on something that is not a dict"));
        };
        dict.extend(items.chunks_exact(2).map(|pair| (pair[0], pair[1])));
        Ok(())
    }

    /// BUILD: `state` is applied to the object on top of the stack.
    fn build(&mut self, state: Id) -> Result<(), ErrorKind> {
        let target = self.top()?;
        let built = match &self.nodes[target] {
            // An OrderedDict's only attribute in a checkpoint is torch's
            // `_metadata` (module versions), which carries no weights.
            Node::Dict(_) => return Ok(()),
            Node::Object(object) if calls::is_ndarray(&object.global) => {
                Node::Tensor(Box::new(calls::numpy_array(&self.nodes, state)?))
            }
            Node::Object(object) => Node::Object(Box::new(Object {
                global: object.global.clone(),
                args: object.args.clone(),
                state: Some(state),
            })),
            // A placeholder may be shared through the memo, so the object
            // made from it is a new node that replaces it only on the stack.
            Node::Global(global) => {
                let object = Node::Object(Box::new(Object {
                    global: (**global).clone(),
                    args: Vec::new(),
                    state: Some(state),
                }));
                self.stack.pop();
                self.push(object);
                return Ok(());
            }
            _ => return Err(malformed("BUILD on an object that takes no state")),
        };
        self.nodes[target] = built;
        Ok(())
    }
}

fn utf8(bytes: &[u8]) -> Result<String, ErrorKind> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed("a pickled string is not UTF-8"))
}
