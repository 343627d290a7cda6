mod bench;
mod info;
mod models;
mod train;
mod validate;
mod verify;

use std::process::ExitCode;

use std::path::{Path, PathBuf};

use anyhow::Result;
use t2t_models::registry::{self, ModelSpec};
use t2t_models::weights::{read_safetensors, StateDict};

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

/// Reads weights: a run directory or checkpoint (its EMA weights when they
/// exist, unless `no_ema`), or a safetensors file. Returns them with a
/// description of what was read, which is also printed.
pub fn load_weights(path: &Path, no_ema: bool) -> Result<(StateDict, String)> {
    let file = if path.is_dir() {
        path.join("last.safetensors")
    } else {
        path.to_path_buf()
    };
    let ema = file
        .to_str()
        .and_then(|f| f.strip_suffix(".safetensors"))
        .map(|stem| PathBuf::from(format!("{stem}-ema.safetensors")))
        .filter(|ema| ema.is_file() && !no_ema);
    let (file, which) = match ema {
        Some(ema) => (ema, "EMA weights"),
        None => (file, "weights"),
    };
    let dict = read_safetensors(&file)?;
    let source = format!("{} ({which})", file.display());
    eprintln!("loaded {source}");
    Ok((dict, source))
}
