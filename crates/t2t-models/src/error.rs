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
    #[error("{path}: weights do not fit the model: {}", .problems.join("; "))]
    WeightsMismatch { path: String, problems: Vec<String> },
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}
