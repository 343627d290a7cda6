use std::process::ExitCode;
use std::rc::Rc;

use anyhow::{bail, Result};
use serde_json::json;
use t2t_data::Shard;
use t2t_models::import::WeightsChoice;
use t2t_train::config::choice_name;
use t2t_train::data::{eval_loader_config, open_split, LoaderSource};
use t2t_train::distributed::Collective;
use t2t_train::trainer::evaluate;

use super::{eval_data_config, load_model, open_device, print_json, resolve_image_model};
use crate::cli::ValidateArgs;

/// Evaluates a checkpoint; under `mpirun` each process evaluates its shard
/// of every batch and process 0 reports the totals.
pub fn run(args: ValidateArgs, processes: Rc<dyn Collective>) -> Result<ExitCode> {
    let spec = resolve_image_model(&args.model.model, &args.model.overrides)?;
    let placement = open_device(&args.device)?;
    let (model, source) = load_model(
        &spec,
        &args.checkpoint,
        WeightsChoice::from_flags(args.no_ema, args.ema),
        &placement.device,
    )?;
    let img_size = spec.config.img_size();
    let dataset = open_split(
        args.dataset,
        args.data_dir.as_deref(),
        &args.split,
        args.class_map.as_deref(),
        (args.synthetic_size, img_size, args.seed),
    )?;
    let classes = spec.config.num_classes();
    let mut config = eval_loader_config(
        &eval_data_config(&spec.data, &args.transform),
        args.batch_size,
        img_size,
        classes,
    )?;
    config.shard = Shard {
        index: processes.rank(),
        count: processes.world_size(),
    };
    let metrics = evaluate(&model, &LoaderSource::new(dataset, config)?, &*processes)?;
    if metrics.images == 0 {
        bail!(
            "--dataset {} --split {}: no image was evaluated, the split holds none",
            choice_name(args.dataset),
            args.split
        );
    }
    if !processes.leads() {
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        print_json(&json!({
            "top1": metrics.top1, "top5": metrics.top5, "loss": metrics.loss, "images": metrics.images,
            "unreadable": metrics.unreadable, "weights": source,
            "backend": placement.backend, "adapter": placement.adapter,
        }));
    } else {
        let unreadable = match metrics.unreadable {
            0 => String::new(),
            n => format!(", {n} unreadable skipped"),
        };
        println!(
            "{}: top-1 {:.2}  top-5 {:.2}  loss {:.4}  ({} images{unreadable}, {source})",
            spec.name, metrics.top1, metrics.top5, metrics.loss, metrics.images
        );
    }
    Ok(ExitCode::SUCCESS)
}
