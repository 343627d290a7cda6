//! One-line errors that name the file they come from.

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::value::Global;

/// A checkpoint that could not be read.
#[derive(Debug, Error)]
#[error("{}: {kind}", path.display())]
pub struct PickleError {
    pub path: PathBuf,
    pub kind: ErrorKind,
}

/// What went wrong.
#[derive(Debug, Error)]
pub enum ErrorKind {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("damaged or truncated zip archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("not a checkpoint: neither a torch zip archive nor a pickle")]
    UnknownFormat,
    #[error("refusing {}: the file calls it while loading", preview(.0))]
    Refused(Global),
    #[error("refusing a tensor held inside a {} object", preview(.0))]
    TensorInObject(Global),
    #[error("the data ends early (truncated file?)")]
    Truncated,
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("no loadable weights (looked for {0})")]
    NoWeights(String),
}

impl ErrorKind {
    pub(crate) fn at(self, path: &Path) -> PickleError {
        PickleError {
            path: path.to_path_buf(),
            kind: self,
        }
    }
}

pub(crate) fn malformed(what: impl Into<String>) -> ErrorKind {
    ErrorKind::Malformed(what.into())
}

/// `value` as text for an error message: cut short after a few dozen
/// characters, control characters escaped, so that a string from a hostile
/// file (megabytes long, or holding newlines) cannot flood the one-line error.
pub(crate) fn preview(value: impl fmt::Display) -> String {
    const MAX_CHARS: usize = 80;
    struct Bounded {
        text: String,
        chars: usize,
    }
    impl fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for c in s.chars() {
                if self.chars == MAX_CHARS {
                    // Stops the formatting of the rest of the value.
                    return Err(fmt::Error);
                }
                self.chars += 1;
                if c.is_control() {
                    self.text.extend(c.escape_debug());
                } else {
                    self.text.push(c);
                }
            }
            Ok(())
        }
    }
    let mut bounded = Bounded {
        text: String::new(),
        chars: 0,
    };
    if fmt::write(&mut bounded, format_args!("{value}")).is_err() {
        bounded.text.push_str("...");
    }
    bounded.text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_short_single_lines() {
        assert_eq!(preview("os.system"), "os.system");
        let huge = format!("a\nb{}", "x".repeat(10_000_000));
        let shown = preview(&huge);
        assert!(
            shown.starts_with("a\\nb") && shown.ends_with("..."),
            "{shown}"
        );
        assert!(shown.len() < 100 && !shown.contains('\n'), "{shown}");
        let list: Vec<u32> = (0..1_000_000).collect();
        assert!(preview(format_args!("{list:?}")).len() < 100);
    }
}
