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
