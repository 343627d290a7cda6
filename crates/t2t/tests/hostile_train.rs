//! Hostile and careless use of `t2t train` and `t2t validate`: settings with
//! no meaning, config bombs, runs that evaluate nothing, resumed runs that do
//! not match, output directories in use or already holding a run, and runs
//! killed at any moment.

mod support;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{run_t2t, Run};

/// A run of the built-in recipe small enough to take seconds.
const TINY: &[&str] = &[
    "--epochs",
    "1",
    "--synthetic-train-size",
    "64",
    "--synthetic-val-size",
    "32",
    "-b",
    "32",
];

fn train(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["train"];
    args.extend(extra);
    args.extend(TINY);
    run_t2t(&args, dir)
}

/// A run in `dir/out` stopped after its first step, leaving a checkpoint.
fn stopped_run(dir: &Path) -> Run {
    let run = train(dir, &["-o", "out", "--stop-after-steps", "1"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    run
}

#[test]
fn settings_without_meaning_are_refused_naming_flag_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let refused: &[(&[&str], &str)] = &[
        (&["--lr=-1"], "--lr -1.0: must be a finite number > 0"),
        (&["--weight-decay=-5"], "--weight-decay -5.0: must be"),
        (&["--smoothing", "2"], "--smoothing 2.0: must be in [0, 1)"),
        (&["--reprob", "2"], "--reprob 2.0: must be in [0, 1]"),
        (
            &["--model-ema-decay", "2"],
            "--model-ema-decay 2.0: must be in [0, 1]",
        ),
        (&["--scale", "1", "0"], "--scale [1.0, 0.0]: must be"),
        (
            &["--grad-accum-steps", "0"],
            "--grad-accum-steps 0: must be in [1,",
        ),
        (&["--mixup=-1"], "--mixup -1.0: must be"),
        (&["--momentum", "5"], "--momentum 5.0: must be in [0, 1)"),
        (&["--crop-pct=-1"], "--crop-pct -1.0: must be in [0.001, 1]"),
        (&["--aa", "rand-q3"], "--aa"),
        (
            &["--stop-after-steps", "0"],
            "--stop-after-steps 0: must be at least 1",
        ),
        (&["--epochs", "0"], "--epochs 0: must be in [1,"),
    ];
    for (flags, needle) in refused {
        let mut args = vec!["train", "-o", "out"];
        args.extend(*flags);
        run_t2t(&args, dir.path()).assert_refused(needle);
    }
    assert!(
        !dir.path().join("out/config.toml").exists(),
        "nothing started"
    );
}

#[test]
fn a_deeply_nested_yaml_config_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let nested = "epochs: ".to_string() + &"[".repeat(200_000) + &"]".repeat(200_000);
    std::fs::write(dir.path().join("deep.yaml"), nested).unwrap();
    let run = run_t2t(&["train", "-c", "deep.yaml", "-o", "out"], dir.path());
    run.assert_refused("a config nests at most 64");
    assert!(run.seconds < 2.0, "{run:#?}");
}

#[test]
fn evaluating_nothing_is_an_error_not_a_score() {
    let dir = tempfile::tempdir().unwrap();
    run_t2t(
        &["train", "-o", "out", "--synthetic-val-size", "0"],
        dir.path(),
    )
    .assert_refused("--synthetic-val-size 0: must be at least 1");

    // An empty CIFAR test split, for training and for validation.
    let cifar = dir.path().join("cifar");
    std::fs::create_dir(&cifar).unwrap();
    let record: Vec<u8> = std::iter::once(3).chain([128; 3072]).collect();
    for batch in 1..=5 {
        std::fs::write(cifar.join(format!("data_batch_{batch}.bin")), &record).unwrap();
    }
    std::fs::write(cifar.join("test_batch.bin"), b"").unwrap();
    let args = ["--dataset", "cifar10", "--data-dir", "cifar"];
    train(dir.path(), &[&["-o", "out"], &args[..]].concat())
        .assert_refused("the evaluation split \"test\" holds no image");

    let spec = t2t_models::registry::find("t2t_vit_lite_cifar").unwrap();
    let model = spec.config.init(&t2t_models::device::for_tests()).unwrap();
    let weights = dir.path().join("weights.safetensors");
    t2t_models::weights::write_safetensors(&weights, &t2t_models::weights::state_dict(&model))
        .unwrap();
    let validate = |extra: &[&str]| {
        let mut all = vec![
            "validate",
            "--model",
            "t2t_vit_lite_cifar",
            "--checkpoint",
            "weights.safetensors",
        ];
        all.extend(extra);
        run_t2t(&all, dir.path())
    };
    validate(&[&args[..], &["--split", "test"]].concat()).assert_refused("no image was evaluated");
    validate(&[
        "--dataset",
        "synthetic",
        "--split",
        "test",
        "--synthetic-size",
        "0",
    ])
    .assert_refused("no image was evaluated");
}

#[test]
fn resuming_refuses_changed_settings_and_a_config_of_another_run() {
    let dir = tempfile::tempdir().unwrap();
    stopped_run(dir.path());
    let resume = |extra: &[&str]| {
        let mut all = vec!["train", "--resume", "out"];
        all.extend(extra);
        run_t2t(&all, dir.path())
    };
    resume(&["--model", "t2t_vit_7"]).assert_refused(
        "--model \"t2t_vit_7\" differs from the resumed run's \"t2t_vit_lite_cifar\"",
    );
    resume(&["--img-size", "48"]).assert_refused("--img-size 48 differs");
    resume(&["-b", "16"]).assert_refused("--batch-size 16 differs");
    resume(&["--epochs", "0"]).assert_refused("--epochs 0: must be in [1,");
    run_t2t(&["train", "--resume", "out/missing"], dir.path())
        .assert_refused("--resume out/missing: no such run directory");

    let config = dir.path().join("out/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "model = \"t2t_vit_lite_cifar\"",
            "model = \"t2t_vit_7_cifar\"",
        ),
    )
    .unwrap();
    resume(&[]).assert_refused("config.toml and the checkpoint describe different runs: model");
    std::fs::write(&config, text.replace("lr = 0.002", "lr = 0.003")).unwrap();
    resume(&[]).assert_refused("describe different runs: recipe");
    std::fs::write(&config, text).unwrap();
    // Flags equal to the run's own are accepted.
    let run = resume(&["--model", "t2t_vit_lite_cifar", "--stop-after-steps", "2"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
}

#[test]
fn a_directory_holding_a_run_is_kept_unless_overwrite_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    stopped_run(dir.path());
    let before = std::fs::read(dir.path().join("out/last/model.safetensors")).unwrap();
    let refused = train(
        dir.path(),
        &["-o", "out", "--stop-after-steps", "1", "--seed", "7"],
    );
    refused.assert_refused("holds a run already");
    assert!(refused.stderr.contains("--resume out") && refused.stderr.contains("--overwrite"));
    let after = std::fs::read(dir.path().join("out/last/model.safetensors")).unwrap();
    assert!(before == after, "the earlier run must stay untouched");

    let replaced = train(
        dir.path(),
        &[
            "-o",
            "out",
            "--overwrite",
            "--stop-after-steps",
            "1",
            "--seed",
            "7",
        ],
    );
    assert_eq!(replaced.code, Some(0), "{replaced:#?}");
    let config = std::fs::read_to_string(dir.path().join("out/config.toml")).unwrap();
    assert!(config.contains("seed = 7"), "{config}");
}

#[test]
fn a_run_directory_in_use_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(out.join("lock"))
        .unwrap();
    lock.lock().unwrap();
    std::fs::write(out.join("lock"), "pid 4242 on elsewhere\n").unwrap();
    train(dir.path(), &["-o", "out"])
        .assert_refused("in use by another run (pid 4242 on elsewhere)");
    assert!(!out.join("config.toml").exists());
    drop(lock);
    let run = train(dir.path(), &["-o", "out", "--stop-after-steps", "1"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
}

/// Starts `t2t args` in `dir` without waiting.
fn spawn(args: &[&str], dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_t2t"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Kills `child` after `delay` unless it ended before; then its stderr
/// when it ended on its own with an error.
fn kill_after(mut child: Child, delay: Duration) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < delay {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return match status.success() {
                true => Ok(()),
                false => Err(stderr),
            };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    Ok(())
}

#[test]
fn a_run_killed_at_any_moment_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["train", "-o", "out", "--recovery-interval", "1"];
    args.extend([
        "--epochs",
        "3",
        "--synthetic-train-size",
        "256",
        "--synthetic-val-size",
        "32",
        "-b",
        "16",
    ]);
    let first = spawn(&args, dir.path());
    // Killed only once the first checkpoint exists: before it there is nothing to resume.
    let waiting = Instant::now();
    while !dir.path().join("out/last").is_dir() {
        assert!(
            waiting.elapsed() < Duration::from_secs(120),
            "no checkpoint written"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    kill_after(first, Duration::ZERO).unwrap();
    // Kill times drawn from a fixed sequence spread over startup, steps and saves.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for attempt in 0..8 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay = Duration::from_millis(300 + state % 1200);
        kill_after(spawn(&["train", "--resume", "out"], dir.path()), delay)
            .unwrap_or_else(|stderr| panic!("resume {attempt} after {delay:?} failed: {stderr}"));
    }
    let last = spawn(&["train", "--resume", "out"], dir.path())
        .wait_with_output()
        .unwrap();
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
