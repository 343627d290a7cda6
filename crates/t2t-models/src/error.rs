use thiserror::Error;

/// Everything that can go wrong while building, loading or saving a model.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("unknown model '{name}'{}", did_you_mean(.suggestions))]
    UnknownModel {
        name: String,
        suggestions: Vec<String>,
    },
    #[error("--model-kwargs: {0}")]
    BadKwarg(String),
    #[error("invalid configuration: {0}")]
    BadConfig(String),
    #[error("{path}: {reason}")]
    WeightsFile { path: String, reason: String },
    #[error("{path}: weights do not fit the model: {}", summarize(.problems))]
    WeightsMismatch { path: String, problems: Vec<String> },
    #[error("cannot export to ONNX: {0}")]
    Export(String),
    /// The device asked for cannot be opened.
    #[error("{0}")]
    Device(String),
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

/// The first few problems, and how many more there are.
fn summarize(problems: &[String]) -> String {
    const SHOWN: usize = 6;
    let mut text = problems[..problems.len().min(SHOWN)].join("; ");
    if problems.len() > SHOWN {
        text.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    text
}
