//! `t2t export`: the ONNX file passes ONNX's full checker and gives t2t's
//! own logits in ONNX Runtime, at batch 1 and at batch 5.
//!
//! The Runtime side is `bench/onnx_check.py`, run by the Python that
//! `T2T_ONNX_PYTHON` names (a venv with onnx, onnxruntime and numpy, which
//! `.ci/run` creates). Without it the checks skip, except under CI, where
//! they fail.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::tensor::{Distribution, Tensor};
use serde_json::Value;
use t2t_models::import::{adapt_for_finetuning, import_weights, WeightsChoice};
use t2t_models::registry;
use t2t_models::weights::{load_state_dict, state_dict, write_safetensors, HostTensor, StateDict};

use t2t_testing::{fixture, fixtures_required};

const BATCH: usize = 5;
/// Official-init weights: ONNX Runtime and t2t differ only by rounding.
const TOLERANCE: f64 = 1e-5;
/// Stressed weights give logits in the tens, so rounding shows more.
const STRESSED_TOLERANCE: f64 = 1e-4;

fn t2t(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_t2t"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The Python of `T2T_ONNX_PYTHON`, or None (after saying so) outside CI.
fn onnx_python() -> Option<PathBuf> {
    let python = std::env::var_os("T2T_ONNX_PYTHON").map(PathBuf::from);
    match python {
        Some(python) if python.is_file() => Some(python),
        _ => {
            assert!(
                !fixtures_required(),
                "T2T_ONNX_PYTHON ({python:?}) names no Python; CI needs a venv with onnx, onnxruntime and numpy"
            );
            eprintln!("skipped: T2T_ONNX_PYTHON does not name a Python with onnx and onnxruntime");
            None
        }
    }
}

/// Exports `model` (a registered name changed by `kwargs`) with `weights`,
/// and checks the file in ONNX Runtime against t2t's logits on random images.
fn check(model: &str, kwargs: &[&str], weights: &Path, opset: i64, tolerance: f64) {
    let Some(python) = onnx_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let onnx_file = dir.path().join("model.onnx");
    let mut args = vec![
        "export",
        model,
        "--weights",
        weights.to_str().unwrap(),
        "-o",
        onnx_file.to_str().unwrap(),
    ];
    let opset = opset.to_string();
    args.extend(["--opset", &opset]);
    if !kwargs.is_empty() {
        args.push("--model-kwargs");
        args.extend(kwargs);
    }
    let out = t2t(&args);
    assert!(out.status.success(), "{}", stderr(&out));

    // t2t's own logits for the same weights.
    let mut spec = registry::find(model).unwrap();
    spec.config.apply_kwargs(kwargs).unwrap();
    let imported = import_weights(weights, WeightsChoice::Preferred).unwrap();
    let device = t2t_models::device::for_tests();
    let net = spec.config.init(&device).unwrap();
    let mut dict = imported.dict;
    // At another image size T2T-ViT's sinusoid table is regenerated, as the export does.
    adapt_for_finetuning(&net, &mut dict, &imported.source).unwrap();
    let net = load_state_dict(net, &dict, &imported.source).unwrap();
    let size = spec.config.img_size();
    let images = Tensor::<4>::random(
        [BATCH, 3, size, size],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let logits = net.forward(images.clone());
    let case = StateDict {
        tensors: BTreeMap::from([
            (
                "input".to_string(),
                HostTensor::from_data(images.into_data()),
            ),
            (
                "logits".to_string(),
                HostTensor::from_data(logits.into_data()),
            ),
        ]),
        metadata: HashMap::new(),
    };
    let case_file = dir.path().join("case.safetensors");
    write_safetensors(&case_file, &case).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/onnx_check.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&onnx_file)
        .arg(&case_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "onnx_check.py: {}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!("{model} {kwargs:?} opset {opset}: {report}");
    assert_eq!(report["input"], "pixel_values");
    assert_eq!(report["output"], "logits");
    assert_eq!(report["input_shape"][0], "batch");
    for key in ["mean", "std", "crop_pct", "interpolation"] {
        assert!(
            report["metadata"].as_array().unwrap().contains(&key.into()),
            "{key}"
        );
    }
    for diff in ["max_abs_diff_batch1", "max_abs_diff_batch"] {
        let diff = report[diff].as_f64().unwrap();
        assert!(diff <= tolerance, "{model}: {report}");
    }
}

/// A registered fixture file's path, or None when fixtures are not set.
fn t2t_fixture(name: &str) -> Option<PathBuf> {
    fixture("t2t", name)
}

#[test]
fn t2t_vit_7_official_init() {
    let Some(weights) = t2t_fixture("t2t_vit_7.safetensors") else {
        return;
    };
    check("t2t_vit_7", &[], &weights, 17, TOLERANCE);
}

#[test]
fn t2t_vit_7_at_384_regenerates_the_sinusoid_table() {
    let Some(weights) = t2t_fixture("t2t_vit_7.safetensors") else {
        return;
    };
    check("t2t_vit_7", &["img_size=384"], &weights, 17, TOLERANCE);
}

#[test]
fn t2t_vit_14_resnext_official_init() {
    // The resnext fixture carries t2t_vit_14's weights with 32 heads.
    let Some(weights) = t2t_fixture("t2t_vit_14.safetensors") else {
        return;
    };
    check("t2t_vit_14_resnext", &[], &weights, 17, TOLERANCE);
}

#[test]
fn performer_t2t_stressed() {
    let Some(weights) = t2t_fixture("t2t_vit_7_d2_stress.safetensors") else {
        return;
    };
    check("t2t_vit_7", &["depth=2"], &weights, 17, STRESSED_TOLERANCE);
}

#[test]
fn transformer_t2t_stressed() {
    let Some(weights) = t2t_fixture("t2t_vit_t_7_d2_stress.safetensors") else {
        return;
    };
    let kwargs = ["tokens_type=transformer", "depth=2"];
    check("t2t_vit_7", &kwargs, &weights, 17, STRESSED_TOLERANCE);
}

/// timm's ViT fixtures, as registered ViT-Ti changed by the fixture's kwargs.
fn vit_fixture(file: &str) -> Option<(PathBuf, Vec<String>)> {
    let path = fixture("vit", file)?;
    let reference = t2t_models::weights::read_safetensors(&path).unwrap();
    let meta: Value = serde_json::from_str(&reference.metadata["config"]).unwrap();
    let kwargs = meta["kwargs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Some((path, kwargs))
}

#[test]
fn vit_patch16_stressed() {
    let Some((weights, kwargs)) = vit_fixture("vit_p16_224_d192_L2_stress.safetensors") else {
        return;
    };
    let kwargs: Vec<&str> = kwargs.iter().map(String::as_str).collect();
    check(
        "vit_tiny_patch16_224",
        &kwargs,
        &weights,
        17,
        STRESSED_TOLERANCE,
    );
}

#[test]
fn vit_cifar_stressed_at_the_newest_opset() {
    let Some((weights, kwargs)) = vit_fixture("vit_cifar_p4_32_d192_L2_stress.safetensors") else {
        return;
    };
    let kwargs: Vec<&str> = kwargs.iter().map(String::as_str).collect();
    let newest = *t2t_models::onnx::OPSETS.end();
    check(
        "vit_tiny_patch16_224",
        &kwargs,
        &weights,
        newest,
        STRESSED_TOLERANCE,
    );
}

/// Writes randomly initialised weights of `model` with `kwargs` into `dir`.
fn random_weights(dir: &Path, model: &str, kwargs: &[&str]) -> PathBuf {
    let mut spec = registry::find(model).unwrap();
    spec.config.apply_kwargs(kwargs).unwrap();
    let net = spec.config.init(&t2t_models::device::for_tests()).unwrap();
    let path = dir.join("random.safetensors");
    write_safetensors(&path, &state_dict(&net)).unwrap();
    path
}

/// A model with random weights.
fn check_random(model: &str, kwargs: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let weights = random_weights(dir.path(), model, kwargs);
    check(model, kwargs, &weights, 17, TOLERANCE);
}

#[test]
fn fvit_official_form_random_weights() {
    check_random(
        "fvit_base_patch16_224",
        &["depth=2", "embed_dim=192", "num_heads=3"],
    );
}

#[test]
fn fvit_paper_form_random_weights() {
    check_random(
        "fvit_base_patch32_224",
        &[
            "depth=2",
            "embed_dim=192",
            "num_heads=3",
            "value_proj=true",
            "per_head_scores=true",
        ],
    );
}

#[test]
fn squeeze_excite_ablation_random_weights() {
    check_random("t2t_vit_14_se", &["depth=2"]);
}

#[test]
fn every_registered_name_exports_or_is_refused() {
    for spec in registry::all() {
        match t2t_models::onnx::check_exportable(&spec.config, 17) {
            // One block is enough to check the architecture of each name.
            Ok(()) => check_random(spec.name, &["depth=1"]),
            Err(e) => eprintln!("{}: {e}", spec.name),
        }
    }
}

#[test]
fn ghost_and_dense_ablations_and_old_opsets_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("model.onnx");
    let output = output.to_str().unwrap();
    // Refused before the weights are read, so any path will do.
    for (model, opset, reason) in [
        ("t2t_vit_16_ghost", "17", "ghost ablation"),
        ("t2t_vit_dense", "17", "dense ablation"),
        ("t2t_vit_7", "16", "opset 16 is not supported"),
    ] {
        let out = t2t(&[
            "export",
            model,
            "--weights",
            "absent.pth",
            "-o",
            output,
            "--opset",
            opset,
        ]);
        assert_eq!(out.status.code(), Some(2), "{model}: {}", stderr(&out));
        let message = stderr(&out);
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(message.starts_with("error: cannot export to ONNX: "));
        assert!(message.contains(reason), "{message}");
        assert!(!Path::new(output).exists());
    }
}
