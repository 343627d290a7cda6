//! Hostile and damaged weight files given to the commands that import
//! weights (`convert` here): pickle bombs, corrupt archives, integer
//! tensors, weights of the wrong rank, and a symlink planted where a
//! temporary file used to go. Each must end in one `error:` line within
//! the time and memory limits, or, where the file is fine, in the right
//! output and nothing written elsewhere.

// The helper reaps its child with `wait4`, which clippy cannot see.
#[allow(clippy::zombie_processes)]
mod support;

use std::path::Path;

use support::{run_t2t, Run};
use t2t_models::weights::{read_safetensors, state_dict, write_safetensors, HostTensor, StateDict};
use t2t_testing::pickles::{op, torch_zip, PickleBuilder};

/// Writes `bytes` to `dir/name`.
fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// `t2t convert input out.safetensors [extra...]`, run in `dir`.
fn convert(dir: &Path, input: &str, extra: &[&str]) -> Run {
    let args = [&["convert", input, "out.safetensors"], extra].concat();
    run_t2t(&args, dir)
}

/// Converting `pickle`, zipped as torch does (deflated, so that it makes a
/// small file), is refused by the interpreter's budget.
fn assert_pickle_bomb_refused(pickle: &[u8], max_file_len: usize) {
    let dir = tempfile::tempdir().unwrap();
    let archive = torch_zip(pickle, &[]);
    assert!(archive.len() <= max_file_len, "{} bytes", archive.len());
    write(dir.path(), "bomb.pth", &archive);
    convert(dir.path(), "bomb.pth", &[]).assert_refused("needs more than");
    assert!(!dir.path().join("out.safetensors").exists());
}

/// MARK, `count` references to one None, TUPLE.
fn big_tuple(p: &mut PickleBuilder, count: usize) {
    p.op(op::MARK).op(op::NONE);
    p.raw(&vec![op::DUP; count - 1]).op(op::TUPLE);
}

#[test]
fn a_stream_of_64_mib_of_empty_lists_is_refused_within_bounds() {
    let mut p = PickleBuilder::new(2);
    p.raw(&vec![op::EMPTY_LIST; 64 << 20]);
    assert_pickle_bomb_refused(&p.finish(), 100 << 10);
}

#[test]
fn memoised_strings_placed_20000_times_are_refused_within_bounds() {
    // As tuples of the two strings, and as classes named by them.
    for combine in [op::TUPLE2, op::STACK_GLOBAL] {
        let mut p = PickleBuilder::new(4);
        for (key, fill) in [(0, "a"), (1, "b")] {
            p.str(&fill.repeat(1 << 20))
                .op(op::BINPUT)
                .op(key)
                .op(op::POP);
        }
        p.op(op::MARK);
        for _ in 0..20_000 {
            p.op(op::BINGET).op(0).op(op::BINGET).op(1).op(combine);
        }
        assert_pickle_bomb_refused(&p.op(op::LIST).finish(), 16 << 10);
    }
}

#[test]
fn a_memoised_million_item_tuple_passed_to_namespace_300_times_is_refused_within_bounds() {
    let mut p = PickleBuilder::new(2);
    p.global("argparse", "Namespace")
        .op(op::BINPUT)
        .op(0)
        .op(op::POP);
    big_tuple(&mut p, 1_000_000);
    p.op(op::BINPUT).op(1).op(op::POP).op(op::MARK);
    for _ in 0..300 {
        p.op(op::BINGET).op(0).op(op::BINGET).op(1).op(op::REDUCE);
    }
    assert_pickle_bomb_refused(&p.op(op::LIST).finish(), 16 << 10);
}

#[test]
fn a_million_argument_namespace_built_100000_times_is_refused_within_bounds() {
    let mut p = PickleBuilder::new(2);
    p.global("argparse", "Namespace");
    big_tuple(&mut p, 1_000_000);
    p.op(op::REDUCE);
    for _ in 0..100_000 {
        p.op(op::EMPTY_DICT).op(op::BUILD);
    }
    assert_pickle_bomb_refused(&p.finish(), 16 << 10);
}

#[test]
fn a_legacy_protocol_error_does_not_print_the_files_contents() {
    let dir = tempfile::tempdir().unwrap();
    let magic = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    let mut file = PickleBuilder::new(2).op(0x8a).op(10).raw(&magic).finish();
    file.extend(PickleBuilder::new(2).str(&"9".repeat(13 << 20)).finish());
    write(dir.path(), "legacy.pth", &file);
    let run = convert(dir.path(), "legacy.pth", &[]);
    run.assert_refused("legacy torch protocol");
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap();
    assert!(line.len() < 300, "{} characters", line.len());
}

#[test]
fn a_zip_entry_whose_crc_does_not_match_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut archive = t2t_testing::pickles::zip_sample();
    write(dir.path(), "intact.pth", &archive);
    let run = convert(dir.path(), "intact.pth", &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    // The sign bit of the first bf16 weight, in the uncompressed storage.
    let storage = [0x80, 0x3f, 0x00, 0xc0];
    let at = archive.windows(4).position(|w| w == storage).unwrap();
    archive[at + 1] ^= 0x80;
    write(dir.path(), "flipped.pth", &archive);
    convert(dir.path(), "flipped.pth", &[]).assert_refused("archive/data/0");
}

/// `{'model': {'w': <tensor of `class` over storage 0>}, extra...}`.
fn checkpoint(class: &str, storage: &[u8], numel: i32, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut p = PickleBuilder::new(2);
    p.op(op::EMPTY_DICT).op(op::MARK).str("model");
    p.op(op::EMPTY_DICT).op(op::MARK).str("w");
    let view = (0, &[numel][..], &[1][..]);
    p.torch_tensor(("torch", class), "0", numel, view, false);
    p.op(op::SETITEMS);
    for (name, counter_class) in extra {
        p.str(name).op(op::EMPTY_DICT).op(op::MARK).str("step");
        p.torch_tensor(("torch", counter_class), "1", 1, (0, &[], &[]), false);
        p.op(op::SETITEMS);
    }
    let pickle = p.op(op::SETITEMS).finish();
    torch_zip(&pickle, &[("0", storage), ("1", &7i64.to_le_bytes())])
}

#[test]
fn integer_tensors_are_refused_as_weights_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let longs: Vec<u8> = [3i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
    write(
        dir.path(),
        "ints.pth",
        &checkpoint("LongStorage", &longs, 2, &[]),
    );
    convert(dir.path(), "ints.pth", &[]).assert_refused("tensor w is stored as int64");

    // Safetensors' integer types too.
    let header = br#"{"w":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header);
    file.extend([3i32, -1].iter().flat_map(|v| v.to_le_bytes()));
    write(dir.path(), "ints.safetensors", &file);
    convert(dir.path(), "ints.safetensors", &[]).assert_refused("tensor w is stored as I32");
}

#[test]
fn integer_tensors_outside_the_weights_do_not_stop_a_checkpoint_loading() {
    let dir = tempfile::tempdir().unwrap();
    let floats: Vec<u8> = [0.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let extra = [("optimizer", "LongStorage")];
    write(
        dir.path(),
        "run.pth",
        &checkpoint("FloatStorage", &floats, 2, &extra),
    );
    let run = convert(dir.path(), "run.pth", &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let written = read_safetensors(&dir.path().join("out.safetensors")).unwrap();
    let weights: Vec<_> = written.tensors.into_iter().collect();
    let expected = HostTensor::new(vec![2], vec![0.5, -2.0]);
    assert_eq!(weights, [("w".to_string(), expected)]);
}

/// A small T2T-ViT and the flags that make `convert --model` build it.
const MODEL: &str = "t2t_vit_7";
const KWARGS: [&str; 4] = ["embed_dim=64", "depth=1", "num_heads=2", "mlp_ratio=2.0"];

fn small_model_weights() -> StateDict {
    let mut config = t2t_models::registry::find(MODEL).unwrap().config;
    config.apply_kwargs(&KWARGS).unwrap();
    state_dict(&config.init(&Default::default()).unwrap())
}

#[test]
fn linear_weights_of_another_rank_are_refused_with_the_shape_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut weights = small_model_weights();
    let needed = weights.tensors["head.weight"].shape.clone();
    assert_eq!(needed.len(), 2);
    let (rows, cols) = (needed[0], needed[1]);
    for shape in [vec![rows], vec![], vec![rows, cols, 1]] {
        let values = vec![0.25; shape.iter().product()];
        let wrong = HostTensor::new(shape.clone(), values);
        weights.tensors.insert("head.weight".into(), wrong);
        write_safetensors(&dir.path().join("wrong.safetensors"), &weights).unwrap();
        let args = [&["--model", MODEL, "--model-kwargs"][..], &KWARGS].concat();
        let run = convert(dir.path(), "wrong.safetensors", &args);
        let message = format!("head.weight has shape {shape:?}, the model needs {needed:?}");
        run.assert_refused(&message);
    }
}

#[test]
fn convert_does_not_follow_a_symlink_planted_at_a_predictable_temporary_name() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("outside.txt");
    std::fs::write(&victim, "precious").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(&victim, out.join(".evil.safetensors.tmp")).unwrap();
    let mut weights = StateDict::default();
    let tensor = HostTensor::new(vec![2], vec![1.5, -3.0]);
    weights.tensors.insert("w".into(), tensor);
    write_safetensors(&dir.path().join("in.safetensors"), &weights).unwrap();

    let args = ["convert", "in.safetensors", "out/evil.safetensors"];
    let run = run_t2t(&args, dir.path());
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let written = read_safetensors(&out.join("evil.safetensors")).unwrap();
    assert_eq!(written.tensors, weights.tensors);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
}
