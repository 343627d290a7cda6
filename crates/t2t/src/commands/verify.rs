use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{ensure, Result};
use serde_json::json;
use t2t_models::import::WeightsChoice;
use t2t_models::parity::{compare, merge_weights, Comparison};
use t2t_models::weights::{load_state_dict, read_safetensors, StateDict};

use super::load_weights;

use super::{open_device, print_json, resolve_model};
use crate::cli::VerifyArgs;

pub fn run(args: VerifyArgs) -> Result<ExitCode> {
    let spec = resolve_model(&args.model.model, &args.model.overrides)?;
    let imported = load_weights(&args.weights, WeightsChoice::from_flags(args.no_ema, false))?;
    let (weights, source) = (imported.dict, imported.source);
    check_finite(&weights, &source)?;
    let reference_path = args.reference.as_ref().unwrap_or(&args.weights);
    let reference_name = reference_path.display().to_string();
    let reference = match &args.reference {
        Some(path) => {
            let reference = read_safetensors(path)?;
            check_finite(&reference, &reference_name)?;
            reference
        }
        None => weights.clone(),
    };
    let placement = open_device(&args.device)?;
    let model = load_state_dict(
        spec.config.init(&placement.device)?,
        &merge_weights(&weights, &reference),
        &source,
    )?;
    let comparisons = compare(&model, &spec.config, &reference, &reference_name)?;
    if comparisons.is_empty() {
        anyhow::bail!(
            "{reference_name}: no reference activation (__logits, __features, ...) to compare"
        );
    }
    let passed = comparisons.iter().all(|c| c.passed(args.atol));
    if args.json {
        let diffs: BTreeMap<&str, f64> = comparisons
            .iter()
            .map(|c| (c.tensor.as_str(), c.max_abs_diff))
            .collect();
        print_json(&json!({
            "max_abs_diff": diffs, "atol": args.atol, "passed": passed,
            "backend": placement.backend, "adapter": placement.adapter,
        }));
    } else {
        for c in &comparisons {
            println!(
                "{:<12} max_abs_diff {:.3e}  (|ref| <= {:.3})  {}",
                c.tensor,
                c.max_abs_diff,
                c.reference_max_abs,
                verdict(c, args.atol)
            );
        }
        println!(
            "{} (atol {:e})",
            if passed { "passed" } else { "FAILED" },
            args.atol
        );
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verdict(c: &Comparison, atol: f64) -> String {
    match c.non_finite {
        [0, 0] if c.passed(atol) => "ok".to_string(),
        [0, 0] => "FAIL".to_string(),
        [ours, reference] => format!(
            "FAIL: NaN or infinity in {ours} values of the model's output, {reference} of the reference"
        ),
    }
}

/// Refuses weights that hold a NaN or an infinity: whatever they give, the
/// comparison would not verify them.
fn check_finite(dict: &StateDict, source: &str) -> Result<()> {
    for (key, tensor) in dict.tensors.iter().filter(|(k, _)| !k.starts_with("__")) {
        let non_finite = tensor.values.iter().filter(|v| !v.is_finite()).count();
        ensure!(
            non_finite == 0,
            "{source}: {key} holds {non_finite} non-finite values (NaN or infinity)"
        );
    }
    Ok(())
}
