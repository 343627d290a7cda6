//! Hostile images, image folders, transform settings and patterns: each is
//! refused with one `error:` line, or handled within the time and memory
//! limits, and never counted as something it is not.

// `run_t2t` reaps its child with `wait4`, which clippy does not recognise.
#[allow(clippy::zombie_processes)]
mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{run_t2t, Run};
use t2t_models::registry;
use t2t_models::weights::{state_dict, write_safetensors};
use t2t_testing::write_png_header;

/// A small T2T-ViT-7, quick to build and run at 224.
const KWARGS: [&str; 3] = ["embed_dim=64", "depth=1", "num_heads=2"];

/// The initial weights of the small model, as safetensors in `dir`.
fn tiny_weights(dir: &Path) -> PathBuf {
    let mut config = registry::find("t2t_vit_7").unwrap().config;
    config.apply_kwargs(&KWARGS).unwrap();
    let path = dir.join("tiny.safetensors");
    write_safetensors(
        &path,
        &state_dict(&config.init(&t2t_models::device::for_tests()).unwrap()),
    )
    .unwrap();
    path
}

/// `t2t <command> --model t2t_vit_7 --checkpoint <weights> <args> --model-kwargs ...`,
/// the kwargs last as they take every value after them.
fn run_tiny(command: &str, weights: &Path, args: &[&str], dir: &Path) -> Run {
    let mut all = vec![
        command,
        "--model",
        "t2t_vit_7",
        "--checkpoint",
        weights.to_str().unwrap(),
    ];
    all.extend(args);
    all.push("--model-kwargs");
    all.extend(KWARGS);
    run_t2t(&all, dir)
}

fn write_png(path: &Path, width: u32, height: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 77]))
        .save(path)
        .unwrap();
}

fn write_not_an_image(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
}

/// A JPEG cut off a third of the way before its end.
fn write_truncated_jpeg(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(256, 192, |x, y| image::Rgb([x as u8, y as u8, 5]))
        .save(path)
        .unwrap();
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() * 2 / 3]).unwrap();
}

fn last_json(run: &Run) -> Value {
    serde_json::from_str(run.stdout.lines().last().expect("some output")).unwrap()
}

#[test]
fn predict_on_a_one_pixel_wide_image_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let weights = tiny_weights(dir.path());
    // 254 bytes of PNG each; resizing all of one before the crop took 11 GB.
    write_png(&dir.path().join("tall.png"), 1, 60_000);
    write_png(&dir.path().join("wide.png"), 60_000, 1);
    let run = run_tiny(
        "predict",
        &weights,
        &["tall.png", "wide.png", "--json"],
        dir.path(),
    );
    run.assert_bounded();
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(last_json(&run)["predictions"].as_array().unwrap().len(), 2);
    eprintln!("1x60000 and 60000x1: peak RSS {:.0} MB", run.peak_rss_mb);
}

#[test]
fn predict_refuses_a_crop_pct_outside_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let weights = tiny_weights(dir.path());
    write_png(&dir.path().join("a.png"), 40, 30);
    for crop_pct in ["0", "-1", "1.5", "NaN", "0.0001"] {
        let flag = format!("--crop-pct={crop_pct}");
        let run = run_tiny("predict", &weights, &["a.png", &flag], dir.path());
        run.assert_refused("--crop-pct");
        assert!(run.stderr.contains("[0.001, 1]"), "{run:#?}");
    }
    // The smallest accepted value zooms into the centre without a blow-up.
    let run = run_tiny(
        "predict",
        &weights,
        &["a.png", "--crop-pct", "0.001"],
        dir.path(),
    );
    run.assert_bounded();
    assert_eq!(run.code, Some(0), "{run:#?}");
}

#[test]
fn predict_refuses_an_image_over_the_pixel_limit_before_decoding_it() {
    let dir = tempfile::tempdir().unwrap();
    let weights = tiny_weights(dir.path());
    // Decoded, 20000 x 20000 RGB would take 1.2 GB.
    write_png_header(&dir.path().join("huge.png"), 20_000, 20_000);
    let run = run_tiny("predict", &weights, &["huge.png"], dir.path());
    run.assert_refused("huge.png");
    assert!(run.stderr.contains("1 to 89478485"), "{run:#?}");
}

#[test]
fn glob_patterns_with_many_stars_are_answered_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("dir");
    write_png(&images.join(format!("{}.png", "a".repeat(60))), 2, 2);
    // Backtracking over every split of the name took exponential time.
    let many = format!("dir/{}b", "*a".repeat(20));
    let run = run_t2t(
        &[
            "predict",
            "--model",
            "t2t_vit_7",
            "--checkpoint",
            "none",
            &many,
        ],
        dir.path(),
    );
    run.assert_refused("no image found");
    // Runs of stars are not a file-name pattern.
    let stars = "dir/********************b";
    let run = run_t2t(
        &[
            "predict",
            "--model",
            "t2t_vit_7",
            "--checkpoint",
            "none",
            stars,
        ],
        dir.path(),
    );
    run.assert_refused("invalid pattern");
    let filter = format!("{}b", "*t".repeat(20));
    let run = run_t2t(&["models", "--filter", &filter, "--json"], dir.path());
    run.assert_bounded();
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(last_json(&run)["models"], serde_json::json!([]));
}

#[test]
fn validate_leaves_out_unreadable_images_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let weights = tiny_weights(dir.path());
    let val = dir.path().join("data/val");
    write_png(&val.join("a/1.png"), 40, 30);
    write_png(&val.join("a/2.png"), 30, 40);
    write_not_an_image(&val.join("a/3.jpg"));
    write_png(&val.join("b/1.png"), 32, 32);
    write_truncated_jpeg(&val.join("b/2.jpg"));
    let run = run_tiny(
        "validate",
        &weights,
        &["--data-dir", "data", "--json"],
        dir.path(),
    );
    run.assert_bounded();
    assert_eq!(run.code, Some(0), "{run:#?}");
    let report = last_json(&run);
    assert_eq!(report["images"], 4, "{run:#?}");
    assert_eq!(report["unreadable"], 1, "{run:#?}");
    let warned = |needle: &str| {
        run.stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains(needle))
    };
    assert!(warned("a/3.jpg"), "{run:#?}");
    assert!(warned("b/2.jpg") && warned("truncated JPEG"), "{run:#?}");
}

#[test]
fn a_folder_with_no_readable_image_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let weights = tiny_weights(dir.path());
    for split in ["train", "val"] {
        for name in ["a/1.jpg", "a/2.jpg", "b/1.jpg"] {
            write_not_an_image(&dir.path().join("data").join(split).join(name));
        }
    }
    let run = run_tiny("validate", &weights, &["--data-dir", "data"], dir.path());
    run.assert_refused("data/val: none of its 3 samples can be read");
    let run = run_t2t(
        &[
            "train",
            "--dataset",
            "folder",
            "--data-dir",
            "data",
            "--model",
            "t2t_vit_7",
            "--batch-size",
            "2",
            "--workers",
            "2",
            "--epochs",
            "1",
            "-o",
            "run",
            "--model-kwargs",
            KWARGS[0],
            KWARGS[1],
            KWARGS[2],
        ],
        dir.path(),
    );
    run.assert_refused("data/train: none of its 3 samples can be read");
}

#[test]
fn train_refuses_a_zero_crop_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_t2t(
        &[
            "train",
            "--train-transform",
            "rrc",
            "--ratio",
            "0",
            "0",
            "--epochs",
            "1",
            "-o",
            "run",
        ],
        dir.path(),
    );
    run.assert_refused("--ratio");
}

#[cfg(unix)]
#[test]
fn a_class_folder_name_that_is_not_utf8_is_named() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let weights = tiny_weights(dir.path());
    let class = dir
        .path()
        .join("data/val")
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    write_png(&class.join("1.png"), 8, 8);
    let run = run_tiny("validate", &weights, &["--data-dir", "data"], dir.path());
    run.assert_refused("class folder name is not valid UTF-8");
    assert!(run.stderr.contains("caf\u{fffd}"), "{run:#?}");
}
