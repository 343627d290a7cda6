use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use burn::tensor::Device;
use serde_json::json;
use t2t_models::parity::{compare, merge_weights};
use t2t_models::weights::{load_state_dict, read_safetensors};

use t2t_models::import::WeightsChoice;

use super::load_weights;

use super::{print_json, resolve_model};
use crate::cli::VerifyArgs;

pub fn run(args: VerifyArgs) -> Result<ExitCode> {
    let spec = resolve_model(&args.model.model, &args.model.overrides)?;
    let imported = load_weights(&args.weights, WeightsChoice::from_flags(args.no_ema, false))?;
    let (weights, source) = (imported.dict, imported.source);
    let reference_path = args.reference.as_ref().unwrap_or(&args.weights);
    let reference = match &args.reference {
        Some(path) => read_safetensors(path)?,
        None => weights.clone(),
    };
    let model = load_state_dict(
        spec.config.init(&Device::default())?,
        &merge_weights(&weights, &reference),
        &source,
    )?;
    let comparisons = compare(&model, &reference, &reference_path.display().to_string())?;
    if comparisons.is_empty() {
        anyhow::bail!(
            "{}: no reference activation (__logits, __features, ...) to compare",
            reference_path.display()
        );
    }
    let passed = comparisons.iter().all(|c| c.max_abs_diff <= args.atol);
    if args.json {
        let diffs: BTreeMap<&str, f64> = comparisons
            .iter()
            .map(|c| (c.tensor.as_str(), c.max_abs_diff))
            .collect();
        print_json(&json!({ "max_abs_diff": diffs, "atol": args.atol, "passed": passed }));
    } else {
        for c in &comparisons {
            let verdict = if c.max_abs_diff <= args.atol {
                "ok"
            } else {
                "FAIL"
            };
            println!(
                "{:<12} max_abs_diff {:.3e}  (|ref| <= {:.3})  {verdict}",
                c.tensor, c.max_abs_diff, c.reference_max_abs
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
