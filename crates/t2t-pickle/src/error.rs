//! One-line errors that name the file they come from.

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
    #[error("refusing {0}: the file calls it while loading")]
    Refused(Global),
    #[error("refusing a tensor held inside a {0} object")]
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
