//! A pickle interpreter (protocols 2 to 5) that builds data and runs nothing.
//!
//! Objects live in an arena and the stack and memo hold indices into it, so
//! that an object stored in the memo before it is filled (as pickle always
//! does for lists and dicts) is the same object later opcodes fill. The
//! interpreter is a flat loop that reads at least one byte per step, so it
//! always ends; every length it reads is checked against the bytes left.
//! Everything it makes, places, copies or moves is charged to a [`Budget`],
//! so that its memory and time stay proportional to the size of the file.

use std::collections::HashMap;

use crate::budget::Budget;
use crate::calls;
use crate::cursor::Cursor;
use crate::error::{malformed, ErrorKind};
use crate::nodes::{Id, Node, Object};
use crate::value::Global;

/// A finished pickle: its arena, the id of the unpickled object, and the
/// position just past its STOP opcode.
pub(crate) struct Pickle {
    pub nodes: Vec<Node>,
    pub root: Id,
    pub end: usize,
}

/// Interprets the pickle that starts at `start` in `data`, charging `budget`.
pub(crate) fn unpickle(
    data: &[u8],
    start: usize,
    budget: &mut Budget,
) -> Result<Pickle, ErrorKind> {
    let mut vm = Vm {
        input: Cursor::new(data, start),
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        budget,
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

struct Vm<'a, 'b> {
    input: Cursor<'a>,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    /// Stack heights at each open MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
    budget: &'b mut Budget,
}

impl Vm<'_, '_> {
    fn run(&mut self) -> Result<Id, ErrorKind> {
        loop {
            let opcode = self.input.u8()?;
            self.budget.work.charge(1)?;
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
            op::MARK => {
                self.budget.objects.charge(1)?;
                self.marks.push(self.stack.len());
            }
            op::POP => {
                self.pop()?;
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => self.place_on_stack(self.top()?)?,
            op::NONE => self.push(Node::None)?,
            op::NEWTRUE => self.push(Node::Bool(true))?,
            op::NEWFALSE => self.push(Node::Bool(false))?,
            op::BININT => {
                let v = i32::from_le_bytes(self.input.array()?);
                self.push(Node::Int(v.into()))?;
            }
            op::BININT1 => {
                let v = self.input.u8()?;
                self.push(Node::Int(v.into()))?;
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(self.input.array()?);
                self.push(Node::Int(v.into()))?;
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
                self.push(Node::Float(v))?;
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
            op::EMPTY_LIST => self.push(Node::List(Vec::new()))?,
            op::EMPTY_DICT => self.push(Node::Dict(Vec::new()))?,
            op::EMPTY_TUPLE => self.push(Node::Tuple(Vec::new()))?,
            op::EMPTY_SET => self.push(Node::Set(Vec::new()))?,
            op::TUPLE1 => self.tuple_of(1)?,
            op::TUPLE2 => self.tuple_of(2)?,
            op::TUPLE3 => self.tuple_of(3)?,
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push(Node::Tuple(items))?;
            }
            op::LIST => {
                let items = self.pop_mark()?;
                self.push(Node::List(items))?;
            }
            op::FROZENSET => {
                let items = self.pop_mark()?;
                self.push(Node::Set(items))?;
            }
            op::DICT => {
                let items = self.pop_mark()?;
                self.push(Node::Dict(Vec::new()))?;
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
                self.memoize(key.into())?;
            }
            op::LONG_BINPUT => {
                let key = self.input.u32()?;
                self.memoize(key)?;
            }
            op::MEMOIZE => {
                let key = u32::try_from(self.memo.len()).map_err(|_| malformed("memo overflow"))?;
                self.memoize(key)?;
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
                self.push(Node::Global(Box::new(Global { module, name })))?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop_string()?;
                let module = self.pop_string()?;
                self.push(Node::Global(Box::new(Global { module, name })))?;
            }
            op::REDUCE | op::NEWOBJ => {
                let args = self.pop()?;
                let callee = self.pop()?;
                let node = calls::call(&self.nodes, callee, args)?;
                self.push(node)?;
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
                self.push(node)?;
            }
            op::BUILD => {
                let state = self.pop()?;
                self.build(state)?;
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                let storage = calls::persistent_storage(&self.nodes, pid)?;
                self.push(Node::Storage(Box::new(storage)))?;
            }
            _ => {
                return Err(ErrorKind::Unsupported(format!(
                    "pickle opcode {opcode:#04x}"
                )))
            }
        }
        Ok(())
    }

    /// Makes `node` and pushes it, charging it and what it holds.
    fn push(&mut self, node: Node) -> Result<(), ErrorKind> {
        self.charge_contents(&node)?;
        self.budget.objects.charge(1)?;
        self.stack.push(self.nodes.len());
        self.nodes.push(node);
        Ok(())
    }

    fn charge_contents(&mut self, node: &Node) -> Result<(), ErrorKind> {
        let (references, bytes) = node.contents();
        self.budget.objects.charge(references)?;
        self.budget.work.charge(references)?;
        self.budget.bytes.charge(bytes)
    }

    /// Pushes another reference to an existing object.
    fn place_on_stack(&mut self, id: Id) -> Result<(), ErrorKind> {
        self.budget.objects.charge(1)?;
        self.stack.push(id);
        Ok(())
    }

    fn memoize(&mut self, key: u32) -> Result<(), ErrorKind> {
        self.budget.objects.charge(1)?;
        self.memo.insert(key, self.top()?);
        Ok(())
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
        self.budget.work.charge(self.stack.len() - mark)?;
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
        self.push(Node::Tuple(items))
    }

    fn get(&mut self, key: u32) -> Result<(), ErrorKind> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| malformed(format!("memo entry {key} read before it is written")))?;
        self.place_on_stack(id)
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
        self.push(node)
    }

    fn string(&mut self, len: u64) -> Result<(), ErrorKind> {
        let text = utf8(self.input.take_u64(len)?)?;
        self.push(Node::Str(text))
    }

    fn bytes(&mut self, len: u64) -> Result<(), ErrorKind> {
        let bytes = self.input.take_u64(len)?.to_vec();
        self.push(Node::Bytes(bytes))
    }

    /// APPEND(S) onto a list, ADDITEMS onto a set.
    fn extend(&mut self, items: &[Id]) -> Result<(), ErrorKind> {
        self.budget.objects.charge(items.len())?;
        self.budget.work.charge(items.len())?;
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
        self.budget.objects.charge(items.len())?;
        self.budget.work.charge(items.len())?;
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
        if let Node::Object(object) = &self.nodes[target] {
            if calls::is_ndarray(&object.global) {
                let tensor = Node::Tensor(Box::new(calls::numpy_array(&self.nodes, state)?));
                self.charge_contents(&tensor)?;
                self.nodes[target] = tensor;
                return Ok(());
            }
        }
        match &mut self.nodes[target] {
            // An OrderedDict's only attribute in a checkpoint is torch's
            // `_metadata` (module versions), which carries no weights.
            Node::Dict(_) => Ok(()),
            // Like Python, the state goes into the object itself (which the
            // memo may share), in constant time however many arguments the
            // object holds; a later BUILD replaces it.
            Node::Object(object) => {
                object.state = Some(state);
                self.budget.objects.charge(1)
            }
            // A placeholder may be shared through the memo, so the object
            // made from it is a new node that replaces it only on the stack.
            Node::Global(global) => {
                let object = Node::Object(Box::new(Object {
                    global: (**global).clone(),
                    args: Vec::new(),
                    state: Some(state),
                }));
                self.stack.pop();
                self.push(object)
            }
            _ => Err(malformed("BUILD on an object that takes no state")),
        }
    }
}

fn utf8(bytes: &[u8]) -> Result<String, ErrorKind> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed("a pickled string is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Interprets `body` (after PROTO 2, before STOP) with the budget of a
    /// file of `file_len` bytes; returns the outcome and the budget as spent.
    fn interpret(body: &[u8], file_len: usize) -> (Result<Pickle, ErrorKind>, Budget) {
        let data = [&[op::PROTO, 2][..], body, &[op::STOP]].concat();
        let mut budget = Budget::for_file(file_len as u64);
        let outcome = unpickle(&data, 0, &mut budget);
        (outcome, budget)
    }

    /// MARK, `count` references to one None, TUPLE: a `count`-item tuple.
    fn big_tuple(count: usize) -> Vec<u8> {
        let mut body = vec![op::MARK, op::NONE];
        body.resize(count + 1, op::DUP);
        body.push(op::TUPLE);
        body
    }

    fn namespace() -> Vec<u8> {
        [&[op::GLOBAL][..], b"argparse\nNamespace\n"].concat()
    }

    fn assert_too_large(outcome: Result<Pickle, ErrorKind>) {
        match outcome {
            Err(ErrorKind::TooLarge(message)) => assert!(message.contains("needs more than")),
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn a_long_stream_of_small_objects_is_refused_at_the_object_limit() {
        let body = vec![op::EMPTY_LIST; 8 << 20];
        let (outcome, budget) = interpret(&body, 64 << 10);
        assert_too_large(outcome);
        assert!(budget.objects.used() <= budget.objects.limit() + 1);
        assert!(budget.work.used() < 2 << 20, "{}", budget.work.used());
    }

    #[test]
    fn a_memoised_tuple_counts_each_time_a_call_receives_it() {
        let mut body = namespace();
        body.extend([op::BINPUT, 0]);
        body.extend(big_tuple(100_000));
        body.extend([op::BINPUT, 1, op::MARK]);
        for _ in 0..300 {
            body.extend([op::BINGET, 0, op::BINGET, 1, op::REDUCE]);
        }
        body.push(op::LIST);
        let (outcome, budget) = interpret(&body, body.len());
        assert_too_large(outcome);
        // Refused at the call that crosses the limit, not after all 300.
        assert!(budget.objects.used() <= budget.objects.limit() + 100_000);
    }

    #[test]
    fn build_takes_constant_time_however_many_arguments_the_object_has() {
        let mut body = namespace();
        body.extend(big_tuple(200_000));
        body.push(op::REDUCE);
        for _ in 0..100_000 {
            body.extend([op::EMPTY_DICT, op::BUILD]);
        }
        let (outcome, budget) = interpret(&body, body.len());
        let pickle = outcome.unwrap();
        let Node::Object(object) = &pickle.nodes[pickle.root] else {
            panic!("not an object");
        };
        assert_eq!(object.args.len(), 200_000);
        // Linear: a few steps per opcode and per argument, where copying the
        // arguments at each BUILD would take 100,000 * 200,000.
        assert!(budget.work.used() < 2_000_000, "{}", budget.work.used());
    }

    #[test]
    fn copies_of_memoised_strings_are_charged_as_bytes() {
        let mut body = Vec::new();
        for key in [0, 1] {
            body.push(op::BINUNICODE);
            body.extend((1u32 << 20).to_le_bytes());
            body.extend(vec![b'a'; 1 << 20]);
            body.extend([op::BINPUT, key, op::POP]);
        }
        body.push(op::MARK);
        for _ in 0..20_000 {
            body.extend([op::BINGET, 0, op::BINGET, 1, op::STACK_GLOBAL]);
        }
        body.push(op::LIST);
        let (outcome, budget) = interpret(&body, 2400);
        assert_too_large(outcome);
        assert!(budget.bytes.used() <= budget.bytes.limit() + (2 << 20));
    }
}
