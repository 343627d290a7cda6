//! `t2t`: train, evaluate, inspect and verify T2T-ViT models.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

/// Tensor code allocates and frees large buffers at every operation; mimalloc
/// keeps them mapped instead of returning them to the system each time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            // One line, no backtrace: the chain of causes joined.
            let message: Vec<String> = error.chain().map(|e| e.to_string()).collect();
            eprintln!("error: {}", message.join(": "));
            ExitCode::from(2)
        }
    }
}
