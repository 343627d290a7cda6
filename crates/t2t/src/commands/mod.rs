mod bench;
mod convert;
mod embed;
mod export;
mod info;
mod models;
mod predict;
mod train;
mod validate;
mod verify;
mod visualize;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use burn::module::Module;
use burn::tensor::Device;
use t2t_data::{has_image_extension, ImageFiles, Loader, Unreadable};
use t2t_models::device::{self, Placement};
use t2t_models::import::{import_weights, Imported, WeightsChoice};
use t2t_models::registry::{self, DataConfig, ModelSpec};
use t2t_models::weights::load_state_dict;
use t2t_models::Model;
use t2t_train::data::eval_loader_config;
use t2t_train::distributed::{self, Collective};

use crate::cli::{Cli, Command, DeviceArgs, EvalTransformArgs, ImageRunArgs, ModelOverrides};

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Models(args) => models::run(args),
        Command::Info(args) => info::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Export(args) => export::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Visualize(args) => visualize::run(*args),
        Command::Train(args) => shared(|processes| train::run(*args, processes)),
        Command::Validate(args) => shared(|processes| validate::run(args, processes)),
    }
}

/// Runs a command whose work the processes started by `mpirun` share. When
/// it fails in one of several processes, all of them end at once, because
/// the others would wait for it forever.
fn shared(command: impl FnOnce(Rc<dyn Collective>) -> Result<ExitCode>) -> Result<ExitCode> {
    let processes = distributed::join()?;
    let result = command(Rc::clone(&processes));
    if let Err(error) = &result {
        if processes.world_size() > 1 {
            crate::print_error(error);
            processes.abort(2);
        }
    }
    result
}

/// The registered spec with the command line's overrides applied:
/// `--model-kwargs`, then `--img-size` and `--num-classes`.
pub fn resolve_model(name: &str, overrides: &ModelOverrides) -> Result<ModelSpec> {
    let mut spec = registry::find(name)?;
    overrides.apply(&mut spec.config)?;
    Ok(spec)
}

/// The model of a command that reads images: images are decoded as RGB, so
/// the model must take three input channels.
pub fn resolve_image_model(name: &str, overrides: &ModelOverrides) -> Result<ModelSpec> {
    check_image_model(resolve_model(name, overrides)?)
}

/// `spec`, when its model takes the three channels images are read as.
pub fn check_image_model(spec: ModelSpec) -> Result<ModelSpec> {
    let channels = spec.config.in_chans();
    if channels != 3 {
        bail!(
            "{}: in_chans {channels}: images are read as RGB, so this command needs a model of 3 input channels",
            spec.name
        );
    }
    Ok(spec)
}

/// A model's evaluation settings with the command line's changes.
pub fn eval_data_config(model: &DataConfig, args: &EvalTransformArgs) -> DataConfig {
    let triple = |v: &Option<Vec<f64>>| v.as_ref().map(|v| [v[0], v[1], v[2]]);
    model.with_overrides(triple(&args.mean), triple(&args.std), args.crop_pct)
}

/// Prints `value` as the one JSON object on stdout's last line.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

pub fn giga(n: u64) -> String {
    format!("{:.3}G", n as f64 / 1e9)
}

/// The model of `spec` on `device` with the weights of `path` (see
/// [`load_weights`]), and where in the file they were found.
pub fn load_model(
    spec: &ModelSpec,
    path: &Path,
    choice: WeightsChoice,
    device: &Device,
) -> Result<(Model, String)> {
    let imported = load_weights(path, choice)?;
    let model = spec.config.init(device)?;
    let model = load_state_dict(model, &imported.dict, &imported.source)?;
    Ok((model, imported.source))
}

/// The model of an image command, with the weights and on the device its
/// flags name.
pub fn load_image_run_model(spec: &ModelSpec, run: &ImageRunArgs) -> Result<(Model, String)> {
    load_model(
        spec,
        &run.checkpoint,
        WeightsChoice::from_flags(run.no_ema, false),
        &open_device(&run.device)?.device,
    )
}

/// The device that `--device` names (a GPU is opened once per process).
pub fn open_device(args: &DeviceArgs) -> Result<Placement> {
    Ok(device::open(args.device)?)
}

/// The device a model lives on.
pub fn device_of(model: &Model) -> Device {
    model
        .devices()
        .into_iter()
        .next()
        .expect("a model lives on a device")
}

/// Reads weights in any importable format, raw or EMA as `choice` says, and
/// says on stderr which file and key it used.
pub fn load_weights(path: &Path, choice: WeightsChoice) -> Result<Imported> {
    let imported = import_weights(path, choice)?;
    eprintln!("loaded {}", imported.source);
    Ok(imported)
}

/// A shell pattern for names: `*` matches any run of characters, `?` any
/// one, `[...]` one of a set. The `glob` crate's matcher gives up on a
/// branch as soon as the rest of the pattern cannot fit, so hostile
/// patterns cost polynomial time, not exponential.
pub fn name_pattern(pattern: &str) -> Result<glob::Pattern> {
    glob::Pattern::new(pattern).with_context(|| format!("invalid pattern {pattern:?}"))
}

/// Files, folders (their images, sorted) and glob patterns (`*`, `?`,
/// `[...]` in the file name).
/// The images an image command names, in order, and the loader that
/// batches them through the model's evaluation pipeline, the one `validate`
/// uses. An unreadable image ends the command: row `i` must be image `i`.
pub fn image_batches(
    spec: &ModelSpec,
    run: &ImageRunArgs,
    batch_size: usize,
) -> Result<(Vec<PathBuf>, Loader)> {
    let files = expand_inputs(&run.images)?;
    // One class: the images have no labels, and the loader's targets go unused.
    let mut config = eval_loader_config(
        &eval_data_config(&spec.data, &run.transform),
        batch_size,
        spec.config.img_size(),
        1,
    )?;
    config.unreadable = Unreadable::Fail;
    let loader = Loader::new(Arc::new(ImageFiles::new(files.clone())), config)?;
    Ok((files, loader))
}

pub fn expand_inputs(inputs: &[String]) -> Result<Vec<PathBuf>> {
    let list = |dir: &Path, keep: &dyn Fn(&Path) -> bool| -> Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| dir.display().to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && keep(p))
            .collect();
        files.sort();
        Ok(files)
    };
    let mut files = Vec::new();
    for input in inputs {
        let path = Path::new(input);
        let found = if path.is_dir() {
            list(path, &has_image_extension)?
        } else if input.contains(['*', '?']) {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let pattern = name_pattern(
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default(),
            )
            .with_context(|| input.clone())?;
            list(dir, &|p: &Path| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| pattern.matches(n))
            })?
        } else if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            bail!("{input}: no such file or folder");
        };
        ensure!(
            !found.is_empty(),
            "{input}: no image found (jpg, jpeg, png, webp)"
        );
        files.extend(found);
    }
    Ok(files)
}
