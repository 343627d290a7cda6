use std::process::ExitCode;

use anyhow::Result;
use t2t_models::registry::{report, CONVENTIONS};

use super::{giga, print_json, resolve_model};
use crate::cli::InfoArgs;

pub fn run(args: InfoArgs) -> Result<ExitCode> {
    let spec = resolve_model(&args.model.model, &args.model.overrides)?;
    let r = report(spec.name, &spec.config)?;
    if args.json {
        let mut value = serde_json::to_value(&r)?;
        value["conventions"] = CONVENTIONS.into();
        print_json(&value);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} at {}x{} ({})",
        r.name, r.img_size, r.img_size, spec.source
    );
    println!(
        "params: {} all, {} trainable",
        r.params_all, r.params_trainable
    );
    println!(
        "{:<18} {:>12} {:>22}",
        "stage", "MACs (fvcore)", "MACs (weights only)"
    );
    for s in &r.stages {
        println!(
            "{:<18} {:>12} {:>22}",
            s.name,
            giga(s.macs),
            giga(s.macs_no_attn_matmul)
        );
    }
    println!(
        "{:<18} {:>12} {:>22}",
        "total",
        giga(r.macs),
        giga(r.macs_no_attn_matmul)
    );
    println!("{CONVENTIONS}");
    Ok(ExitCode::SUCCESS)
}
