//! Config files (`-c`): TOML, or YAML as timm's `args.yaml`, read within bounds.

use std::io::Read;
use std::path::Path;

use serde_json::{Map, Value};

use crate::TrainError;

/// The largest config file read. A real one holds a few dozen settings (a
/// few KiB); the cap keeps a hostile file from costing memory or parse time.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The deepest nesting a YAML config may have. Settings are at most a list
/// deep; the YAML parser takes quadratic time in the depth, so a hostile
/// file is refused before it reaches the parser.
const MAX_YAML_DEPTH: usize = 64;

/// Reads a TOML or YAML config file (by extension) as a table of settings.
pub fn read_config_file(path: &Path) -> Result<Map<String, Value>, TrainError> {
    let text = read_bounded(path)?;
    let bad = |e: String| {
        TrainError::Config(format!(
            "{}: {}",
            path.display(),
            e.lines().next().unwrap_or("")
        ))
    };
    let value: Value = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => toml::from_str(&text).map_err(|e| bad(e.to_string()))?,
        Some("yaml" | "yml") => {
            let depth = yaml_depth_bound(&text);
            if depth > MAX_YAML_DEPTH {
                return Err(bad(format!(
                    "nested about {depth} levels deep; a config nests at most {MAX_YAML_DEPTH}"
                )));
            }
            serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?
        }
        _ => {
            return Err(TrainError::Config(format!(
                "{}: config files are .toml, .yaml or .yml",
                path.display()
            )))
        }
    };
    match value {
        // timm's args.yaml spells flags with dashes or underscores.
        Value::Object(map) => Ok(map
            .into_iter()
            .map(|(k, v)| (k.replace('-', "_"), v))
            .collect()),
        _ => Err(bad("not a table of settings".to_string())),
    }
}

/// The text of a config file, refused past [`MAX_CONFIG_BYTES`] without
/// reading more than that.
fn read_bounded(path: &Path) -> Result<String, TrainError> {
    let file = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| TrainError::io(path, e))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(TrainError::Config(format!(
            "{}: larger than {} KiB; a config file holds a few settings",
            path.display(),
            MAX_CONFIG_BYTES >> 10
        )));
    }
    Ok(text)
}

/// An upper bound of the nesting depth of YAML `text`, in one pass: on each
/// line, the indentation (every block level indents by at least a column),
/// the block indicators (`- `, `? `) that open compact nested collections,
/// and the flow brackets still open. Brackets inside quoted strings count
/// too, which can only overestimate.
fn yaml_depth_bound(text: &str) -> usize {
    let mut open_brackets = 0usize;
    let mut deepest = 0;
    for line in text.lines() {
        let content = line.trim_start_matches([' ', '\t']);
        if content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        let mut rest = content;
        let mut indicators = 0;
        while let Some(after) = ["-", "?"].iter().find_map(|i| {
            rest.strip_prefix(i)
                .filter(|a| a.is_empty() || a.starts_with([' ', '\t']))
        }) {
            indicators += 1;
            rest = after.trim_start_matches([' ', '\t']);
        }
        let mut line_brackets = open_brackets;
        for c in rest.chars() {
            match c {
                '[' | '{' => {
                    open_brackets += 1;
                    line_brackets = line_brackets.max(open_brackets);
                }
                ']' | '}' => open_brackets = open_brackets.saturating_sub(1),
                _ => {}
            }
        }
        deepest = deepest.max(indent + indicators + line_brackets);
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deep_or_huge_config_files_are_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("nested.yaml");
        let started = std::time::Instant::now();
        for text in [
            "a: ".to_string() + &"[".repeat(200_000),
            "a:\n".to_string() + &"- ".repeat(200_000) + "x\n",
            (0..200)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect(),
        ] {
            std::fs::write(&nested, text).unwrap();
            let err = read_config_file(&nested).unwrap_err().to_string();
            assert!(err.contains("a config nests at most 64"), "{err}");
        }
        assert!(started.elapsed().as_secs_f64() < 1.0);
        let huge = dir.path().join("huge.toml");
        std::fs::write(&huge, "# padding\n".repeat(200_000)).unwrap();
        let err = read_config_file(&huge).unwrap_err().to_string();
        assert!(err.contains("larger than 1024 KiB"), "{err}");
        // Ordinary nesting still reads.
        let fine = dir.path().join("fine.yaml");
        std::fs::write(&fine, "model-kwargs:\n  - depth=2\nmean: [0.5, 0.5, 0.5]\n").unwrap();
        let value = read_config_file(&fine).unwrap();
        assert_eq!(value["model_kwargs"], json!(["depth=2"]));
    }
}
