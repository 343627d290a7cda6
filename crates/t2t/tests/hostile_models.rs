//! Hostile model configurations, reference files and weights: each is
//! refused with one `error:` line (or a verification failure), never a
//! panic, a crash, a memory blow-up or a silent pass.

mod support;

use std::path::{Path, PathBuf};

use support::{run_t2t, Run};
use t2t_models::registry::{self, ModelConfig};
use t2t_models::weights::{state_dict, write_safetensors, HostTensor, StateDict};

/// A T2T-ViT at 224 px small enough to build and run in a blink.
const MODEL: &str = "t2t_vit_7";
const TINY: [&str; 5] = [
    "embed_dim=32",
    "depth=1",
    "num_heads=2",
    "token_dim=16",
    "num_classes=10",
];

fn tiny_config() -> ModelConfig {
    let mut config = registry::find(MODEL).unwrap().config;
    config.apply_kwargs(&TINY).unwrap();
    config
}

/// Deterministic pixel-like values.
fn pattern(shape: &[usize]) -> HostTensor {
    let len = shape.iter().product();
    let values = (0..len)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0 - 0.5)
        .collect();
    HostTensor::new(shape.to_vec(), values)
}

/// The tiny model's weights with a reference `__input` of `input_shape` and,
/// when the input fits the model, the logits it gives; `tweak` then changes
/// the file's tensors.
fn reference_file(
    dir: &Path,
    input_shape: &[usize],
    tweak: impl FnOnce(&mut StateDict),
) -> PathBuf {
    let device = t2t_models::device::for_tests();
    let model = tiny_config().init(&device).unwrap();
    let mut dict = state_dict(&model);
    let input = pattern(input_shape);
    if input_shape == [1, 3, 224, 224] {
        let logits = model.forward(input.to_tensor::<4>(&device));
        dict.tensors
            .insert("__logits".into(), HostTensor::from_data(logits.into_data()));
    } else {
        dict.tensors.insert(
            "__logits".into(),
            HostTensor::new(vec![input_shape[0], 10], vec![0.0; input_shape[0] * 10]),
        );
    }
    dict.tensors.insert("__input".into(), input);
    tweak(&mut dict);
    let path = dir.join("reference.safetensors");
    write_safetensors(&path, &dict).unwrap();
    path
}

fn verify(dir: &Path, file: &Path) -> Run {
    let file = file.to_str().unwrap();
    let mut args = vec!["verify", MODEL, "--weights", file, "--model-kwargs"];
    args.extend(TINY);
    run_t2t(&args, dir)
}

/// A change to a reference file's tensors.
type Tweak = fn(&mut StateDict);

fn set(dict: &mut StateDict, key: &str, index: usize, value: f32) {
    dict.tensors.get_mut(key).unwrap().values[index] = value;
}

#[test]
fn verify_passes_a_faithful_reference() {
    let dir = tempfile::tempdir().unwrap();
    let file = reference_file(dir.path(), &[1, 3, 224, 224], |_| {});
    let run = verify(dir.path(), &file);
    run.assert_bounded();
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("passed"), "{run:#?}");
}

#[test]
fn verify_refuses_an_empty_batch_before_any_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let file = reference_file(dir.path(), &[0, 3, 224, 224], |_| {});
    verify(dir.path(), &file).assert_refused("__input");
}

#[test]
fn verify_refuses_inputs_that_do_not_fit_the_model() {
    let dir = tempfile::tempdir().unwrap();
    for shape in [
        [1, 3, 32, 32],
        [1, 2, 224, 224],
        [1, 0, 224, 224],
        [1, 3, 0, 224],
        [1, 3, 224, 0],
        [1, 3, 224, 192],
    ] {
        let file = reference_file(dir.path(), &shape, |_| {});
        let run = verify(dir.path(), &file);
        run.assert_refused("__input");
        assert!(
            run.stderr.contains("reference.safetensors") && run.stderr.contains("[B, 3, 224, 224]"),
            "{shape:?}: {run:#?}"
        );
    }
}

/// A verification that does not pass: exit code 1 and FAILED, never "passed".
fn assert_fails(run: &Run, why: &str) {
    run.assert_bounded();
    assert_eq!(run.code, Some(1), "{why}: {run:#?}");
    assert!(
        run.stdout.contains("FAILED") && !run.stdout.contains("passed"),
        "{why}: {run:#?}"
    );
    assert!(!run.stderr.contains("panicked"), "{why}: {run:#?}");
}

#[test]
fn verify_fails_on_non_finite_values_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Tweak); 4] = [
        ("NaN reference logits", |d| set(d, "__logits", 3, f32::NAN)),
        ("Inf reference logits", |d| {
            set(d, "__logits", 0, f32::INFINITY)
        }),
        ("NaN input", |d| set(d, "__input", 100, f32::NAN)),
        // Finite weights whose products overflow the logits: large features
        // after the final norm (its shift), times the largest f32.
        ("Inf output", |d| {
            d.tensors.get_mut("norm.bias").unwrap().values.fill(1e30);
            d.tensors
                .get_mut("head.weight")
                .unwrap()
                .values
                .fill(f32::MAX);
        }),
    ];
    for (why, tweak) in cases {
        let file = reference_file(dir.path(), &[1, 3, 224, 224], tweak);
        let run = verify(dir.path(), &file);
        assert_fails(&run, why);
        assert!(run.stdout.contains("NaN or infinity"), "{why}: {run:#?}");
    }
    let file = reference_file(dir.path(), &[1, 3, 224, 224], |d| {
        set(d, "head.bias", 0, f32::NAN)
    });
    let run = verify(dir.path(), &file);
    run.assert_refused("head.bias");
    assert!(run.stderr.contains("non-finite"), "{run:#?}");
}

#[test]
fn verify_json_reports_non_finite_differences_as_failures() {
    let dir = tempfile::tempdir().unwrap();
    let file = reference_file(dir.path(), &[1, 3, 224, 224], |d| {
        set(d, "__logits", 3, f32::NAN)
    });
    let file = file.to_str().unwrap();
    let mut args = vec![
        "verify",
        MODEL,
        "--weights",
        file,
        "--json",
        "--model-kwargs",
    ];
    args.extend(TINY);
    let run = run_t2t(&args, dir.path());
    assert_eq!(run.code, Some(1), "{run:#?}");
    let report: serde_json::Value =
        serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["passed"], false, "{run:#?}");
}

#[test]
fn model_kwargs_out_of_range_are_refused_with_their_range() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("num_heads=0", "num_heads"),
        ("embed_dim=0", "embed_dim"),
        ("token_dim=0", "token_dim"),
        ("in_chans=0", "in_chans"),
        ("mlp_ratio=0", "mlp_ratio"),
        ("mlp_ratio=-1", "mlp_ratio"),
        ("mlp_ratio=0.001", "mlp_ratio"),
        ("mlp_ratio=1e30", "mlp_ratio"),
        ("num_classes=100000000000", "num_classes"),
        ("depth=100000000", "depth"),
    ];
    for (model, kwarg, key) in cases
        .iter()
        .map(|(kwarg, key)| ("t2t_vit_7", *kwarg, *key))
        .chain([
            ("vit_cifar", "num_heads=0", "num_heads"),
            ("vit_cifar", "in_chans=0", "in_chans"),
            ("vit_cifar", "mlp_ratio=0.001", "mlp_ratio"),
            ("vit_cifar", "patch_size=0", "patch_size"),
            ("t2t_vit_dense", "growth_rate=0", "growth_rate"),
        ])
    {
        let run = run_t2t(&["info", model, "--model-kwargs", kwarg], dir.path());
        run.assert_refused(key);
        let error = run
            .stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap();
        assert!(
            error.contains('[') || error.contains("multiple"),
            "{kwarg}: the error should give the valid range: {error}"
        );
    }
}

#[test]
fn image_sizes_past_the_token_limit_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let image = dir.path().join("photo.png");
    image::RgbImage::new(8, 8).save(&image).unwrap();
    let (out, image) = (out.to_str().unwrap(), image.to_str().unwrap());
    let commands: [&[&str]; 5] = [
        &["info", "t2t_vit_7", "--img-size", "100000"],
        &["info", "vit_base_patch16_224", "--img-size", "100000"],
        &["info", "t2t_vit_t_14", "--img-size", "2048"],
        &["bench", "--model", "t2t_vit_7", "--img-size", "100000"],
        &[
            "predict",
            "--model",
            "t2t_vit_7",
            "--img-size",
            "100000",
            "--checkpoint",
            "missing.safetensors",
            image,
        ],
    ];
    for args in commands {
        let run = run_t2t(args, dir.path());
        run.assert_refused("tokens");
        assert!(run.stderr.contains("limit"), "{args:?}: {run:#?}");
    }
    // Training checks its settings first, the image side among them.
    run_t2t(&["train", "--img-size", "100000", "-o", out], dir.path())
        .assert_refused("--img-size 100000: must be in [1, 16384]");
}

#[test]
fn large_real_images_still_fit() {
    let dir = tempfile::tempdir().unwrap();
    for model in ["t2t_vit_7", "t2t_vit_t_14", "vit_tiny_patch16_224"] {
        let size = if model == "t2t_vit_t_14" {
            "512"
        } else {
            "1024"
        };
        let run = run_t2t(&["info", model, "--img-size", size, "--json"], dir.path());
        run.assert_bounded();
        assert_eq!(run.code, Some(0), "{model} at {size}: {run:#?}");
    }
}

fn tiny_checkpoint(dir: &Path, tweak: impl FnOnce(&mut StateDict)) -> PathBuf {
    let mut dict = state_dict(
        &tiny_config()
            .init(&t2t_models::device::for_tests())
            .unwrap(),
    );
    tweak(&mut dict);
    let path = dir.join("tiny.safetensors");
    write_safetensors(&path, &dict).unwrap();
    path
}

fn predict(dir: &Path, checkpoint: &Path, extra: &[&str]) -> Run {
    let image = dir.join("photo.png");
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 90]))
        .save(&image)
        .unwrap();
    let mut args = vec![
        "predict",
        "--model",
        MODEL,
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        image.to_str().unwrap(),
    ];
    args.extend(extra);
    args.push("--model-kwargs");
    args.extend(TINY);
    run_t2t(&args, dir)
}

#[test]
fn predict_refuses_non_finite_logits() {
    let dir = tempfile::tempdir().unwrap();
    let clean = tiny_checkpoint(dir.path(), |_| {});
    let run = predict(dir.path(), &clean, &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains('%'), "{run:#?}");

    let poisoned = tiny_checkpoint(dir.path(), |d| set(d, "head.bias", 2, f32::NAN));
    let run = predict(dir.path(), &poisoned, &[]);
    run.assert_refused("non-finite logits");
    assert!(run.stderr.contains("tiny.safetensors"), "{run:#?}");
    assert!(!run.stdout.contains("NaN"), "{run:#?}");
}

#[test]
fn headless_models_are_refused_where_a_head_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = tiny_checkpoint(dir.path(), |_| {});
    predict(dir.path(), &checkpoint, &["--num-classes", "0"]).assert_refused("--num-classes 0");
    let run = run_t2t(
        &[
            "bench",
            "--model",
            MODEL,
            "--num-classes",
            "0",
            "--train",
            "--iters",
            "1",
            "--warmup",
            "0",
        ],
        dir.path(),
    );
    run.assert_refused("--num-classes 0");
    // Inference of features needs no head.
    let mut args = vec![
        "bench",
        "--model",
        MODEL,
        "--num-classes",
        "0",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--model-kwargs",
    ];
    args.extend(&TINY[..4]);
    let run = run_t2t(&args, dir.path());
    run.assert_bounded();
    assert_eq!(run.code, Some(0), "{run:#?}");
}

#[test]
fn commands_that_read_images_refuse_models_of_other_channel_counts() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("photo.png");
    image::RgbImage::new(8, 8).save(&image).unwrap();
    let image = image.to_str().unwrap();
    let one_channel = ["--model-kwargs", "in_chans=1"];
    let commands: [&[&str]; 3] = [
        &[
            "predict",
            "--model",
            "t2t_vit_7",
            "--checkpoint",
            "w.safetensors",
            image,
        ],
        &[
            "validate",
            "--model",
            "t2t_vit_7",
            "--checkpoint",
            "w.safetensors",
            "--dataset",
            "synthetic",
        ],
        &["train", "--model", "t2t_vit_7_cifar", "-o", "run"],
    ];
    for args in commands {
        let args: Vec<&str> = args.iter().chain(&one_channel).copied().collect();
        run_t2t(&args, dir.path()).assert_refused("in_chans 1: images are read as RGB");
    }
}

#[test]
fn a_benchmark_batch_past_the_input_limit_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    for batch in ["100000000", "18446744073709551615"] {
        let args = ["bench", "--model", MODEL, "--batch-size", batch];
        run_t2t(&args, dir.path()).assert_refused("the limit of a benchmark batch");
    }
}

#[test]
fn unknown_or_unparsable_model_kwargs_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = |kwarg: &str| run_t2t(&["info", MODEL, "--model-kwargs", kwarg], dir.path());
    run("drop_path=0.1").assert_refused("unknown key 'drop_path' (known: attn_drop_rate");
    run("depth=abc").assert_refused("depth: cannot use 'abc'");
}

#[cfg(not(feature = "gpu"))]
#[test]
fn a_gpu_asked_of_a_build_without_one_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        &["bench", "--model", MODEL, "--device", "gpu"][..],
        &["train", "--device", "gpu", "--epochs", "1", "-o", "run"][..],
    ] {
        run_t2t(command, dir.path()).assert_refused("built without the gpu feature");
    }
    assert!(!dir.path().join("run").exists(), "nothing is written");
}
