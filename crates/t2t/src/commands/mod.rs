mod bench;
mod info;
mod models;
mod verify;

use std::process::ExitCode;

use anyhow::Result;
use t2t_models::registry::{self, ModelSpec};

use crate::cli::{Cli, Command, ModelArgs};

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Models(args) => models::run(args),
        Command::Info(args) => info::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

/// The registered spec with the command line's overrides applied.
pub fn resolve_model(args: &ModelArgs) -> Result<ModelSpec> {
    let mut spec = registry::find(&args.model)?;
    let mut kwargs = args.model_kwargs.clone();
    if let Some(size) = args.img_size {
        kwargs.push(format!("img_size={size}"));
    }
    if let Some(classes) = args.num_classes {
        kwargs.push(format!("num_classes={classes}"));
    }
    spec.config.apply_kwargs(&kwargs)?;
    Ok(spec)
}

/// Prints `value` as the one JSON object on stdout's last line.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

pub fn giga(n: u64) -> String {
    format!("{:.3}G", n as f64 / 1e9)
}
