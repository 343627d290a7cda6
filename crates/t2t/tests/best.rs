//! `best` holds whichever of the raw and EMA weights scored higher, the
//! closing JSON reports that result, and `t2t validate` of the run
//! directory reproduces it.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{last_json, t2t_ok as t2t, validate_builtin_run, TINY_LITE_KWARGS};

/// `summary.csv` as (raw top-1, EMA top-1) per epoch.
fn summary_top1(run: &Path) -> Vec<(f64, f64)> {
    let text = std::fs::read_to_string(run.join("summary.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (raw, ema) = (column("eval_top1"), column("ema_eval_top1"));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[raw].parse().unwrap(), fields[ema].parse().unwrap())
        })
        .collect()
}

fn validate(run: &str, weights_flag: Option<&str>) -> f64 {
    let mut extra = TINY_LITE_KWARGS.to_vec();
    extra.extend(weights_flag);
    validate_builtin_run(run, &extra)["top1"].as_f64().unwrap()
}

#[test]
fn best_keeps_the_better_of_raw_and_ema_and_validate_reproduces_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_arg = run.to_str().unwrap();
    let mut args = vec![
        "train",
        "--synthetic-train-size",
        "256",
        "--synthetic-val-size",
        "64",
        "--epochs",
        "4",
        "-b",
        "32",
        "--model-ema-decay",
        "0.9",
        "-o",
        run_arg,
        "--json",
    ];
    args.extend(TINY_LITE_KWARGS);
    let report = last_json(&t2t(&args));

    // The best epoch and weights, recomputed from summary.csv: the first
    // epoch whose better score beats every earlier one, ties to the EMA.
    let rows = summary_top1(&run);
    assert_eq!(rows.len(), 4);
    let mut best: Option<(usize, &str, f64)> = None;
    for (epoch, &(raw, ema)) in rows.iter().enumerate() {
        let (kind, top1) = if ema >= raw {
            ("ema", ema)
        } else {
            ("raw", raw)
        };
        if best.is_none_or(|(_, _, b)| top1 > b) {
            best = Some((epoch, kind, top1));
        }
    }
    let (epoch, kind, top1) = best.unwrap();
    assert_eq!(report["top1"].as_f64().unwrap(), top1, "{report}");
    assert_eq!(report["weights"], kind, "{report}");
    assert_eq!(report["best_epoch"].as_u64().unwrap() as usize, epoch);
    let (last_raw, last_ema) = rows[3];
    assert_eq!(report["final"]["raw"]["top1"].as_f64().unwrap(), last_raw);
    assert_eq!(report["final"]["ema"]["top1"].as_f64().unwrap(), last_ema);

    // The run directory means `best`, with the weights it recorded; the
    // flags force one or the other of that epoch's weights.
    assert_eq!(validate(run_arg, None), top1);
    assert_eq!(validate(run_arg, Some("--no-ema")), rows[epoch].0);
    assert_eq!(validate(run_arg, Some("--ema")), rows[epoch].1);
}

/// The model configuration a run's `last` checkpoint was written with.
fn checkpoint_model_config(run: &Path) -> Value {
    let weights =
        t2t_models::weights::read_safetensors(&run.join("last/model.safetensors")).unwrap();
    serde_json::from_str(&weights.metadata["model_config"]).unwrap()
}

#[test]
fn model_kwargs_win_over_the_presets_drop_path() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut args = vec![
        "train",
        "--synthetic-train-size",
        "64",
        "--synthetic-val-size",
        "32",
        "--epochs",
        "1",
        "-b",
        "32",
        "-o",
        run.to_str().unwrap(),
    ];
    args.extend(TINY_LITE_KWARGS);
    args.push("drop_path_rate=0.3");
    t2t(&args);
    let config = checkpoint_model_config(&run).to_string();
    assert!(config.contains("\"drop_path_rate\":0.3"), "{config}");
}
