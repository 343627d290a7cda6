//! Running the `t2t` binary under the limits every input must respect:
//! bounded time and memory, a one-line `error:` and a non-zero exit on bad
//! input, never a panic or a crash.

#![allow(dead_code)] // each test file uses its own part of this module

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The most resident memory any single run may reach.
pub const MAX_RSS_MB: f64 = 1024.0;
/// The longest any single run may take.
pub const MAX_SECONDS: f64 = 10.0;

/// What one bounded run of `t2t` did.
#[derive(Debug)]
pub struct Run {
    /// The exit code; None when killed by a signal (a crash) or for overrunning.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub peak_rss_mb: f64,
    pub seconds: f64,
    pub timed_out: bool,
}

/// Runs `t2t args` with the working directory `dir`, killing it past twice
/// `MAX_SECONDS`, and measures its peak resident memory (`wait4`'s rusage).
// The child is reaped by `wait4`, which the lint does not see.
#[allow(clippy::zombie_processes)]
pub fn run_t2t(args: &[&str], dir: &Path) -> Run {
    let out = tempfile::tempdir().unwrap();
    let (stdout_path, stderr_path) = (out.path().join("stdout"), out.path().join("stderr"));
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_t2t"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut timed_out = false;
    loop {
        // SAFETY: `pid` is our own child; `status` and `usage` are valid out-pointers.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break;
        }
        assert!(done == 0, "wait4 failed");
        if started.elapsed() > Duration::from_secs_f64(2.0 * MAX_SECONDS) {
            timed_out = true;
            // SAFETY: signalling our own child, reaped right after.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let seconds = started.elapsed().as_secs_f64();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Run {
        code,
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        // Linux reports ru_maxrss in KiB.
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        seconds,
        timed_out,
    }
}

impl Run {
    /// Asserts the contract for bad input: a non-zero exit that is neither a
    /// panic's 101 nor a signal, within the time and memory limits, with one
    /// `error:` line that contains `needle`.
    pub fn assert_refused(&self, needle: &str) {
        self.assert_bounded();
        assert!(
            matches!(self.code, Some(c) if c != 0 && c != 101),
            "expected a refusal: {self:#?}"
        );
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "expected one error line: {self:#?}");
        assert!(
            errors[0].contains(needle),
            "the error should mention {needle:?}: {self:#?}"
        );
        assert!(
            !self.stderr.contains("panicked"),
            "a panic is not an error message: {self:#?}"
        );
    }

    /// Asserts that the run stayed within the time and memory limits.
    pub fn assert_bounded(&self) {
        assert!(
            !self.timed_out,
            "killed after {:.1} s: {self:#?}",
            self.seconds
        );
        assert!(
            self.seconds <= MAX_SECONDS,
            "took {:.1} s: {self:#?}",
            self.seconds
        );
        assert!(
            self.peak_rss_mb <= MAX_RSS_MB,
            "peak RSS {:.0} MB: {self:#?}",
            self.peak_rss_mb
        );
    }
}

/// The largest absolute difference between two equally long computations.
pub fn max_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
}

/// Runs `t2t args` to completion, failing the test unless it succeeds.
pub fn t2t_ok(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_t2t"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "t2t {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON object on a run's last line of stdout.
pub fn last_json(output: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().expect("some output")).unwrap()
}

/// A one-block `t2t_vit_lite_cifar`: a training run of a few steps takes
/// moments.
pub const TINY_LITE_KWARGS: [&str; 4] =
    ["--model-kwargs", "embed_dim=64", "depth=1", "num_heads=2"];

/// `t2t validate --json` of the `t2t_vit_lite_cifar` in `run` on 64
/// built-in test images, in batches of 32 as a short run's own evaluation
/// takes them (so that every logit is computed the same way); `extra`
/// holds the model's kwargs and other flags.
pub fn validate_builtin_run(run: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "validate",
        "--model",
        "t2t_vit_lite_cifar",
        "--checkpoint",
        run,
        "--dataset",
        "synthetic",
        "--split",
        "test",
        "--synthetic-size",
        "64",
        "-b",
        "32",
        "--json",
    ];
    args.extend(extra);
    last_json(&t2t_ok(&args))
}
