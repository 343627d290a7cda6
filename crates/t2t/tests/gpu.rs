//! The GPU path through the command line, on whatever Vulkan device the
//! machine has (a GPU, or Mesa's software lavapipe in CI): a short training
//! run, resuming across devices, and reports that name the adapter.

#![cfg(feature = "gpu")]

mod support;

use serde_json::Value;
use support::{last_json, t2t_ok, validate_builtin_run, TINY_LITE_KWARGS};

/// `t2t train` of the built-in data for 2 epochs of 4 steps, on `device`,
/// into `run`; `extra` adds or changes flags.
fn train(run: &str, device: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "train",
        "--synthetic-train-size",
        "128",
        "--synthetic-val-size",
        "64",
        "--epochs",
        "2",
        "-b",
        "32",
        "--device",
        device,
        "-o",
        run,
        "--json",
    ];
    args.extend(TINY_LITE_KWARGS);
    args.extend(extra);
    last_json(&t2t_ok(&args))
}

fn number(json: &Value, key: &str) -> f64 {
    json[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} in {json}"))
}

#[test]
fn a_run_trains_on_the_gpu_and_resumes_on_either_device() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();

    let cpu = train(&path("cpu"), "cpu", &[]);
    let gpu = train(&path("gpu"), "gpu", &[]);
    assert_eq!(cpu["backend"], "flex");
    assert_eq!(gpu["backend"], "wgpu");
    assert!(!gpu["adapter"].as_str().unwrap().is_empty(), "{gpu}");
    assert_eq!(gpu["epochs"], 2);
    // The same run on either device, up to the order of float additions.
    for key in ["train_loss", "eval_loss"] {
        let (c, g) = (number(&cpu, key), number(&gpu, key));
        assert!(
            (c - g).abs() < 1e-3 * c.abs().max(1.0),
            "{key}: cpu {c}, gpu {g}"
        );
    }

    // Half a run on one device, the rest on the other, both ways round.
    for (first, then) in [("cpu", "gpu"), ("gpu", "cpu")] {
        let run = path(&format!("{first}-then-{then}"));
        let half = train(&run, first, &["--stop-after-steps", "4"]);
        assert_eq!(half["finished"], false);
        let resumed = last_json(&t2t_ok(&[
            "train", "--resume", &run, "--device", then, "--json",
        ]));
        assert_eq!(resumed["finished"], true);
        assert_eq!(
            resumed["backend"],
            if then == "gpu" { "wgpu" } else { "flex" }
        );
        for key in ["train_loss", "eval_loss"] {
            let (whole, split) = (number(&cpu, key), number(&resumed, key));
            assert!(
                (whole - split).abs() < 1e-3 * whole.abs().max(1.0),
                "{key} of {first} then {then}: {split}, of one cpu run: {whole}"
            );
        }
    }
}

#[test]
fn bench_and_validate_report_the_adapter_they_ran_on() {
    let mut bench = vec![
        "bench",
        "--model",
        "t2t_vit_lite_cifar",
        "--device",
        "gpu",
        "--batch-size",
        "2",
        "--iters",
        "1",
        "--json",
    ];
    bench.extend(TINY_LITE_KWARGS);
    for train_flag in [None, Some("--train")] {
        let mut args = bench.clone();
        args.extend(train_flag);
        let report = last_json(&t2t_ok(&args));
        assert_eq!(report["backend"], "wgpu", "{report}");
        assert!(number(&report, "img_per_s") > 0.0, "{report}");
        assert!(number(&report, "device_memory_mb") > 0.0, "{report}");
    }

    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run").display().to_string();
    let trained = train(&run, "cpu", &[]);
    let mut extra = TINY_LITE_KWARGS.to_vec();
    extra.extend(["--device", "gpu"]);
    let scored = validate_builtin_run(&run, &extra);
    assert_eq!(scored["backend"], "wgpu");
    let (on_cpu, on_gpu) = (number(&trained, "eval_loss"), number(&scored, "loss"));
    assert!(
        (on_cpu - on_gpu).abs() < 1e-4,
        "eval loss: cpu {on_cpu}, gpu {on_gpu}"
    );
}
