use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use t2t_models::registry;
use t2t_models::registry::report;

use super::{giga, name_pattern, print_json};
use crate::cli::ModelsArgs;

pub fn run(args: ModelsArgs) -> Result<ExitCode> {
    let filter = args.filter.as_deref().map(name_pattern).transpose()?;
    let mut rows = Vec::new();
    for spec in registry::all() {
        if filter.as_ref().is_some_and(|f| !f.matches(spec.name)) {
            continue;
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
    use super::super::name_pattern;

    #[test]
    fn globs() {
        let matches = |pattern: &str, name: &str| name_pattern(pattern).unwrap().matches(name);
        assert!(matches("t2t_vit_t_*", "t2t_vit_t_14"));
        assert!(!matches("t2t_vit_t_*", "t2t_vit_14"));
        assert!(matches("*_1?", "t2t_vit_14"));
        assert!(matches("*", ""));
        assert!(!matches("t2t_vit_7", "t2t_vit_7_cifar"));
    }

    #[test]
    fn a_pattern_with_many_stars_is_answered_at_once() {
        let pattern = name_pattern(&format!("{}b", "*a".repeat(30))).unwrap();
        let started = std::time::Instant::now();
        assert!(!pattern.matches(&"a".repeat(200)));
        assert!(started.elapsed().as_secs_f64() < 1.0);
    }
}
