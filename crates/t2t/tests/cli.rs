//! The `t2t` binary as a user runs it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn t2t(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_t2t"))
        .args(args)
        .output()
        .unwrap()
}

fn last_json(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().expect("some output")).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

use t2t_testing::fixture;

#[test]
fn verify_passes_on_the_official_fixtures_and_fails_past_tolerance() {
    let Some(weights) = fixture("t2t", "t2t_vit_7.safetensors") else {
        return;
    };
    let reference = fixture("t2t", "t2t_vit_7_384.safetensors").unwrap();
    let (weights, reference) = (weights.to_str().unwrap(), reference.to_str().unwrap());

    let out = t2t(&["verify", "t2t_vit_7", "--weights", weights, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = last_json(&out);
    assert_eq!(report["passed"], true);
    assert!(report["max_abs_diff"]["logits"].as_f64().unwrap() < 1e-5);

    let out = t2t(&[
        "verify",
        "t2t_vit_7",
        "--img-size",
        "384",
        "--weights",
        weights,
        "--reference",
        reference,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(last_json(&out)["passed"], true);

    let out = t2t(&[
        "verify",
        "t2t_vit_7",
        "--weights",
        weights,
        "--atol",
        "1e-9",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(last_json(&out)["passed"], false);
}

#[test]
fn stressed_fixtures_verify_with_model_kwargs() {
    let Some(file) = fixture("t2t", "t2t_vit_t_7_d2_stress.safetensors") else {
        return;
    };
    let file = file.to_str().unwrap();
    let args = [
        "verify",
        "t2t_vit_7",
        "--model-kwargs",
        "tokens_type=transformer",
        "depth=2",
        "--weights",
        file,
        "--atol",
        "1e-3",
        "--json",
    ];
    let out = t2t(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    // The wrong T2T layer type must not load at all.
    let out = t2t(&[
        "verify",
        "t2t_vit_7",
        "--model-kwargs",
        "depth=2",
        "--weights",
        file,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("missing tokens_to_token.attention1.kqv.weight"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn info_reports_official_counts_in_json() {
    let out = t2t(&["info", "t2t_vit_14", "--img-size", "384", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = last_json(&out);
    assert_eq!(r["params_all"], 21_691_470);
    assert_eq!(r["params_trainable"], 21_465_806);
    let macs = r["macs"].as_f64().unwrap();
    assert!((macs / 16.42e9 - 1.0).abs() < 0.01, "{macs}");
    let stages: Vec<&str> = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["tokens_to_token", "blocks", "head"]);
}

#[test]
fn bad_input_gets_one_line_errors() {
    for (args, needle) in [
        (
            vec!["info", "t2t_vit_13"],
            "did you mean t2t_vit_10, t2t_vit_12, t2t_vit_14",
        ),
        (
            vec!["info", "t2t_vit_7", "--img-size", "100"],
            "multiple of the total soft-split stride 16",
        ),
        (
            vec!["info", "t2t_vit_7", "--model-kwargs", "depth"],
            "'depth' is not key=value",
        ),
        (
            vec![
                "verify",
                "t2t_vit_7",
                "--weights",
                "/no/such/file.safetensors",
            ],
            "/no/such/file.safetensors",
        ),
    ] {
        let out = t2t(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
    }
}

#[test]
fn train_then_validate_reproduces_the_reported_result_and_resume_finishes_the_run() {
    let dir = std::env::temp_dir().join(format!("t2t-cli-train-{}", std::process::id()));
    let out = dir.to_str().unwrap();
    let small = [
        "--epochs",
        "2",
        "--synthetic-train-size",
        "96",
        "--synthetic-val-size",
        "64",
        "-b",
        "32",
    ];

    // Interrupted after 4 of the 6 optimizer steps, then resumed.
    let mut args = vec!["train", "-o", out, "--stop-after-steps", "4", "--json"];
    args.extend(small);
    let first = t2t(&args);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(last_json(&first)["finished"], false);
    let resumed = t2t(&["train", "--resume", out, "--json"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let report = last_json(&resumed);
    assert_eq!(report["finished"], true);
    assert_eq!(report["epochs"], 2);
    for file in [
        "summary.csv",
        "curves.png",
        "config.toml",
        "last/model.safetensors",
        "last/model-ema.safetensors",
        "last/model-state.safetensors",
        "best/model.safetensors",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("summary.csv"))
            .unwrap()
            .lines()
            .count(),
        3
    );

    let best = support::validate_builtin_run(out, &[]);
    assert_eq!(best["top1"], report["top1"]);
    assert_eq!(best["top5"], report["top5"]);
    assert_eq!(best["images"], 64);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn convert_imports_checkpoints_and_refuses_bad_ones() {
    let Some(official) = fixture("checkpoints", "official_style.pth.tar") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("t2t-cli-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = dir.join("tiny.safetensors");
    let (official, out) = (official.to_str().unwrap(), output.to_str().unwrap());
    let model = [
        "--model",
        "t2t_vit_7",
        "--model-kwargs",
        "embed_dim=64",
        "depth=1",
        "num_heads=2",
    ];

    let mut args = vec!["convert", official, out, "--json"];
    args.extend(model);
    let run = t2t(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    let report = last_json(&run);
    assert_eq!(report["source_key"], "state_dict_ema");
    assert_eq!(report["tensors"], 45);
    let plain = fixture("checkpoints", "plain.safetensors").unwrap();
    let read = |p: &Path| t2t_models::weights::read_safetensors(p).unwrap().tensors;
    assert_eq!(read(&output), read(&plain), "the EMA weights, bit for bit");

    let run = t2t(&["convert", official, out, "--no-ema", "--json"]);
    assert_eq!(last_json(&run)["source_key"], "state_dict");

    for bad in ["malicious.pth", "truncated.pth.tar"] {
        let input = fixture("checkpoints", bad).unwrap();
        let target = dir.join(format!("{bad}.safetensors"));
        let run = t2t(&["convert", input.to_str().unwrap(), target.to_str().unwrap()]);
        assert_eq!(run.status.code(), Some(2));
        assert_eq!(
            stderr(&run)
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1,
            "{}",
            stderr(&run)
        );
        assert!(stderr(&run).contains(bad), "{}", stderr(&run));
        assert!(!target.exists(), "nothing is written for {bad}");
    }
    assert!(!Path::new("/tmp/PWNED_t2t").exists());
    // Weights that do not fit the named model are refused before writing.
    let target = dir.join("mismatch.safetensors");
    let run = t2t(&[
        "convert",
        official,
        target.to_str().unwrap(),
        "--model",
        "t2t_vit_7",
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert!(!target.exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn predict_gives_the_top5_of_the_logits_path() {
    use burn::tensor::activation::softmax;
    use burn::tensor::{Tensor, TensorData};
    use t2t_data::transforms::{normalize, EvalTransform, Filter};

    let Some(checkpoint) = fixture("checkpoints", "official_style.pth.tar") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("t2t-cli-predict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Three pictures of different sizes and content.
    for (i, (w, h)) in [(320u32, 240u32), (200, 300), (256, 256)]
        .into_iter()
        .enumerate()
    {
        let picture = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * (i as u32 + 1)) as u8,
                (y * 2) as u8,
                ((x ^ y) * 3) as u8,
            ])
        });
        picture.save(dir.join(format!("photo{i}.png"))).unwrap();
    }
    let kwargs = ["--model-kwargs", "embed_dim=64", "depth=1", "num_heads=2"];
    let mut args = vec![
        "predict",
        "--model",
        "t2t_vit_7",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--json",
    ];
    // Images before --model-kwargs, which takes every value after it.
    let glob = format!("{}/photo*.png", dir.display());
    args.push(&glob);
    args.extend(kwargs);
    let run = t2t(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    let predictions = last_json(&run)["predictions"].as_array().unwrap().clone();
    assert_eq!(predictions.len(), 3);

    // The same images through the library: decode, eval transform, forward, softmax.
    let mut config = t2t_models::registry::find("t2t_vit_7").unwrap().config;
    config
        .apply_kwargs(&["embed_dim=64", "depth=1", "num_heads=2"])
        .unwrap();
    let imported = t2t_models::import::import_weights(
        &checkpoint,
        t2t_models::import::WeightsChoice::Preferred,
    )
    .unwrap();
    let model = t2t_models::weights::load_state_dict(
        config.init(&t2t_models::device::for_tests()).unwrap(),
        &imported.dict,
        "ema",
    )
    .unwrap();
    let mean = [0.485f32, 0.456, 0.406];
    let std = [0.229f32, 0.224, 0.225];
    for (i, prediction) in predictions.iter().enumerate() {
        let file = dir.join(format!("photo{i}.png"));
        assert_eq!(prediction["file"], file.to_str().unwrap());
        let img = t2t_data::folder::decode_file(&file).unwrap();
        let pixels = normalize(
            &EvalTransform::new(0.9, Filter::Bicubic)
                .unwrap()
                .apply(&img, 224),
            mean,
            std,
        );
        let input = Tensor::<4>::from_data(
            TensorData::new(pixels, [1, 3, 224, 224]),
            &t2t_models::device::for_tests(),
        );
        let probs: Vec<f32> = softmax(model.forward(input), 1)
            .into_data()
            .try_to_vec()
            .unwrap();
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let top: Vec<u64> = prediction["topk"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["index"].as_u64().unwrap())
            .collect();
        assert_eq!(
            top,
            order[..5].iter().map(|&i| i as u64).collect::<Vec<_>>()
        );
        let p0 = prediction["topk"][0]["prob"].as_f64().unwrap();
        assert!((p0 - probs[order[0]] as f64).abs() < 1e-6);
        assert!(prediction["topk"][0]["class"].is_string());
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fine_tuning_replaces_the_head_regenerates_positions_and_honours_freezing() {
    let dir = std::env::temp_dir().join(format!("t2t-cli-finetune-{}", std::process::id()));
    let (pre, fine) = (dir.join("pre"), dir.join("fine"));
    let small = [
        "--epochs",
        "1",
        "--synthetic-train-size",
        "64",
        "--synthetic-val-size",
        "32",
        "-b",
        "32",
    ];
    let mut args = vec![
        "train",
        "-o",
        pre.to_str().unwrap(),
        "--num-classes",
        "12",
        "--model-ema",
        "false",
    ];
    args.extend(small);
    let run = t2t(&args);
    assert!(run.status.success(), "{}", stderr(&run));

    // 48x48 inputs, the dataset's 10 classes, frozen T2T module, backbone at lr x 0.
    let mut args = vec![
        "train",
        "-o",
        fine.to_str().unwrap(),
        "--initial-checkpoint",
        pre.to_str().unwrap(),
        "--img-size",
        "48",
        "--freeze",
        "tokens_to_token",
        "--transfer-ratio",
        "0",
        "--json",
    ];
    args.extend(small);
    let run = t2t(&args);
    let log = stderr(&run);
    assert!(run.status.success(), "{log}");
    assert!(
        log.contains("head replaced and re-initialised: 12 -> 10 classes"),
        "{log}"
    );
    assert!(
        log.contains("pos_embed [1, 65, 128] -> [1, 145, 128]: sinusoid table regenerated"),
        "{log}"
    );

    let read = |p: PathBuf| t2t_models::weights::read_safetensors(&p).unwrap().tensors;
    let (before, after) = (
        read(pre.join("last/model.safetensors")),
        read(fine.join("last/model.safetensors")),
    );
    assert_eq!(after["head.weight"].shape, vec![10, 128]);
    for (key, tensor) in &after {
        if key.starts_with("tokens_to_token") || key.starts_with("blocks.") || key == "cls_token" {
            assert_eq!(tensor, &before[key], "{key} must not move");
        }
    }
    assert!(
        after["head.bias"].values.iter().any(|v| *v != 0.0),
        "the head trains"
    );
    std::fs::remove_dir_all(&dir).ok();
}
