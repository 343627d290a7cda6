use std::process::ExitCode;

use anyhow::Result;
use burn::tensor::Device;
use serde_json::json;
use t2t_models::import::WeightsChoice;
use t2t_models::onnx;
use t2t_models::weights::{load_state_dict, write_atomically, HostTensor};
use t2t_models::Model;

use super::{load_weights, print_json, resolve_model};
use crate::cli::ExportArgs;

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let spec = resolve_model(&args.model.model, &args.model.overrides)?;
    // Refuse before reading a possibly large checkpoint.
    onnx::check_exportable(&spec.config, args.opset)?;
    let imported = load_weights(&args.weights, WeightsChoice::from_flags(args.no_ema, false))?;
    let mut dict = imported.dict;
    let model = spec.config.init(&Device::flex())?;
    if let Model::T2tVit(m) = &model {
        // T2T-ViT's position table is a fixed sinusoid, never learned: at
        // another image size the model's own table is the exact one.
        let own = HostTensor::from_data(m.encoder.pos_embed.val().into_data());
        if let Some(stored) = dict.tensors.get_mut("pos_embed") {
            if stored.shape != own.shape {
                eprintln!(
                    "pos_embed {:?} -> {:?}: sinusoid table regenerated for {}px",
                    stored.shape,
                    own.shape,
                    spec.config.img_size()
                );
                *stored = own;
            }
        }
    }
    let model = load_state_dict(model, &dict, &imported.source)?;
    let bytes = onnx::export(&spec, &model, args.opset, &imported.source)?;
    write_atomically(&args.output, &bytes)?;
    let size = spec.config.img_size();
    if args.json {
        print_json(&json!({
            "model": spec.name, "output": args.output, "bytes": bytes.len(), "opset": args.opset,
            "img_size": size, "input": onnx::INPUT, "output_name": onnx::OUTPUT,
        }));
    } else {
        println!(
            "wrote {} ({:.1} MB): {} at {size}x{size}, opset {}, input {} [batch, 3, {size}, {size}], output {}",
            args.output.display(),
            bytes.len() as f64 / 1e6,
            spec.name,
            args.opset,
            onnx::INPUT,
            onnx::OUTPUT,
        );
    }
    Ok(ExitCode::SUCCESS)
}
