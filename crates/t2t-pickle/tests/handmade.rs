//! Checkpoints written byte by byte: every container and tensor path, and
//! hostile pickles that must fail cleanly.

mod common;

use common::{op, PickleBuilder, TempFile};
use t2t_pickle::{
    is_paddle, load_weights, read_value, state_dicts, DType, ErrorKind, PickleError, Tensor, Value,
};

fn read(name: &str, bytes: &[u8]) -> Result<Value, PickleError> {
    read_value(TempFile::new(name, bytes).path())
}

fn tensor(dtype: DType, shape: &[usize], values: &[f32]) -> Tensor {
    Tensor {
        shape: shape.to_vec(),
        values: values.to_vec(),
        dtype,
    }
}

#[test]
fn paddle_numpy_arrays_round_trip() {
    let file = TempFile::new("model.pdparams", &common::paddle_sample());
    assert!(is_paddle(file.path()));
    let value = read_value(file.path()).unwrap();
    let dicts = state_dicts(&value);
    assert_eq!(dicts.len(), 1);
    let (key, tensors) = &dicts[0];
    assert_eq!(key, "");
    let expected = [
        (
            "linear.weight",
            tensor(DType::F32, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ),
        (
            "linear.bias",
            tensor(DType::F64, &[3], &[0.5, -1.5, 1e-3f64 as f32]),
        ),
        (
            "fortran",
            tensor(DType::F32, &[2, 2], &[1.0, 2.0, 3.0, 4.0]),
        ),
    ];
    let expected: Vec<(String, Tensor)> = expected
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t))
        .collect();
    assert_eq!(tensors, &expected);
    assert_eq!(
        load_weights(file.path(), false).unwrap(),
        (String::new(), expected)
    );
}

#[test]
fn legacy_stream_honours_dtype_offset_and_stride() {
    let value = read("legacy.pth", &common::legacy_sample()).unwrap();
    assert_eq!(
        value.get("half_t"),
        Some(&Value::Tensor(tensor(
            DType::F16,
            &[3, 2],
            &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        )))
    );
    assert_eq!(
        value.get("long"),
        Some(&Value::Tensor(tensor(DType::I64, &[], &[-9.0])))
    );
}

#[test]
fn zip_archive_with_deflated_pickle_and_parameter() {
    let file = TempFile::new("run.pth", &common::zip_sample());
    assert!(!is_paddle(file.path()));
    let (key, weights) = load_weights(file.path(), false).unwrap();
    assert_eq!(key, "model", "with no EMA dict the raw one is used");
    assert_eq!(
        weights,
        [(
            "w".to_owned(),
            tensor(DType::BF16, &[2, 2], &[1.0, -2.0, 0.5, 3.0])
        )]
    );
}

#[test]
fn calling_an_unknown_global_is_refused() {
    let mut p = PickleBuilder::new(2);
    p.op(op::EMPTY_DICT).op(op::MARK).str("payload");
    p.global("os", "system")
        .str("touch /tmp/PWNED_t2t")
        .op(op::TUPLE1)
        .op(op::REDUCE);
    let error = read("evil.pkl", &p.op(op::SETITEMS).finish()).unwrap_err();
    assert!(matches!(&error.kind, ErrorKind::Refused(g) if g.module == "os" && g.name == "system"));
    assert!(error.to_string().contains("refusing os.system"), "{error}");

    let mut p = PickleBuilder::new(2);
    p.global("subprocess", "Popen")
        .op(op::EMPTY_TUPLE)
        .op(op::NEWOBJ);
    let error = read("evil.pkl", &p.finish()).unwrap_err();
    assert!(error.to_string().contains("subprocess.Popen"), "{error}");
}

#[test]
fn placeholders_stay_inert_data() {
    let mut p = PickleBuilder::new(2);
    p.op(op::MARK).global("os", "system");
    // BUILD on a placeholder records the state; nothing is looked up.
    p.global("some.module", "Thing")
        .op(op::EMPTY_DICT)
        .op(op::BUILD);
    p.global("argparse", "Namespace")
        .op(op::EMPTY_TUPLE)
        .op(op::NEWOBJ);
    p.op(op::EMPTY_DICT)
        .op(op::MARK)
        .str("lr")
        .int(5)
        .op(op::SETITEMS)
        .op(op::BUILD);
    let value = read("inert.pkl", &p.op(op::TUPLE).finish()).unwrap();
    let Value::Tuple(items) = value else {
        panic!("not a tuple: {value:?}");
    };
    assert!(matches!(&items[0], Value::Global(g) if g.to_string() == "os.system"));
    assert!(
        matches!(&items[1], Value::Object { global, args, state: Some(_) }
        if global.to_string() == "some.module.Thing" && args.is_empty())
    );
    let Value::Object {
        global,
        state: Some(state),
        ..
    } = &items[2]
    else {
        panic!("not an object: {:?}", items[2]);
    };
    assert_eq!(global.to_string(), "argparse.Namespace");
    assert_eq!(state.get("lr"), Some(&Value::Int(5)));
}

#[test]
fn tensors_inside_objects_are_refused() {
    let mut p = PickleBuilder::new(2);
    p.global("argparse", "Namespace")
        .op(op::EMPTY_TUPLE)
        .op(op::NEWOBJ);
    p.op(op::EMPTY_DICT).op(op::MARK).str("weights");
    p.ndarray(
        "numpy.core.multiarray",
        &[1],
        "f4",
        false,
        &common::f32_bytes(&[1.0]),
    );
    let error = read("hidden.pkl", &p.op(op::SETITEMS).op(op::BUILD).finish()).unwrap_err();
    assert!(
        matches!(&error.kind, ErrorKind::TensorInObject(g) if g.to_string() == "argparse.Namespace")
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let depth = 100_000;
    let mut p = PickleBuilder::new(2);
    p.raw(&vec![op::EMPTY_LIST; depth])
        .raw(&vec![op::APPEND; depth - 1]);
    let error = read("deep.pkl", &p.finish()).unwrap_err();
    assert!(matches!(error.kind, ErrorKind::TooLarge(_)), "{error}");
}

#[test]
fn cycles_are_an_error() {
    let mut p = PickleBuilder::new(2);
    p.op(op::EMPTY_LIST)
        .op(op::BINPUT)
        .op(0)
        .op(op::BINGET)
        .op(0)
        .op(op::APPEND);
    let error = read("cycle.pkl", &p.finish()).unwrap_err();
    assert!(matches!(error.kind, ErrorKind::TooLarge(_)), "{error}");
}

#[test]
fn shared_subtrees_cannot_expand_without_bound() {
    // Level k is [level k-1, level k-1]: 60 levels describe 2^60 strings.
    let mut p = PickleBuilder::new(2);
    p.str(&"x".repeat(1000)).op(op::BINPUT).op(0);
    for level in 1..=60u8 {
        p.op(op::MARK)
            .op(op::BINGET)
            .op(level - 1)
            .op(op::BINGET)
            .op(level - 1);
        p.op(op::LIST).op(op::BINPUT).op(level);
    }
    let error = read("bomb.pkl", &p.finish()).unwrap_err();
    assert!(matches!(error.kind, ErrorKind::TooLarge(_)), "{error}");
}

#[test]
fn lengths_beyond_the_file_are_truncation_errors() {
    let mut p = PickleBuilder::new(4);
    p.op(op::BINUNICODE8).raw(&u64::MAX.to_le_bytes());
    let error = read("long.pkl", &p.finish()).unwrap_err();
    assert!(matches!(error.kind, ErrorKind::Truncated), "{error}");

    let legacy = common::legacy_sample();
    for len in [3, legacy.len() / 2, legacy.len() - 1] {
        let error = read("cut.pth", &legacy[..len]).unwrap_err();
        assert!(matches!(error.kind, ErrorKind::Truncated), "{len}: {error}");
    }
}

#[test]
fn files_that_are_not_checkpoints_are_named_in_the_error() {
    let error = read("notes.txt", b"hello").unwrap_err();
    assert!(matches!(error.kind, ErrorKind::UnknownFormat));
    assert!(error.to_string().contains("notes.txt"), "{error}");
    let error = read_value(std::path::Path::new("/nonexistent/x.pth")).unwrap_err();
    assert!(matches!(error.kind, ErrorKind::Io(_)), "{error}");

    let empty = PickleBuilder::new(2).op(op::EMPTY_DICT).finish();
    let file = TempFile::new("empty.pth", &empty);
    let error = load_weights(file.path(), true).unwrap_err().to_string();
    assert!(
        error.contains("empty.pth") && error.contains("no loadable weights"),
        "{error}"
    );
}

#[test]
fn a_zip_entry_whose_crc_does_not_match_is_refused_naming_it() {
    let mut archive = common::zip_sample();
    let storage = [0x80, 0x3f, 0x00, 0xc0, 0x00, 0x3f, 0x40, 0x40];
    let at = archive
        .windows(storage.len())
        .position(|window| window == storage)
        .expect("the storage is stored uncompressed");
    // The first weight's sign bit: the value changes, the length does not.
    archive[at + 1] ^= 0x80;
    let error = read("flipped.pth", &archive).unwrap_err().to_string();
    assert!(
        error.contains("archive/data/0") && error.contains("checksum"),
        "{error}"
    );
}
