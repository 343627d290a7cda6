//! The only callables a checkpoint may invoke while loading: torch's tensor
//! rebuilders, numpy's array reconstruction and a few plain data classes,
//! each reimplemented here as a transformation of data. Calling any other
//! global is refused, so nothing a file names is ever executed.

use crate::dtype::{DType, Layout};
use crate::error::{malformed, preview, ErrorKind};
use crate::nodes::{Id, Node, Object, StorageRef, TensorData, TensorRef};
use crate::value::Global;

/// The node a REDUCE or NEWOBJ of `callee` with the tuple `args` produces.
pub(crate) fn call(nodes: &[Node], callee: Id, args: Id) -> Result<Node, ErrorKind> {
    let Node::Global(global) = &nodes[callee] else {
        return Err(malformed("the pickle calls something that is not a global"));
    };
    let args = tuple(nodes, args)?;
    match (global.module.as_str(), global.name.as_str()) {
        ("collections", "OrderedDict") => ordered_dict(args),
        ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2") => rebuild_tensor(nodes, args),
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            rebuild_parameter(nodes, args)
        }
        ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
            reconstruct(nodes, args)
        }
        ("_codecs", "encode") => latin1(nodes, args),
        // Plain data classes: kept as inert objects holding their arguments.
        ("argparse", "Namespace") | ("numpy", "dtype") => Ok(Node::Object(Box::new(Object {
            global: (**global).clone(),
            args: args.to_vec(),
            state: None,
        }))),
        _ => Err(ErrorKind::Refused((**global).clone())),
    }
}

/// The storage a BINPERSID names: `('storage', storage_type, key, location,
/// numel)`, plus a trailing view field (always None) in the legacy format.
pub(crate) fn persistent_storage(nodes: &[Node], pid: Id) -> Result<StorageRef, ErrorKind> {
    let [kind, storage_type, key, _location, numel, rest @ ..] = tuple(nodes, pid)? else {
        return Err(malformed("persistent id is not a storage tuple"));
    };
    let kind = string(nodes, *kind)?;
    if kind != "storage" {
        return Err(ErrorKind::Unsupported(format!(
            "persistent id of kind {:?}",
            preview(kind)
        )));
    }
    if rest.iter().any(|&view| !matches!(nodes[view], Node::None)) {
        return Err(ErrorKind::Unsupported("legacy storage views".into()));
    }
    let Node::Global(class) = &nodes[*storage_type] else {
        return Err(malformed("storage type is not a global"));
    };
    Ok(StorageRef {
        key: string(nodes, *key)?.to_owned(),
        dtype: storage_dtype(class)?,
        numel: index(nodes, *numel)?,
    })
}

/// Whether `global` is the class `numpy.core.multiarray._reconstruct` makes.
pub(crate) fn is_ndarray(global: &Global) -> bool {
    global.is("numpy", "ndarray")
}

/// The tensor a BUILD makes of a reconstructed ndarray, from the state
/// `(version, shape, dtype, is_fortran, raw_bytes)`; numpy also accepts the
/// state without its version.
pub(crate) fn numpy_array(nodes: &[Node], state: Id) -> Result<TensorRef, ErrorKind> {
    let fields = tuple(nodes, state)?;
    let fields = if fields.len() == 5 {
        &fields[1..]
    } else {
        fields
    };
    let [shape, dtype, fortran, data] = fields else {
        return Err(malformed(
            "numpy array state is not (shape, dtype, fortran, data)",
        ));
    };
    let dtype = numpy_dtype(nodes, *dtype)?;
    let Node::Bool(fortran) = nodes[*fortran] else {
        return Err(malformed("numpy array fortran flag is not a bool"));
    };
    let Node::Bytes(bytes) = &nodes[*data] else {
        return Err(ErrorKind::Unsupported(
            "numpy array without raw data (object dtype?)".into(),
        ));
    };
    let layout = Layout::dense(indices(nodes, *shape)?, fortran);
    let expected = layout.numel().and_then(|n| n.checked_mul(dtype.size()));
    if expected != Some(bytes.len()) {
        return Err(malformed("numpy array data does not match its shape"));
    }
    Ok(TensorRef {
        data: TensorData::Inline {
            dtype,
            bytes: bytes.clone(),
        },
        layout,
    })
}

fn ordered_dict(args: &[Id]) -> Result<Node, ErrorKind> {
    // Pickle fills the dict with SETITEMS afterwards; only the empty call appears.
    if !args.is_empty() {
        return Err(ErrorKind::Unsupported(
            "OrderedDict built from arguments".into(),
        ));
    }
    Ok(Node::Dict(Vec::new()))
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
/// backward_hooks[, metadata])` and the older `_rebuild_tensor(storage,
/// offset, size, stride)`; gradients and hooks mean nothing to weights.
fn rebuild_tensor(nodes: &[Node], args: &[Id]) -> Result<Node, ErrorKind> {
    let [storage, offset, size, stride, ..] = args else {
        return Err(malformed(
            "_rebuild_tensor needs storage, offset, size and stride",
        ));
    };
    let Node::Storage(storage) = &nodes[*storage] else {
        return Err(malformed(
            "tensor rebuilt from something that is not a storage",
        ));
    };
    Ok(Node::Tensor(Box::new(TensorRef {
        data: TensorData::Storage((**storage).clone()),
        layout: Layout {
            offset: index(nodes, *offset)?,
            shape: indices(nodes, *size)?,
            stride: indices(nodes, *stride)?,
        },
    })))
}

/// `_rebuild_parameter(data, requires_grad, backward_hooks[, state])`: a
/// Parameter is its tensor.
fn rebuild_parameter(nodes: &[Node], args: &[Id]) -> Result<Node, ErrorKind> {
    match args.first().map(|&data| &nodes[data]) {
        Some(Node::Tensor(tensor)) => Ok(Node::Tensor(tensor.clone())),
        _ => Err(malformed(
            "_rebuild_parameter of something that is not a tensor",
        )),
    }
}

/// `_reconstruct(numpy.ndarray, (0,), b'b')` makes an empty array that the
/// following BUILD fills.
fn reconstruct(nodes: &[Node], args: &[Id]) -> Result<Node, ErrorKind> {
    match args.first().map(|&class| &nodes[class]) {
        Some(Node::Global(class)) if is_ndarray(class) => Ok(Node::Object(Box::new(Object {
            global: (**class).clone(),
            args: Vec::new(),
            state: None,
        }))),
        _ => Err(ErrorKind::Unsupported(
            "numpy _reconstruct of a non-ndarray class".into(),
        )),
    }
}

/// `_codecs.encode(text, 'latin1')`: how protocol 2 carries `bytes` (numpy
/// array data among them) so that Python 2 can read it.
fn latin1(nodes: &[Node], args: &[Id]) -> Result<Node, ErrorKind> {
    let [text, encoding] = args else {
        return Err(malformed("_codecs.encode needs text and an encoding"));
    };
    if !matches!(string(nodes, *encoding)?, "latin1" | "latin-1") {
        return Err(ErrorKind::Unsupported(
            "_codecs.encode to an encoding other than latin1".into(),
        ));
    }
    let bytes = string(nodes, *text)?
        .chars()
        .map(|c| u8::try_from(c).map_err(|_| malformed("latin1 text outside latin1")))
        .collect::<Result<_, _>>()?;
    Ok(Node::Bytes(bytes))
}

/// A `numpy.dtype(code, align, copy)` object, with the byte order its state sets.
fn numpy_dtype(nodes: &[Node], id: Id) -> Result<DType, ErrorKind> {
    let dtype = match &nodes[id] {
        Node::Object(object) if object.global.is("numpy", "dtype") => object,
        _ => return Err(malformed("numpy array dtype is not a numpy.dtype")),
    };
    let Some(&code) = dtype.args.first() else {
        return Err(malformed("numpy.dtype without a type code"));
    };
    let code = string(nodes, code)?;
    let parsed = DType::from_numpy(code)
        .ok_or_else(|| ErrorKind::Unsupported(format!("numpy dtype {:?}", preview(code))))?;
    // The state is (version, byte order, ...); '>' marks big-endian data.
    if let Some(state) = dtype.state {
        if let [_, order, ..] = tuple(nodes, state)? {
            if string(nodes, *order)? == ">" && parsed.size() > 1 {
                return Err(ErrorKind::Unsupported("big-endian numpy arrays".into()));
            }
        }
    }
    Ok(parsed)
}

/// The element type of a persistent id's storage class: a legacy typed
/// storage (`torch.FloatStorage`), `UntypedStorage` (bytes), or a dtype.
fn storage_dtype(class: &Global) -> Result<DType, ErrorKind> {
    let dtype = match (class.module.as_str(), class.name.as_str()) {
        ("torch" | "torch.storage", "UntypedStorage") => Some(DType::U8),
        ("torch", name) => {
            DType::from_storage_class(name).or_else(|| DType::from_torch_dtype(name))
        }
        _ => None,
    };
    dtype.ok_or_else(|| ErrorKind::Unsupported(format!("storage type {}", preview(class))))
}

fn tuple(nodes: &[Node], id: Id) -> Result<&[Id], ErrorKind> {
    match &nodes[id] {
        Node::Tuple(items) => Ok(items),
        _ => Err(malformed("expected a tuple")),
    }
}

fn string(nodes: &[Node], id: Id) -> Result<&str, ErrorKind> {
    match &nodes[id] {
        Node::Str(s) => Ok(s),
        _ => Err(malformed("expected a string")),
    }
}

/// A non-negative integer: an offset, a size, a stride or an element count.
fn index(nodes: &[Node], id: Id) -> Result<usize, ErrorKind> {
    match nodes[id] {
        Node::Int(v) => usize::try_from(v).map_err(|_| malformed("negative size or offset")),
        _ => Err(malformed("expected an integer")),
    }
}

fn indices(nodes: &[Node], id: Id) -> Result<Vec<usize>, ErrorKind> {
    tuple(nodes, id)?.iter().map(|&i| index(nodes, i)).collect()
}
