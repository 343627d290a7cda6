//! The module tree against the official code's `state_dict()`: every
//! parameter's name and shape, for T2T-ViT (Performer and Transformer T2T
//! modules) and ViT. The golden key lists in `tests/key_trees/` were
//! extracted once from the fixtures (`key_trees/extract.py`), so this runs
//! without them; with the fixtures, the lists are checked against them too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use t2t_models::registry::{self, ModelConfig};
use t2t_models::weights::{read_safetensors, state_dict};

mod common;

/// Name → shape, the shape as the lists write it (`d0xd1`, `scalar`).
type KeyTree = BTreeMap<String, String>;

fn shape_text(shape: &[usize]) -> String {
    match shape {
        [] => "scalar".to_string(),
        dims => dims
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("x"),
    }
}

/// A golden list: how to build the model, and its key tree.
struct Golden {
    name: String,
    build: String,
    keys: KeyTree,
}

fn golden_lists() -> Vec<Golden> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/key_trees");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 6, "golden lists in {}", folder.display());
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let mut lines = text.lines();
            let build = lines.next().unwrap().strip_prefix("# build: ").unwrap();
            let keys = lines
                .map(|line| {
                    let (key, shape) = line.split_once(' ').unwrap();
                    (key.to_string(), shape.to_string())
                })
                .collect();
            Golden {
                name: path.file_stem().unwrap().to_str().unwrap().to_string(),
                build: build.to_string(),
                keys,
            }
        })
        .collect()
}

/// The model a `# build:` line describes.
fn config_of(build: &str) -> ModelConfig {
    let mut words = build.split_whitespace();
    let mut config = match words.next().unwrap() {
        "registered" => registry::find(words.next().unwrap()).unwrap().config,
        "t2t" => common::official_t2t_defaults(),
        "vit" => common::timm_vit_defaults(),
        other => panic!("unknown build {other}"),
    };
    let settings: Vec<&str> = words.collect();
    config.apply_kwargs(&settings).unwrap();
    config
}

#[test]
fn the_module_tree_has_the_official_names_and_shapes() {
    for golden in golden_lists() {
        let model = config_of(&golden.build)
            .init(&t2t_models::device::for_tests())
            .unwrap();
        let ours: KeyTree = state_dict(&model)
            .tensors
            .into_iter()
            .map(|(key, tensor)| (key, shape_text(&tensor.shape)))
            .collect();
        let mut problems = Vec::new();
        for (key, shape) in &golden.keys {
            match ours.get(key) {
                None => problems.push(format!("missing {key}")),
                Some(ours) if ours != shape => {
                    problems.push(format!("{key}: {ours}, officially {shape}"))
                }
                Some(_) => {}
            }
        }
        for key in ours.keys().filter(|k| !golden.keys.contains_key(*k)) {
            problems.push(format!("unexpected {key}"));
        }
        assert!(problems.is_empty(), "{}: {problems:#?}", golden.name);
        eprintln!("{}: {} tensors match", golden.name, ours.len());
    }
}

#[test]
fn the_golden_lists_are_the_fixtures_key_trees() {
    for golden in golden_lists() {
        let folder = if golden.name.starts_with("vit") {
            "vit"
        } else {
            "t2t"
        };
        let Some(path) = common::fixture(folder, &format!("{}.safetensors", golden.name)) else {
            return;
        };
        let fixture: KeyTree = read_safetensors(&path)
            .unwrap()
            .tensors
            .into_iter()
            .filter(|(key, _)| !key.starts_with("__"))
            .map(|(key, tensor)| (key, shape_text(&tensor.shape)))
            .collect();
        assert_eq!(fixture, golden.keys, "{}", golden.name);
    }
}
