use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use t2t_models::complexity::report;
use t2t_models::registry;

use super::{giga, glob_match, print_json};
use crate::cli::ModelsArgs;

pub fn run(args: ModelsArgs) -> Result<ExitCode> {
    let mut rows = Vec::new();
    for spec in registry::all() {
        if let Some(pattern) = &args.filter {
            if !glob_match(pattern, spec.name) {
                continue;
            }
        }
        let r = report(spec.name, &spec.config)?;
        if !args.json {
            println!(
                "{:<22} {:>5} px  {:>7.2}M params  {:>8} MACs  ({})",
                spec.name,
                r.img_size,
                r.params_all as f64 / 1e6,
                giga(r.macs),
                spec.source
            );
        }
        rows.push(json!({"name": spec.name, "img_size": r.img_size, "params": r.params_all, "macs": r.macs}));
    }
    if args.json {
        print_json(&json!({ "models": rows }));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("t2t_vit_t_*", "t2t_vit_t_14"));
        assert!(!glob_match("t2t_vit_t_*", "t2t_vit_14"));
        assert!(glob_match("*_1?", "t2t_vit_14"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("t2t_vit_7", "t2t_vit_7_cifar"));
    }
}
