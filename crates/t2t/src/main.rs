//! `t2t`: train, evaluate, inspect and verify T2T-ViT models.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

/// Tensor code allocates and frees large buffers at every operation; mimalloc
/// keeps them mapped instead of returning them to the system each time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory committed. By default mimalloc hands idle pages back to
/// the system after a delay, and the next step's activations fault them in
/// again as freshly zeroed (huge) pages: a third of a training step's time.
fn keep_freed_memory() {
    // SAFETY: sets a process-wide option; any value is valid, -1 means never purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            eprintln!("error: {}", one_line(&clap_message(&error)));
            return ExitCode::from(2);
        }
    };
    if let Err(message) = t2t_models::kernels::simd::SimdLimit::from_env() {
        print_error(&anyhow::anyhow!(message));
        return ExitCode::from(2);
    }
    let threads = Some(t2t_train::distributed::compute_threads());
    match t2t_models::device::on_compute_threads(threads, || commands::run(cli))
        .map_err(anyhow::Error::from)
        .and_then(|result| result)
    {
        Ok(code) => code,
        Err(error) => {
            print_error(&error);
            ExitCode::from(2)
        }
    }
}

/// The error as the one `error:` line on stderr.
fn print_error(error: &anyhow::Error) {
    let message: Vec<String> = error.chain().map(|e| e.to_string()).collect();
    eprintln!("error: {}", one_line(&message.join(": ")));
}

/// A command-line error without its `error:` prefix and `--help` hint,
/// its lines (the choices, the usage) joined.
fn clap_message(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .collect();
    let message = lines.join(" ");
    message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_string()
}

/// The longest error line printed; a message built from hostile input (a
/// megabyte-long name in a checkpoint, say) is cut to this.
const MAX_ERROR_CHARS: usize = 1000;

/// An error message as one line of bounded length, no backtrace.
fn one_line(message: &str) -> String {
    let flat: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{} [... {} more bytes]", &flat[..cut], flat.len() - cut),
        None => flat,
    }
}
