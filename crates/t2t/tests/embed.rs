//! `t2t embed` against the model: the stored pre-logits give the model's
//! logits through the head, the stored features are the final norm of the
//! last block's output, and bad input is refused with one `error:` line.

mod support;

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use t2t_data::decode_file;
use t2t_data::transforms::{normalize, EvalTransform, Filter};
use t2t_models::registry::{self, ModelSpec};
use t2t_models::weights::{
    load_state_dict, read_safetensors, state_dict, write_safetensors, HostTensor,
};
use t2t_models::{Model, Taps};

use support::{max_diff, run_t2t};

/// Largest accepted difference between two computations of one value.
const ATOL: f64 = 1e-4;

/// A registered model shrunk by `kwargs`, with random weights saved as a
/// checkpoint in `dir`. The final norm and the head get values far from
/// their initial ones (unit scale, zero shift, weights of std 0.02), so
/// that a missing or misplaced one shows in the comparisons.
fn checkpoint(dir: &Path, name: &str, kwargs: &[&str]) -> (ModelSpec, Model, PathBuf) {
    let mut spec = registry::find(name).unwrap();
    spec.config.apply_kwargs(kwargs).unwrap();
    let model = spec.config.init(&t2t_models::device::for_tests()).unwrap();
    let mut weights = state_dict(&model);
    for (key, offset) in [
        ("norm.weight", 1.0),
        ("norm.bias", 0.0),
        ("head.weight", 0.0),
        ("head.bias", 0.0),
    ] {
        let tensor = weights.tensors.get_mut(key).unwrap();
        for (i, v) in tensor.values.iter_mut().enumerate() {
            *v = offset + 0.5 * (i as f32 * 0.37).sin();
        }
    }
    let model = load_state_dict(model, &weights, "stressed weights").unwrap();
    let path = dir.join(format!("{name}.safetensors"));
    write_safetensors(&path, &weights).unwrap();
    (spec, model, path)
}

/// PNG images of different sizes and content, so that resizing, cropping
/// and every row of the output are exercised.
fn write_images(dir: &Path) -> Vec<PathBuf> {
    [(40, 36), (32, 32), (23, 57)]
        .into_iter()
        .enumerate()
        .map(|(i, (width, height))| {
            let path = dir.join(format!("image{i}.png"));
            image::RgbImage::from_fn(width, height, |x, y| {
                let v = |k: u32| ((x * (7 + k + i as u32) + y * (3 + 2 * k) + 40 * k) % 256) as u8;
                image::Rgb([v(0), v(1), v(2)])
            })
            .save(&path)
            .unwrap();
            path
        })
        .collect()
}

/// The image as the model's evaluation pipeline prepares it, `[1, 3, S, S]`.
fn prepared(spec: &ModelSpec, file: &Path) -> Tensor<4> {
    let size = spec.config.img_size();
    let transform = EvalTransform::new(spec.data.crop_pct, Filter::Bicubic).unwrap();
    let pixels = normalize(
        &transform.apply(&decode_file(file).unwrap(), size),
        t2t_data::stats::single(spec.data.mean),
        t2t_data::stats::single(spec.data.std),
    );
    Tensor::from_data(
        TensorData::new(pixels, [1, 3, size, size]),
        &t2t_models::device::for_tests(),
    )
}

/// Row `i` of a tensor whose first dimension is the image.
fn row(tensor: &HostTensor, i: usize) -> &[f32] {
    let len = tensor.values.len() / tensor.shape[0];
    &tensor.values[i * len..(i + 1) * len]
}

/// `LayerNorm(x)` over rows of `width`, in f64.
fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f64) -> Vec<f32> {
    x.chunks(weight.len())
        .flat_map(|token| {
            let n = token.len() as f64;
            let mean = token.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = token
                .iter()
                .map(|&v| (v as f64 - mean).powi(2))
                .sum::<f64>()
                / n;
            token
                .iter()
                .zip(weight.iter().zip(bias))
                .map(move |(&v, (&w, &b))| {
                    ((v as f64 - mean) / (var + eps).sqrt() * w as f64 + b as f64) as f32
                })
        })
        .collect()
}

/// `x Wᵀ + b` for one vector and a PyTorch `[out, in]` weight, in f64.
fn linear(x: &[f32], weight: &HostTensor, bias: &HostTensor) -> Vec<f32> {
    weight
        .values
        .chunks(x.len())
        .zip(&bias.values)
        .map(|(w, &b)| {
            let dot: f64 = w.iter().zip(x).map(|(&w, &x)| w as f64 * x as f64).sum();
            (dot + b as f64) as f32
        })
        .collect()
}

/// Embeds three images in batches of two through the binary and checks each
/// row against the library model run on that image alone.
fn check(name: &str, kwargs: &[&str], depth: usize, eps: f64) {
    let dir = tempfile::tempdir().unwrap();
    let (spec, model, weights) = checkpoint(dir.path(), name, kwargs);
    let images = write_images(dir.path());
    let output = dir.path().join("embeddings.safetensors");
    let last = (depth - 1).to_string();
    let mut args = vec!["embed", "--model", name, "--model-kwargs"];
    args.extend(kwargs);
    args.extend(["--checkpoint", weights.to_str().unwrap(), "-b", "2"]);
    args.extend(["--layers", &last, "--layers", "0"]);
    args.extend(["-o", output.to_str().unwrap(), "--json"]);
    args.extend(images.iter().map(|p| p.to_str().unwrap()));
    let run = run_t2t(&args, dir.path());
    run.assert_bounded();
    assert_eq!(run.code, Some(0), "{name}: {run:#?}");

    let stored = read_safetensors(&output).unwrap();
    let names: Vec<&str> = stored.tensors.keys().map(String::as_str).collect();
    let last_block = format!("blocks.{last}");
    let mut expected_names = vec!["blocks.0", &last_block, "features", "pre_logits"];
    expected_names.dedup();
    assert_eq!(names, expected_names, "{name}");
    assert_eq!(stored.metadata["model"], name);
    let csv = std::fs::read_to_string(output.with_extension("csv")).unwrap();
    let listed: Vec<String> = images
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{i},{}", p.display()))
        .collect();
    assert_eq!(
        csv,
        format!("index,file\n{}\n", listed.join("\n")),
        "{name}"
    );

    let weights = state_dict(&model).tensors;
    let tensor = |key: &str| &stored.tensors[key];
    let (features, pre_logits) = (tensor("features"), tensor("pre_logits"));
    let width = pre_logits.shape[1];
    assert_eq!(pre_logits.shape, [images.len(), width], "{name}");
    assert_eq!(features.shape[0], images.len(), "{name}");
    assert_eq!(features.shape[2], width, "{name}");
    assert_eq!(tensor(&last_block).shape, features.shape, "{name}");

    let [mut head_diff, mut norm_diff, mut block_diff, mut largest] = [0.0f64; 4];
    for (i, file) in images.iter().enumerate() {
        let input = prepared(&spec, file);
        let mut taps = Taps::only(["block0"]);
        let logits: Vec<f32> = model
            .forward_tapped(input, &mut taps)
            .into_data()
            .try_to_vec()
            .unwrap();
        // The head applied to the stored pre-logits gives the model's logits.
        let from_head = linear(
            row(pre_logits, i),
            &weights["head.weight"],
            &weights["head.bias"],
        );
        head_diff = head_diff.max(max_diff(&from_head, &logits));
        largest = logits.iter().fold(largest, |m, v| m.max(v.abs() as f64));
        // The pre-logits are the class token of the features...
        assert_eq!(row(pre_logits, i), &row(features, i)[..width], "{name}");
        // ...which are the final norm of the last block's output.
        let normed = layer_norm(
            row(tensor(&last_block), i),
            &weights["norm.weight"].values,
            &weights["norm.bias"].values,
            eps,
        );
        norm_diff = norm_diff.max(max_diff(&normed, row(features, i)));
        // Block 0 in a batch of two is block 0 of the image alone.
        let block0 = HostTensor::from_data(taps.into_recorded().remove(0).1);
        block_diff = block_diff.max(max_diff(&block0.values, row(tensor("blocks.0"), i)));
    }
    eprintln!(
        "{name}: max |head(pre_logits) - logits| {head_diff:.2e} (max |logits| {largest:.2}), \
         max |norm(blocks.{last}) - features| {norm_diff:.2e}, \
         max |blocks.0 - alone| {block_diff:.2e}"
    );
    assert!(
        head_diff <= ATOL,
        "{name}: head(pre_logits) differs from the logits by {head_diff:e}"
    );
    assert!(
        norm_diff <= ATOL,
        "{name}: features differ from norm(last block) by {norm_diff:e}"
    );
    assert!(
        block_diff <= ATOL,
        "{name}: blocks.0 differs from the image alone by {block_diff:e}"
    );
}

#[test]
fn t2t_vit_performer_embeddings_give_the_logits() {
    check("t2t_vit_lite_cifar", &["depth=2"], 2, 1e-5);
}

#[test]
fn t2t_vit_transformer_embeddings_give_the_logits() {
    let kwargs = [
        "tokens_type=transformer",
        "embed_dim=64",
        "depth=3",
        "num_heads=2",
    ];
    check("t2t_vit_lite_cifar", &kwargs, 3, 1e-5);
}

#[test]
fn vit_embeddings_give_the_logits() {
    check(
        "vit_cifar",
        &["embed_dim=48", "depth=2", "num_heads=4"],
        2,
        1e-6,
    );
}

#[test]
fn fvit_embeddings_give_the_logits() {
    let kwargs = ["img_size=64", "embed_dim=64", "depth=2", "num_heads=4"];
    check("fvit_base_patch16_224", &kwargs, 2, 1e-6);
}

#[test]
fn bad_input_is_refused_naming_the_file_or_flag() {
    let dir = tempfile::tempdir().unwrap();
    let kwargs = ["embed_dim=32", "depth=2", "num_heads=2"];
    let (_, _, weights) = checkpoint(dir.path(), "t2t_vit_lite_cifar", &kwargs);
    write_images(dir.path());
    std::fs::write(
        dir.path().join("broken.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    let before = std::fs::read_dir(dir.path()).unwrap().count();
    let weights = weights.to_str().unwrap();
    let embed = |extra: &[&str]| {
        let mut args = vec!["embed", "--model", "t2t_vit_lite_cifar", "--model-kwargs"];
        args.extend(kwargs);
        args.extend(["--checkpoint", weights]);
        args.extend(extra);
        run_t2t(&args, dir.path())
    };
    let out = ["-o", "out.safetensors"];
    for (extra, needle) in [
        (vec!["image0.png", "missing.png"], "missing.png"),
        (vec!["image0.png", "broken.png"], "broken.png"),
        (vec!["image0.png", "--layers", "1,2"], "--layers"),
        (vec!["image0.png", "--layers", "x"], "--layers"),
        (vec!["image0.png", "-b", "0"], "--batch-size"),
        (
            vec!["image0.png", "-o", "no/such/folder/out.safetensors"],
            "out.safetensors",
        ),
        (vec!["image0.png", "-o", "out.csv"], "out.csv"),
    ] {
        let mut args = extra.clone();
        if !extra.contains(&"-o") {
            args.extend(out);
        }
        embed(&args).assert_refused(needle);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            before,
            "{extra:?}: a refused run must leave no file behind"
        );
    }
}
