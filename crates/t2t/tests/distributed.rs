//! Data-parallel training under `mpirun`: two processes with batch B train
//! the model that one process trains with batch 2B, end with identical
//! parameters, resume exactly, and stop when one of them is killed.
//! Each run goes over TCP on loopback, as it would between machines.

#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use t2t_models::weights::{read_safetensors, StateDict};
use t2t_train::distributed::checksum;

/// Runs take both cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A recipe with every part that a split could change: drop path and
/// dropout, EMA, clipping and accumulation, on 320 built-in images, so
/// that an epoch is 10 optimizer steps of 2 × 16 images; 2 epochs unless
/// the test says otherwise.
const RECIPE: &[&str] = &[
    "train",
    "--model",
    "t2t_vit_lite_cifar",
    "--synthetic-train-size",
    "320",
    "--synthetic-val-size",
    "50",
    "--warmup-epochs",
    "1",
    "--drop-path",
    "0.2",
    "--drop",
    "0.1",
    "--clip-grad",
    "0.5",
    "--grad-accum-steps",
    "2",
    "--model-ema",
    "true",
    "--model-ema-decay",
    "0.99",
    "--json",
];

fn t2t(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_t2t"));
    command.args(args).env("RAYON_NUM_THREADS", "1");
    command
}

/// The recipe for `epochs` epochs.
fn recipe(epochs: usize) -> Vec<String> {
    let mut args: Vec<String> = RECIPE.iter().map(|a| a.to_string()).collect();
    args.extend(["--epochs".to_string(), epochs.to_string()]);
    args
}

/// `mpirun -np 2 t2t args` over TCP on loopback.
fn mpirun(args: &[&str]) -> Command {
    mpirun_np(2, args)
}

fn mpirun_np(processes: usize, args: &[&str]) -> Command {
    let mut command = Command::new("mpirun");
    command
        .args([
            "-np",
            &processes.to_string(),
            "--oversubscribe",
            "--bind-to",
            "none",
        ])
        .args(["--mca", "btl", "tcp,self", "-x", "RAYON_NUM_THREADS=1"])
        .arg(env!("CARGO_BIN_EXE_t2t"))
        .args(args)
        // Test machines often run as root, which OpenMPI refuses unless told.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    command
}

/// Runs `command` with `extra` arguments and returns its JSON summary.
fn summary(mut command: Command, extra: &[&str]) -> Value {
    let output = command.args(extra).output().unwrap();
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = stdout.lines().rev().find(|l| l.starts_with('{'));
    serde_json::from_str(json.expect("a JSON summary")).unwrap()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The losses of `train_log.csv`, step by step.
fn losses(run: &Path) -> Vec<f64> {
    let log = std::fs::read_to_string(run.join("train_log.csv")).unwrap();
    log.lines()
        .skip(1)
        .map(|line| line.split(',').nth(3).unwrap().parse().unwrap())
        .collect()
}

fn weights(run: &Path, file: &str) -> StateDict {
    read_safetensors(&run.join("last").join(file)).unwrap()
}

fn assert_close(what: &str, a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-5 * a.abs(), "{what}: {a} vs {b}");
}

/// The largest difference between two tensors, relative to the largest
/// magnitude in the first.
fn relative_difference(a: &[f32], b: &[f32]) -> f64 {
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
    let difference = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) as f64;
    difference / scale.max(f64::MIN_POSITIVE)
}

/// Every loss of two runs agrees within 1e-5 relative, and so does every
/// final tensor, raw and EMA, relative to its largest entry.
fn assert_same_run(a: &Path, b: &Path) {
    let (losses_a, losses_b) = (losses(a), losses(b));
    assert_eq!(losses_a.len(), 20, "2 epochs of 10 steps");
    assert_eq!(losses_a.len(), losses_b.len());
    for (step, (x, y)) in losses_a.iter().zip(&losses_b).enumerate() {
        assert_close(&format!("loss of step {}", step + 1), *x, *y);
    }
    let mut worst = 0f64;
    for file in ["model.safetensors", "model-ema.safetensors"] {
        let (wa, wb) = (weights(a, file), weights(b, file));
        assert_eq!(wa.tensors.len(), wb.tensors.len());
        for (key, ta) in &wa.tensors {
            let difference = relative_difference(&ta.values, &wb.tensors[key].values);
            assert!(
                difference <= 1e-5,
                "{file} {key}: {difference:.2e} relative"
            );
            worst = worst.max(difference);
        }
    }
    eprintln!("largest relative difference of a tensor: {worst:.2e}");
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn two_processes_of_batch_b_train_the_model_of_one_process_of_batch_2b() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let alone = summary(
        t2t(&refs(&recipe(2))),
        &["-b", "16", "-o", one.to_str().unwrap()],
    );
    let shared = summary(
        mpirun(&refs(&recipe(2))),
        &["-b", "8", "-o", two.to_str().unwrap()],
    );
    assert_same_run(&one, &two);
    assert_eq!(alone["processes"], 1);
    assert_eq!(shared["processes"], 2);
    // Evaluation counts every image once, whoever evaluates it.
    for key in ["top1", "top5"] {
        assert_eq!(alone[key], shared[key], "{key}");
    }

    // Both processes end with the same parameters, bit for bit: the ones
    // process 0 saved.
    let checksums = shared["checksums"].as_array().unwrap();
    assert_eq!(checksums.len(), 2);
    assert_eq!(checksums[0], checksums[1]);
    let saved = checksum(&weights(&two, "model.safetensors")).rotate_left(1)
        ^ checksum(&weights(&two, "model-ema.safetensors"));
    assert_eq!(checksums[0], format!("{saved:016x}"));
}

#[test]
fn a_stopped_shared_run_resumes_where_the_whole_run_ends_on_two_or_one_process() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir();
    let path = |name: &str| -> PathBuf { dir.path().join(name) };
    let out = |name: &str| path(name).to_str().unwrap().to_string();
    summary(mpirun(&refs(&recipe(2))), &["-b", "8", "-o", &out("whole")]);

    // Stopped mid-epoch, resumed on two processes.
    let stopped = summary(
        mpirun(&refs(&recipe(2))),
        &["-b", "8", "-o", &out("resumed"), "--stop-after-steps", "7"],
    );
    assert_eq!(stopped["finished"], false);
    summary(
        mpirun(&["train", "--resume", &out("resumed"), "--json"]),
        &[],
    );
    assert_same_run(&path("whole"), &path("resumed"));

    // Stopped at the end of epoch 1, resumed by one process with the same
    // batches of 16 images.
    summary(
        mpirun(&refs(&recipe(2))),
        &["-b", "8", "-o", &out("alone"), "--stop-after-steps", "10"],
    );
    let output = t2t(&["train", "--resume", &out("alone"), "--json"])
        .output()
        .unwrap();
    assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("continues on 1 process of 16 images"),
        "{stderr}"
    );
    assert_same_run(&path("whole"), &path("alone"));

    // Three processes cannot share batches of 16 images equally.
    summary(
        mpirun(&refs(&recipe(2))),
        &["-b", "8", "-o", &out("three"), "--stop-after-steps", "3"],
    );
    let output = mpirun_np(3, &["train", "--resume", &out("three")])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("3 processes cannot share 16 images equally"),
        "{stderr}"
    );
}

/// The t2t processes that `mpirun` (process `parent`) started.
fn children(parent: u32) -> Vec<u32> {
    let path = format!("/proc/{parent}/task/{parent}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    child.wait().ok();
    None
}

#[test]
fn a_killed_process_stops_the_run_with_an_error_and_the_checkpoint_stays_loadable() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir();
    let run = dir.path().join("run");
    let mut launched = mpirun(&refs(&recipe(50)))
        .args(["-b", "8", "-o", run.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first epoch's checkpoint is there, then kill process 1.
    let started = Instant::now();
    while !run.join("last/model.safetensors").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ranks = children(launched.id());
    assert_eq!(ranks.len(), 2, "mpirun's children: {ranks:?}");
    // SAFETY: signalling a process this test started.
    unsafe { libc::kill(ranks[1] as libc::pid_t, libc::SIGKILL) };
    let killed_at = Instant::now();
    let status = wait_bounded(&mut launched, Duration::from_secs(30));
    let status = status.expect("the run must stop within 30 s of losing a process");
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut launched.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("signal 9") || stderr.contains("killed"),
        "{stderr}"
    );
    eprintln!(
        "stopped {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );

    // The last checkpoint is whole: validate reads it.
    let output = t2t(&refs(&validate(&run, 50, 16))).output().unwrap();
    assert_success(&output);
}

/// `t2t validate` of the run at `run` on `images` built-in images.
fn validate(run: &Path, images: usize, batch: usize) -> Vec<String> {
    let args = [
        "validate",
        "--model",
        "t2t_vit_lite_cifar",
        "--checkpoint",
        run.to_str().unwrap(),
        "--dataset",
        "synthetic",
        "--synthetic-size",
        &images.to_string(),
        "-b",
        &batch.to_string(),
        "--json",
    ];
    args.iter().map(|a| a.to_string()).collect()
}

#[test]
fn shared_validation_counts_every_image_once() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = temp_dir();
    let run = dir.path().join("run");
    summary(
        t2t(&refs(&recipe(1))),
        &["-b", "16", "-o", run.to_str().unwrap()],
    );
    // 47 images in batches of 3 × 2 processes: the last batch is partial
    // and one process's share of it is empty.
    let validate = validate(&run, 47, 3);
    let alone = summary(t2t(&refs(&validate)), &[]);
    let shared = summary(mpirun(&refs(&validate)), &[]);
    assert_eq!(alone["images"], 47);
    assert_eq!(shared["images"], 47);
    assert_eq!(alone["top1"], shared["top1"]);
    assert_close(
        "loss",
        alone["loss"].as_f64().unwrap(),
        shared["loss"].as_f64().unwrap(),
    );
}
