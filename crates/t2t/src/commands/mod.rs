mod bench;
mod info;
mod models;
mod train;
mod validate;
mod verify;

use std::process::ExitCode;

use std::path::Path;

use anyhow::Result;
use t2t_models::import::import_weights;
use t2t_models::registry::{self, ModelSpec};
use t2t_models::weights::StateDict;

use crate::cli::{Cli, Command, ModelArgs};

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Models(args) => models::run(args),
        Command::Info(args) => info::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Train(args) => train::run(*args),
        Command::Validate(args) => validate::run(args),
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

/// Reads weights in any importable format (EMA weights when present unless
/// `no_ema`) and says on stderr which file and key it used.
pub fn load_weights(path: &Path, no_ema: bool) -> Result<(StateDict, String)> {
    let imported = import_weights(path, no_ema)?;
    eprintln!("loaded {}", imported.source);
    Ok((imported.dict, imported.source))
}
