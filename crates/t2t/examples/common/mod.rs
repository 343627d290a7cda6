//! What the timing examples share.

/// The CPU's model name, as `lscpu` prints it: every table of timings names
/// the machine it came from.
pub fn lscpu_model_name() -> String {
    let output = std::process::Command::new("lscpu").output();
    let text = output
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let name = text
        .lines()
        .find(|l| l.starts_with("Model name"))
        .unwrap_or("Model name: unknown");
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The whole-number command-line argument at `position`, `default` when
/// absent; exits with a one-line `refusal` when it is not one `valid`
/// accepts.
pub fn argument(
    position: usize,
    default: usize,
    valid: impl Fn(usize) -> bool,
    refusal: &str,
) -> usize {
    match std::env::args().nth(position).map(|a| a.parse::<usize>()) {
        None => default,
        Some(Ok(value)) if valid(value) => value,
        Some(_) => {
            eprintln!("error: {refusal}");
            std::process::exit(2);
        }
    }
}

/// The median of timings (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `timings` on the compute threads, as the `t2t` command runs its
/// work, so that they time what a command's operations take.
pub fn on_compute_threads(timings: impl FnOnce() + Send) {
    if let Err(error) = t2t_models::device::on_compute_threads(None, timings) {
        eprintln!("error: {error}");
        std::process::exit(2);
    }
}
