use std::process::ExitCode;

use anyhow::{ensure, Result};
use burn::tensor::Device;
use serde_json::json;
use t2t_models::import::WeightsChoice;
use t2t_models::weights::{load_state_dict, write_safetensors};

use super::{load_weights, print_json, resolve_model};
use crate::cli::{ConvertArgs, ModelOverrides};

pub fn run(args: ConvertArgs) -> Result<ExitCode> {
    ensure!(
        args.output.extension().is_some_and(|e| e == "safetensors"),
        "{}: the output must be a .safetensors file",
        args.output.display()
    );
    let imported = load_weights(&args.input, WeightsChoice::from_flags(args.no_ema, false))?;
    let (mut dict, source) = (imported.dict, imported.source);
    if let Some(model) = &args.model {
        let overrides = ModelOverrides {
            model_kwargs: args.model_kwargs.clone(),
            ..ModelOverrides::default()
        };
        let spec = resolve_model(model, &overrides)?;
        load_state_dict(spec.config.init(&Device::flex())?, &dict, &source)?;
    }
    dict.metadata.insert("source".to_string(), source.clone());
    write_safetensors(&args.output, &dict)?;
    if args.json {
        let key = imported.key;
        print_json(
            &json!({ "tensors": dict.tensors.len(), "source_key": key, "source": source, "output": args.output }),
        );
    } else {
        println!(
            "wrote {} tensors from {source} to {}",
            dict.tensors.len(),
            args.output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
