use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, ensure, Context, Result};
use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};
use serde_json::json;
use t2t_models::registry::imagenet_class_names;

use super::{device_of, image_batches, load_image_run_model, print_json, resolve_image_model};
use crate::cli::PredictArgs;

/// Images per forward pass.
const CHUNK: usize = 16;

pub fn run(args: PredictArgs) -> Result<ExitCode> {
    let run = &args.run;
    let spec = resolve_image_model(&run.model.model, &run.model.overrides)?;
    let classes = spec.config.num_classes();
    ensure!(
        classes > 0,
        "predict needs class scores, and --num-classes 0 (num_classes=0) builds a model without a head"
    );
    ensure!(args.topk >= 1, "--topk must be at least 1");
    let names = class_names(args.class_map.as_deref(), classes)?;
    let (files, loader) = image_batches(&spec, run, CHUNK)?;
    let (model, _) = load_image_run_model(&spec, run)?;
    let device = device_of(&model);
    let size = spec.config.img_size();

    let mut predictions = Vec::new();
    for (batch, chunk) in loader.epoch(0, 0).zip(files.chunks(CHUNK)) {
        let batch = batch?;
        let images = Tensor::<4>::from_data(
            TensorData::new(batch.images, [chunk.len(), 3, size, size]),
            &device,
        );
        let logits = model.forward(images);
        let values: Vec<f32> = logits.clone().into_data().try_to_vec().expect("f32 output");
        if let Some(row) = values
            .chunks(classes)
            .position(|row| row.iter().any(|v| !v.is_finite()))
        {
            bail!(
                "{}: the model produced non-finite logits (NaN or infinity) for {}",
                run.checkpoint.display(),
                chunk[row].display()
            );
        }
        let probs: Vec<f32> = softmax(logits, 1)
            .into_data()
            .try_to_vec()
            .expect("f32 output");
        for (file, row) in chunk.iter().zip(probs.chunks(classes)) {
            predictions.push((file.clone(), top_k(row, args.topk)));
        }
    }

    if args.json {
        let items: Vec<_> = predictions
            .iter()
            .map(|(file, top)| {
                let topk: Vec<_> = top
                    .iter()
                    .map(|&(i, p)| json!({"class": names[i], "index": i, "prob": p}))
                    .collect();
                json!({"file": file, "topk": topk})
            })
            .collect();
        print_json(&json!({ "predictions": items }));
    } else if args.csv {
        println!("file,rank,index,class,prob");
        for (file, top) in &predictions {
            for (rank, &(i, p)) in top.iter().enumerate() {
                println!(
                    "{},{},{i},\"{}\",{p:.6}",
                    file.display(),
                    rank + 1,
                    names[i].replace('"', "\"\"")
                );
            }
        }
    } else {
        for (file, top) in &predictions {
            println!("{}", file.display());
            for &(i, p) in top {
                println!("  {:>6.2}%  {:>4}  {}", 100.0 * p, i, names[i]);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `k` most probable classes, most probable first.
fn top_k(probs: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = probs.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    ranked
}

fn class_names(class_map: Option<&Path>, classes: usize) -> Result<Vec<String>> {
    let names = match class_map {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| path.display().to_string())?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        None if classes == 1000 => imagenet_class_names(),
        None => (0..classes).map(|i| i.to_string()).collect::<Vec<_>>(),
    };
    if names.len() != classes {
        bail!(
            "{}: {} class names for a model with {classes} classes",
            class_map.map_or("the built-in class list".into(), |p| p
                .display()
                .to_string()),
            names.len()
        );
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::top_k;

    #[test]
    fn top_k_orders_by_probability_then_index() {
        assert_eq!(
            top_k(&[0.1, 0.5, 0.1, 0.3], 3),
            vec![(1, 0.5), (3, 0.3), (0, 0.1)]
        );
        assert_eq!(top_k(&[1.0], 5).len(), 1);
    }
}
