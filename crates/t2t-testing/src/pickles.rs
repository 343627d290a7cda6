//! Pickles and checkpoints written byte by byte, so that tests control
//! every byte a reader sees.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use zip::write::FileOptions;
use zip::{CompressionMethod, ZipWriter};

/// A file in the temporary directory, removed when dropped.
pub struct TempFile(pub PathBuf);

impl TempFile {
    /// `name` keeps its extension; a per-process counter keeps paths apart.
    pub fn new(name: &str, bytes: &[u8]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("t2t-pickle-{}-{unique}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const NONE: u8 = b'N';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const EMPTY_LIST: u8 = b']';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const EMPTY_DICT: u8 = b'}';
    pub const BINGET: u8 = b'h';
    pub const LIST: u8 = b'l';
    pub const BINPUT: u8 = b'q';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const NEWOBJ: u8 = 0x81;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const DUP: u8 = b'2';
    pub const POP: u8 = b'0';
    pub const TUPLE2: u8 = 0x86;
    pub const STACK_GLOBAL: u8 = 0x93;
}

/// Writes pickle opcodes by hand, so that tests control every byte.
pub struct PickleBuilder {
    bytes: Vec<u8>,
}

impl PickleBuilder {
    pub fn new(protocol: u8) -> Self {
        Self {
            bytes: vec![0x80, protocol],
        }
    }

    pub fn op(&mut self, opcode: u8) -> &mut Self {
        self.bytes.push(opcode);
        self
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(b'c').raw(format!("{module}\n{name}\n").as_bytes())
    }

    pub fn str(&mut self, text: &str) -> &mut Self {
        self.op(b'X')
            .raw(&(text.len() as u32).to_le_bytes())
            .raw(text.as_bytes())
    }

    pub fn int(&mut self, value: i32) -> &mut Self {
        self.op(b'J').raw(&value.to_le_bytes())
    }

    pub fn bytes(&mut self, data: &[u8]) -> &mut Self {
        self.op(b'B')
            .raw(&(data.len() as u32).to_le_bytes())
            .raw(data)
    }

    pub fn ints(&mut self, values: &[i32]) -> &mut Self {
        self.op(op::MARK);
        for &v in values {
            self.int(v);
        }
        self.op(op::TUPLE)
    }

    /// `numpy.core.multiarray._reconstruct` (or `module`'s) plus the BUILD
    /// that fills it, as numpy pickles an ndarray.
    pub fn ndarray(
        &mut self,
        module: &str,
        shape: &[i32],
        code: &str,
        fortran: bool,
        data: &[u8],
    ) -> &mut Self {
        self.global(module, "_reconstruct")
            .global("numpy", "ndarray")
            .int(0)
            .op(op::TUPLE1);
        self.bytes(b"b").op(op::TUPLE3).op(op::REDUCE);
        self.op(op::MARK).int(1).ints(shape);
        self.global("numpy", "dtype")
            .str(code)
            .op(op::NEWFALSE)
            .op(op::NEWTRUE)
            .op(op::TUPLE3)
            .op(op::REDUCE);
        self.op(op::MARK)
            .int(3)
            .str("<")
            .op(op::NONE)
            .op(op::NONE)
            .op(op::NONE);
        self.int(-1).int(-1).int(0).op(op::TUPLE).op(op::BUILD);
        let flag = if fortran { op::NEWTRUE } else { op::NEWFALSE };
        self.op(flag).bytes(data).op(op::TUPLE).op(op::BUILD)
    }

    /// `_rebuild_tensor_v2` over the storage `(storage, class, key, 'cpu', numel)`;
    /// the legacy format appends a view field (None) to the persistent id.
    pub fn torch_tensor(
        &mut self,
        class: (&str, &str),
        key: &str,
        numel: i32,
        view: (i32, &[i32], &[i32]),
        legacy: bool,
    ) -> &mut Self {
        let (offset, shape, stride) = view;
        self.global("torch._utils", "_rebuild_tensor_v2")
            .op(op::MARK);
        self.op(op::MARK)
            .str("storage")
            .global(class.0, class.1)
            .str(key)
            .str("cpu")
            .int(numel);
        if legacy {
            self.op(op::NONE);
        }
        self.op(op::TUPLE)
            .op(op::BINPERSID)
            .int(offset)
            .ints(shape)
            .ints(stride);
        self.op(op::NEWFALSE)
            .global("collections", "OrderedDict")
            .op(op::EMPTY_TUPLE)
            .op(op::REDUCE);
        self.op(op::TUPLE).op(op::REDUCE)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        self.op(op::STOP);
        std::mem::take(&mut self.bytes)
    }
}

pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A Paddle-style plain pickle: `{'linear.weight': f4 [2, 3], 'linear.bias':
/// f8 [3] (numpy >= 2 module name), 'fortran': f4 [2, 2] in column-major
/// order, 'StructuredToParameterName@@': {...}}`.
pub fn paddle_sample() -> Vec<u8> {
    let mut p = PickleBuilder::new(4);
    p.op(op::EMPTY_DICT).op(op::MARK).str("linear.weight");
    p.ndarray(
        "numpy.core.multiarray",
        &[2, 3],
        "f4",
        false,
        &f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
    );
    p.str("linear.bias");
    let bias: Vec<u8> = [0.5f64, -1.5, 1e-3]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    p.ndarray("numpy._core.multiarray", &[3], "f8", false, &bias);
    p.str("fortran");
    p.ndarray(
        "numpy.core.multiarray",
        &[2, 2],
        "f4",
        true,
        &f32_bytes(&[1.0, 3.0, 2.0, 4.0]),
    );
    p.str("StructuredToParameterName@@")
        .op(op::EMPTY_DICT)
        .op(op::MARK);
    p.str("linear.weight").str("linear_0.w_0").op(op::SETITEMS);
    p.op(op::SETITEMS).finish()
}

/// A legacy (non-zip) torch stream: `{'half_t': f16 storage [0..6] seen as
/// the transpose of its [2, 3] matrix, 'long': element 1 of an int64 storage}`.
pub fn legacy_sample() -> Vec<u8> {
    let magic = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    let mut file = PickleBuilder::new(2).op(0x8a).op(10).raw(&magic).finish();
    file.extend(PickleBuilder::new(2).int(1001).finish());
    let mut sys_info = PickleBuilder::new(2);
    sys_info
        .op(op::EMPTY_DICT)
        .op(op::MARK)
        .str("protocol_version")
        .int(1001);
    file.extend(
        sys_info
            .str("little_endian")
            .op(op::NEWTRUE)
            .op(op::SETITEMS)
            .finish(),
    );
    let mut object = PickleBuilder::new(2);
    object.op(op::EMPTY_DICT).op(op::MARK).str("half_t");
    object.torch_tensor(
        ("torch", "HalfStorage"),
        "11",
        6,
        (0, &[3, 2], &[1, 3]),
        true,
    );
    object.str("long");
    object.torch_tensor(("torch", "LongStorage"), "7", 2, (1, &[], &[]), true);
    file.extend(object.op(op::SETITEMS).finish());
    file.extend(
        PickleBuilder::new(2)
            .op(op::MARK)
            .str("11")
            .str("7")
            .op(op::LIST)
            .finish(),
    );
    let halves: [u16; 6] = [0x0000, 0x3c00, 0x4000, 0x4200, 0x4400, 0x4500];
    file.extend(6i64.to_le_bytes());
    file.extend(halves.iter().flat_map(|h| h.to_le_bytes()));
    file.extend(2i64.to_le_bytes());
    file.extend([7i64, -9].iter().flat_map(|v| v.to_le_bytes()));
    file
}

/// A torch zip archive under root `archive/` with a deflated `data.pkl`:
/// `{'epoch': 3, 'model': {'w': Parameter(bf16 [[1, -2], [0.5, 3]])}}`, the
/// storage named by the dtype global `torch.bfloat16`.
pub fn zip_sample() -> Vec<u8> {
    let mut p = PickleBuilder::new(2);
    p.op(op::EMPTY_DICT)
        .op(op::MARK)
        .str("epoch")
        .int(3)
        .str("model");
    p.global("collections", "OrderedDict")
        .op(op::EMPTY_TUPLE)
        .op(op::REDUCE);
    p.op(op::MARK)
        .str("w")
        .global("torch._utils", "_rebuild_parameter");
    p.op(op::MARK)
        .torch_tensor(("torch", "bfloat16"), "0", 4, (0, &[2, 2], &[2, 1]), false);
    p.op(op::NEWTRUE)
        .global("collections", "OrderedDict")
        .op(op::EMPTY_TUPLE)
        .op(op::REDUCE);
    let pickle = p
        .op(op::TUPLE)
        .op(op::REDUCE)
        .op(op::SETITEMS)
        .op(op::SETITEMS)
        .finish();
    let bf16: [u16; 4] = [0x3f80, 0xc000, 0x3f00, 0x4040];
    let storage: Vec<u8> = bf16.iter().flat_map(|h| h.to_le_bytes()).collect();
    torch_zip(&pickle, &[("0", &storage)])
}

/// A torch zip archive under root `archive/`: `pickle` deflated as
/// `data.pkl` (so that a pickle bomb makes a small file), and each
/// `(key, bytes)` storage stored uncompressed as `data/<key>`.
pub fn torch_zip(pickle: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let mut add = |name: &str, data: &[u8], method| {
        zip.start_file(name, FileOptions::default().compression_method(method))
            .unwrap();
        zip.write_all(data).unwrap();
    };
    add("archive/data.pkl", pickle, CompressionMethod::Deflated);
    add("archive/byteorder", b"little", CompressionMethod::Stored);
    for (key, data) in storages {
        add(
            &format!("archive/data/{key}"),
            data,
            CompressionMethod::Stored,
        );
    }
    zip.finish().unwrap().into_inner()
}
