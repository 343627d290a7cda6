use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{ensure, Context, Result};
use burn::tensor::{Tensor, TensorData};
use serde_json::json;
use t2t_models::weights::{
    safetensors_bytes, temp_file_beside, write_then_replace, HostTensor, StateDict,
};

use super::{device_of, image_batches, load_image_run_model, print_json, resolve_image_model};
use crate::cli::EmbedArgs;

/// Embeds every image through the model's evaluation pipeline and writes the
/// tensors (row `i` of each is image `i`) and the CSV that names the images.
pub fn run(args: EmbedArgs) -> Result<ExitCode> {
    let run = &args.run;
    let spec = resolve_image_model(&run.model.model, &run.model.overrides)?;
    let output = &args.output;
    let csv = output.with_extension("csv");
    ensure!(
        csv != *output,
        "-o {}: the file names are written to FILE.csv, so the embeddings need another name, e.g. {}",
        output.display(),
        output.with_extension("safetensors").display()
    );
    ensure!(
        !output.is_dir(),
        "-o {}: is a folder; name the file to write",
        output.display()
    );
    // An unwritable destination is refused before the work, not after it.
    let tensors_file = temp_file_beside(output)?;
    let csv_file = temp_file_beside(&csv)?;
    let mut layers = args.layers.clone();
    layers.sort_unstable();
    layers.dedup();

    let (files, loader) = image_batches(&spec, run, args.batch_size)?;
    let (model, source) = load_image_run_model(&spec, run)?;
    let device = device_of(&model);
    let size = spec.config.img_size();

    let mut stored: Vec<(String, HostTensor)> = Vec::new();
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        let images = Tensor::<4>::from_data(
            TensorData::new(batch.images, [batch.batch_size, 3, size, size]),
            &device,
        );
        let embeddings = model.embed(images, &layers).context("--layers")?;
        if stored.is_empty() {
            stored = embeddings;
        } else {
            // Every batch gives the same tensors in the same order.
            for ((_, all), (_, more)) in stored.iter_mut().zip(embeddings) {
                all.shape[0] += more.shape[0];
                all.values.extend(more.values);
            }
        }
    }

    let shapes: BTreeMap<String, Vec<usize>> = stored
        .iter()
        .map(|(name, t)| (name.clone(), t.shape.clone()))
        .collect();
    let dict = StateDict {
        tensors: stored.into_iter().collect(),
        metadata: [
            ("model", spec.name.to_string()),
            ("weights", source),
            ("images", files.len().to_string()),
            ("files", csv.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    };
    write_then_replace(tensors_file, output, &safetensors_bytes(&dict, output)?)?;
    write_then_replace(csv_file, &csv, file_list(&files).as_bytes())?;

    if args.json {
        print_json(&json!({
            "images": files.len(), "output": output, "files": csv, "tensors": shapes,
        }));
    } else {
        let listed: Vec<String> = shapes
            .iter()
            .map(|(name, shape)| format!("{name} {shape:?}"))
            .collect();
        println!(
            "{}: {} images embedded to {} ({}); file names in {}",
            spec.name,
            files.len(),
            output.display(),
            listed.join(", "),
            csv.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The CSV `index,file`, a row per image in embedding order.
fn file_list(files: &[PathBuf]) -> String {
    let mut csv = String::from("index,file\n");
    for (index, file) in files.iter().enumerate() {
        csv.push_str(&format!("{index},{}\n", csv_field(file)));
    }
    csv
}

/// A path as one CSV field, quoted when it holds a comma, a quote or a line
/// break (RFC 4180).
fn csv_field(path: &Path) -> String {
    let text = path.display().to_string();
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_quoted_only_when_they_need_it() {
        let files = [
            PathBuf::from("a.png"),
            PathBuf::from("b,c.png"),
            PathBuf::from("say \"hi\".png"),
        ];
        assert_eq!(
            file_list(&files),
            "index,file\n0,a.png\n1,\"b,c.png\"\n2,\"say \"\"hi\"\".png\"\n"
        );
    }
}
