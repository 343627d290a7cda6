//! `t2t visualize` against direct computations: the stored rollout and head
//! maps against attention probabilities materialised by the library and
//! rolled out here in f64, the stored feature maps against the block outputs
//! of `Model::embed`, and bad input refused with one `error:` line.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use t2t_models::inspect::AttentionWeights;
use t2t_models::registry;
use t2t_models::weights::{read_safetensors, state_dict, write_safetensors, HostTensor};
use t2t_models::{Model, Taps};

use support::{max_diff, run_t2t};

/// Largest accepted difference between two computations of one value.
const ATOL: f64 = 1e-4;

/// Every block's attention probabilities `[heads][N][N]` of one image.
fn probabilities(model: &Model, input: &HostTensor) -> Vec<Vec<Vec<Vec<f64>>>> {
    let mut blocks = Vec::new();
    model
        .forward_attention(
            input.to_tensor(&t2t_models::device::for_tests()),
            &mut Taps::off(),
            &mut |_, weights| {
                let AttentionWeights::Softmax(p) = weights else {
                    panic!("softmax attention")
                };
                let p = HostTensor::from_data(p.into_data());
                let n = p.shape[3];
                blocks.push(
                    p.values
                        .chunks(n * n)
                        .map(|head| {
                            head.chunks(n)
                                .map(|r| r.iter().map(|&v| v as f64).collect())
                                .collect()
                        })
                        .collect(),
                );
            },
        )
        .unwrap();
    blocks
}

/// Rollout as Abnar & Zuidema define it with vit-explain's options: fuse
/// the heads by their maximum, zero the lowest `discard` fraction (never
/// entry 0), `(A + I) / 2`, normalise the rows, multiply `Â_L ⋯ Â_1`, and
/// take the class token's row over the patches divided by its maximum.
fn direct_rollout(blocks: &[Vec<Vec<Vec<f64>>>], discard: f64) -> Vec<f32> {
    let n = blocks[0][0].len();
    let mut result: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    for heads in blocks {
        let mut a: Vec<f64> = (0..n * n)
            .map(|ij| {
                heads
                    .iter()
                    .map(|h| h[ij / n][ij % n])
                    .fold(f64::MIN, f64::max)
            })
            .collect();
        let mut order: Vec<usize> = (0..n * n).collect();
        order.sort_by(|&i, &j| a[i].total_cmp(&a[j]));
        for &i in &order[..(n as f64 * n as f64 * discard) as usize] {
            if i != 0 {
                a[i] = 0.0;
            }
        }
        let mixed: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                let row: Vec<f64> = (0..n)
                    .map(|j| 0.5 * a[i * n + j] + 0.5 * f64::from(u8::from(i == j)))
                    .collect();
                let sum: f64 = row.iter().sum();
                row.iter().map(|v| v / sum).collect()
            })
            .collect();
        result = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| (0..n).map(|k| mixed[i][k] * result[k][j]).sum())
                    .collect()
            })
            .collect();
    }
    let max = result[0][1..].iter().copied().fold(0.0, f64::max);
    result[0][1..].iter().map(|v| (v / max) as f32).collect()
}

/// Visualises one image with a small random model of `name` and checks the
/// stored maps.
/// The largest difference between the stored feature maps of `layers`
/// (keys `{prefix}.features.block{i}`) and the block outputs of
/// `Model::embed` for the stored input, the class token dropped and the
/// first 64 channels laid out on the patch grid.
fn feature_maps_difference(
    stored: &BTreeMap<String, HostTensor>,
    prefix: &str,
    model: &Model,
    input: &HostTensor,
    layers: &[usize],
) -> f64 {
    let embedded = model
        .embed(input.to_tensor(&t2t_models::device::for_tests()), layers)
        .unwrap();
    let mut difference = 0.0f64;
    for (key, tokens) in embedded.iter().filter(|(k, _)| k.starts_with("blocks.")) {
        let [_, length, width] = tokens.shape[..] else {
            panic!("block outputs are [B, N, C]")
        };
        let (side, channels) = ((length - 1).isqrt(), width.min(64));
        let maps = &stored[&format!("{prefix}.features.block{}", &key["blocks.".len()..])];
        assert_eq!(maps.shape, [channels, side, side], "{prefix} {key}");
        let direct: Vec<f32> = (0..channels)
            .flat_map(|c| (1..=side * side).map(move |t| tokens.values[t * width + c]))
            .collect();
        difference = difference.max(max_diff(&maps.values, &direct));
    }
    difference
}

/// A random model of `name` with `kwargs`, saved in `dir`, and a 40×36
/// test image beside it.
fn model_and_image(dir: &Path, name: &str, kwargs: &[&str]) -> (Model, String, String) {
    let mut spec = registry::find(name).unwrap();
    spec.config.apply_kwargs(kwargs).unwrap();
    let model = spec.config.init(&t2t_models::device::for_tests()).unwrap();
    let weights = dir.join(format!("{name}.safetensors"));
    write_safetensors(&weights, &state_dict(&model)).unwrap();
    let image = dir.join("cat.png");
    image::RgbImage::from_fn(40, 36, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 7) as u8, ((x * y) % 256) as u8])
    })
    .save(&image)
    .unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    (model, path(&weights), path(&image))
}

fn check(name: &str, kwargs: &[&str], t2t: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (model, weights, image) = model_and_image(dir.path(), name, kwargs);
    let maps = dir.path().join("maps.safetensors");
    let out = dir.path().join("pictures");
    let mut args = vec!["visualize", "--model", name, "--model-kwargs"];
    args.extend(kwargs);
    args.extend(["--checkpoint", &weights, "-o", out.to_str().unwrap()]);
    args.extend([
        "--discard-ratio",
        "0.5",
        "--head-fusion",
        "max",
        "--layers",
        "0,1",
    ]);
    args.extend(["--save-maps", maps.to_str().unwrap(), &image]);
    let run = run_t2t(&args, dir.path());
    run.assert_bounded();
    assert_eq!(run.code, Some(0), "{name}: {run:#?}");

    let mut pictures: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pictures.sort();
    let mut expected = vec![
        "cat_features.png",
        "cat_heads_block1.png",
        "cat_rollout.png",
    ];
    if t2t {
        expected.push("cat_t2t_tokens.png");
    }
    assert_eq!(pictures, expected, "{name}");

    let stored: BTreeMap<String, HostTensor> = read_safetensors(&maps)
        .unwrap()
        .tensors
        .into_iter()
        .collect();
    let input = &stored["cat.input"];
    let blocks = probabilities(&model, input);
    let (heads, tokens) = (blocks[0].len(), blocks[0][0].len());
    let side = (tokens - 1).isqrt();

    let rollout = &stored["cat.rollout"];
    assert_eq!(rollout.shape, [side, side], "{name}");
    let rollout_diff = max_diff(&rollout.values, &direct_rollout(&blocks, 0.5));
    assert!(
        rollout_diff < ATOL,
        "{name}: rollout differs by {rollout_diff}"
    );

    let stored_heads = &stored["cat.heads.block1"];
    assert_eq!(stored_heads.shape, [heads, side, side], "{name}");
    let direct_heads: Vec<f32> = blocks[1]
        .iter()
        .flat_map(|head| head[0][1..].iter().map(|&v| v as f32))
        .collect();
    let heads_diff = max_diff(&stored_heads.values, &direct_heads);
    assert!(
        heads_diff < ATOL,
        "{name}: head maps differ by {heads_diff}"
    );

    let features_diff = feature_maps_difference(&stored, "cat", &model, input, &[0, 1]);
    assert!(
        features_diff < ATOL,
        "{name}: feature maps differ by {features_diff}"
    );
    assert_eq!(
        stored.keys().filter(|k| k.starts_with("cat.t2t.")).count(),
        if t2t { 4 } else { 0 },
        "{name}"
    );
    eprintln!(
        "{name}: rollout {rollout_diff:.2e}, heads {heads_diff:.2e}, features {features_diff:.2e}"
    );
}

#[test]
fn vit_maps_match_direct_computations() {
    check(
        "vit_cifar",
        &["depth=2", "embed_dim=64", "num_heads=4"],
        false,
    );
}

#[test]
fn t2t_vit_maps_match_direct_computations() {
    check("t2t_vit_lite_cifar", &["depth=2"], true);
}

#[test]
fn transformer_t2t_vit_maps_match_direct_computations() {
    check(
        "t2t_vit_lite_cifar",
        &["depth=2", "tokens_type=transformer"],
        true,
    );
}

/// Runs `t2t visualize` in `dir` with `args` and reads the saved maps.
fn visualize(dir: &Path, args: &[&str]) -> BTreeMap<String, HostTensor> {
    let maps = dir.join("maps.safetensors");
    let mut all = vec!["visualize"];
    all.extend(args);
    all.extend(["-o", "pictures", "--save-maps", maps.to_str().unwrap()]);
    let run = run_t2t(&all, dir);
    run.assert_bounded();
    assert_eq!(run.code, Some(0), "{run:#?}");
    read_safetensors(&maps)
        .unwrap()
        .tensors
        .into_iter()
        .collect()
}

#[test]
fn fvit_additive_maps_are_the_pooling_weights() {
    let dir = tempfile::tempdir().unwrap();
    let kwargs = [
        "depth=2",
        "embed_dim=64",
        "num_heads=4",
        "patch_size=4",
        "img_size=32",
        "num_classes=10",
    ];
    let (model, weights, image) = model_and_image(dir.path(), "fvit_base_patch16_224", &kwargs);
    let mut args = vec!["--model", "fvit_base_patch16_224", "--model-kwargs"];
    args.extend(kwargs);
    args.extend(["--checkpoint", &weights, "--block", "1", &image]);
    let stored = visualize(dir.path(), &args);

    let mut pooling = Vec::new();
    model
        .forward_attention(
            stored["cat.input"].to_tensor(&t2t_models::device::for_tests()),
            &mut Taps::off(),
            &mut |_, weights| {
                let AttentionWeights::Additive(weights) = weights else {
                    panic!("additive attention")
                };
                pooling.push(weights.map(|w| HostTensor::from_data(w.into_data())));
            },
        )
        .unwrap();
    for (which, direct) in ["alpha", "beta"].into_iter().zip(&pooling[1]) {
        let [_, heads, tokens] = direct.shape[..] else {
            panic!("[B, heads, N]")
        };
        for head in direct.values.chunks(tokens) {
            // Softmax weights over all tokens, the class token's included.
            let total: f64 = head.iter().map(|&v| v as f64).sum();
            assert!((total - 1.0).abs() < 1e-5, "{which}: sums to {total}");
        }
        let patches: Vec<f32> = direct
            .values
            .chunks(tokens)
            .flat_map(|head| head[1..].iter().copied())
            .collect();
        let side = (tokens - 1).isqrt();
        let maps = &stored[&format!("cat.additive_{which}.block1")];
        assert_eq!(maps.shape, [heads, side, side], "{which}");
        let difference = max_diff(&maps.values, &patches);
        assert!(difference < ATOL, "{which} differs by {difference}");
    }
    let features = feature_maps_difference(&stored, "cat", &model, &stored["cat.input"], &[0, 1]);
    assert!(features < ATOL, "feature maps differ by {features}");
}

#[test]
fn compared_models_each_show_their_own_feature_maps() {
    let dir = tempfile::tempdir().unwrap();
    let (t2t, weights, image) = model_and_image(dir.path(), "t2t_vit_lite_cifar", &[]);
    let other_kwargs = ["depth=4", "embed_dim=96", "num_heads=4"];
    let (vit, other_weights, _) = model_and_image(dir.path(), "vit_cifar", &other_kwargs);
    let stored = visualize(
        dir.path(),
        &[
            "--model",
            "t2t_vit_lite_cifar",
            "--checkpoint",
            &weights,
            "--kind",
            "features",
            "--layers",
            "0,3",
            "--compare",
            "vit_cifar",
            "--other-checkpoint",
            &other_weights,
            &image,
            "--other-model-kwargs",
            other_kwargs[0],
            other_kwargs[1],
            other_kwargs[2],
        ],
    );
    let ours = feature_maps_difference(&stored, "cat", &t2t, &stored["cat.input"], &[0, 3]);
    let other_input = &stored["cat.vit_cifar.input"];
    let theirs = feature_maps_difference(&stored, "cat.vit_cifar", &vit, other_input, &[0, 3]);
    assert!(ours < ATOL && theirs < ATOL, "{ours} {theirs}");
    assert!(Path::new(&dir.path().join("pictures/cat_features.png")).is_file());
}

#[test]
fn bad_input_is_refused_naming_the_flag_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = registry::find("vit_cifar").unwrap();
    let mut config = spec.config;
    config
        .apply_kwargs(&["depth=2", "embed_dim=64", "num_heads=4"])
        .unwrap();
    let model = config.init(&t2t_models::device::for_tests()).unwrap();
    let weights = dir.path().join("w.safetensors");
    write_safetensors(&weights, &state_dict(&model)).unwrap();
    let image = dir.path().join("a.png");
    image::RgbImage::new(32, 32).save(&image).unwrap();
    let base = |extra: &[&str]| {
        let mut args = vec![
            "visualize",
            "--model",
            "vit_cifar",
            "--model-kwargs",
            "depth=2",
            "embed_dim=64",
            "num_heads=4",
            "--checkpoint",
            weights.to_str().unwrap(),
            "-o",
            "out",
        ];
        args.extend(extra);
        run_t2t(&args, dir.path())
    };
    let image = image.to_str().unwrap();
    base(&["--kind", "attention", image]).assert_refused("--kind");
    base(&["--kind", "additive", image]).assert_refused("--kind additive");
    base(&["--block", "2", image]).assert_refused("--block 2");
    base(&["--layers", "0,5", image]).assert_refused("--layers 5");
    base(&["--discard-ratio", "1", image]).assert_refused("--discard-ratio");
    base(&["missing.png"]).assert_refused("missing.png");
    assert!(!Path::new(&dir.path().join("out")).exists());
}
