//! The output directory of a run: an exclusive lock so that two runs never
//! write into the same one, and the files a run leaves there.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use t2t_models::import::CheckpointFiles;

use crate::TrainError;

/// The lock file, holding the owner's process id and host.
const LOCK_FILE: &str = "lock";

/// Files and directories a run writes into its directory.
const RUN_FILES: &[&str] = &[
    "config.toml",
    "train_log.csv",
    "summary.csv",
    "curves.png",
    "last",
    "best",
];

/// Checkpoint names of the earlier layout, kept as loose files in the run directory.
const CHECKPOINT_NAMES: &[&str] = &["last", "best"];

/// Holds the exclusive lock on a run directory. The operating system
/// releases it when the file closes, so it also ends with a killed process.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Locks `run` (which must exist), or says which process holds it.
    pub fn acquire(run: &Path) -> Result<Self, TrainError> {
        let path = run.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The holder wrote one short line; more is not ours to print.
                let _ = (&file).take(200).read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "a process that has not yet said which",
                    holder => holder,
                };
                return Err(TrainError::Config(format!(
                    "{}: in use by another run ({holder}); wait for it to end or choose another --output",
                    run.display()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(TrainError::io(&path, e)),
        }
        let holder = format!("pid {} on {}\n", std::process::id(), host_name());
        file.set_len(0)
            .and_then(|()| file.write_all(holder.as_bytes()))
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(Self { _file: file })
    }
}

/// The files of a run found in `run`.
pub fn run_files(run: &Path) -> Vec<PathBuf> {
    let legacy = CHECKPOINT_NAMES.iter().flat_map(|name| {
        let files = CheckpointFiles {
            dir: run.to_path_buf(),
            stem: name.to_string(),
        };
        [files.model(), files.ema(), files.state()]
    });
    RUN_FILES
        .iter()
        .map(|name| run.join(name))
        .chain(legacy)
        .filter(|path| path.exists())
        .collect()
}

/// Whether `name` is a temporary file that a run's writer (`write_atomically`)
/// makes beside one of the run's own files: `.summary.csv.RANDOM.csv` and the like.
pub fn is_temporary_of_run_file(name: &str) -> bool {
    RUN_FILES
        .iter()
        .any(|file| name.starts_with(&format!(".{file}.")))
}

/// Removes the files of the run in `run`, leaving anything else there.
pub fn clear_run(run: &Path) -> Result<(), TrainError> {
    for path in run_files(run) {
        let removed = match path.is_dir() {
            true => std::fs::remove_dir_all(&path),
            false => std::fs::remove_file(&path),
        };
        removed.map_err(|e| TrainError::io(&path, e))?;
    }
    Ok(())
}

/// This machine's name, for telling the user where a lock's holder runs.
fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the pointer and length describe `buffer`, which outlives the call.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return "an unknown host".to_string();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_of_run_files_are_told_from_other_files() {
        assert!(is_temporary_of_run_file(".curves.png.g4WzqD.png"));
        assert!(is_temporary_of_run_file(".summary.csv.x1.csv"));
        assert!(!is_temporary_of_run_file(".notes.txt.a"));
        assert!(!is_temporary_of_run_file("summary.csv"));
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_ends() {
        let run = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(run.path()).unwrap();
        let err = RunLock::acquire(run.path()).unwrap_err().to_string();
        let holder = format!("pid {} on {}", std::process::id(), host_name());
        assert!(err.contains(&holder), "{err}");
        drop(first);
        RunLock::acquire(run.path()).unwrap();
    }

    #[test]
    fn clearing_a_run_keeps_other_files() {
        let run = tempfile::tempdir().unwrap();
        for file in [
            "config.toml",
            "last.safetensors",
            "best-state.safetensors",
            "notes.txt",
        ] {
            std::fs::write(run.path().join(file), "x").unwrap();
        }
        std::fs::create_dir(run.path().join("last")).unwrap();
        std::fs::write(run.path().join("last/model.safetensors"), "x").unwrap();
        assert_eq!(run_files(run.path()).len(), 4);
        clear_run(run.path()).unwrap();
        assert!(run_files(run.path()).is_empty());
        assert!(run.path().join("notes.txt").is_file());
    }
}
