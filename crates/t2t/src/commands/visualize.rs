//! `t2t visualize`: attention rollout, per-head attention, block feature
//! maps and FViT's additive weights of images, as PNGs and optionally as
//! the raw arrays.

mod draw;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, ensure, Context, Result};
use burn::tensor::{Tensor, TensorData};
use t2t_data::{Batch, Image, Loader};
use t2t_models::import::WeightsChoice;
use t2t_models::inspect::{AttentionWeights, HeadFusion, Rollout};
use t2t_models::registry::ModelSpec;
use t2t_models::weights::{write_safetensors, HostTensor, StateDict};
use t2t_models::{taps, Model, Taps};

use super::{
    device_of, eval_data_config, image_batches, load_image_run_model, load_model, open_device,
    resolve_image_model,
};
use crate::cli::{HeadFusionArg, ImageRunArgs, ModelOverrides, VisualKind, VisualizeArgs};
use draw::{overlay, photo, tiles, Figure, Grid, Panel};

/// Channels shown (and stored) of each feature map, as in the paper's Figure 2.
const CHANNELS: usize = 64;
/// Side of the image panels of `rollout`.
const IMAGE_PANEL: u32 = 224;
/// Side of the per-head panels of `heads` and `additive`.
const HEAD_PANEL: u32 = 112;
/// Side of one channel's tile in `features`.
const TILE: u32 = 28;
/// T2T-ViT's token maps, in the order the T2T module computes them, with
/// their captions.
const T2T_TAPS: [(&str, &str); 4] = [
    ("t2t_split0", "soft split 0"),
    ("t2t_attn1", "T2T layer 1"),
    ("t2t_attn2", "T2T layer 2"),
    ("t2t_tokens", "soft split 2 + projection"),
];

/// How a model's blocks mix their tokens, which decides the pictures it has.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mixing {
    Softmax,
    Additive,
    Other,
}

/// A model to look into, with the normalisation of its input.
struct Subject {
    spec: ModelSpec,
    name: String,
    model: Model,
    mean: [f64; 3],
    std: [f64; 3],
}

impl Subject {
    fn new(spec: &ModelSpec, model: Model, run: &ImageRunArgs) -> Self {
        let data = eval_data_config(&spec.data, &run.transform);
        Self {
            spec: spec.clone(),
            name: spec.name.to_string(),
            model,
            mean: data.mean,
            std: data.std,
        }
    }

    /// The images of `run`, one at a time through this model's evaluation
    /// pipeline (`validate`'s), as `[1, 3, S, S]` inputs.
    fn inputs(&self, run: &ImageRunArgs) -> Result<(Vec<PathBuf>, Loader)> {
        image_batches(&self.spec, run, 1)
    }

    /// The RGB image an input `[1, 3, S, S]` was normalised from.
    fn photo(&self, input: &HostTensor) -> Image {
        let size = input.shape[3];
        let plane = size * size;
        let mut pixels = vec![0u8; 3 * plane];
        for (c, channel) in input.values.chunks(plane).enumerate() {
            for (i, &v) in channel.iter().enumerate() {
                let value = (v as f64 * self.std[c] + self.mean[c]) * 255.0;
                pixels[3 * i + c] = value.round().clamp(0.0, 255.0) as u8;
            }
        }
        Image::new(size, size, pixels)
    }

    fn mixing(&self) -> Mixing {
        match self.model {
            Model::T2tVit(_) | Model::Vit(_) => Mixing::Softmax,
            Model::Fvit(_) => Mixing::Additive,
            Model::T2tVitGhost(_) | Model::T2tVitDense(_) => Mixing::Other,
        }
    }

    /// Refuses a block index past the model's last block, naming the flag.
    fn check_block(&self, flag: &str, block: usize) -> Result<()> {
        let depth = self.model.depth();
        ensure!(
            block < depth,
            "{flag} {block}: {} has {depth} blocks, counted from 0",
            self.name
        );
        Ok(())
    }
}

/// What to compute of each image.
#[derive(Clone)]
struct Request {
    kinds: BTreeSet<VisualKind>,
    /// The block of `heads` and `additive`.
    block: usize,
    /// The blocks of `features`.
    layers: Vec<usize>,
    fusion: HeadFusion,
    discard_ratio: f64,
}

/// Everything computed of one image by one model.
struct Look {
    /// The cropped RGB image the model saw.
    photo: Image,
    /// The model's input `[1, 3, S, S]`.
    input: HostTensor,
    rollout: Option<Grid>,
    /// The class token's attention per head of the chosen block.
    heads: Vec<Grid>,
    /// α and β per head of the chosen block.
    additive: Option<[Vec<Grid>; 2]>,
    /// The first channels of each chosen block's patch tokens.
    features: Vec<(usize, Vec<Grid>)>,
    /// The first channels of T2T-ViT's token maps, with their tap names.
    t2t: Vec<(&'static str, Vec<Grid>)>,
}

impl Subject {
    /// Runs one input `[1, 3, S, S]` through the model once, computing what
    /// `request` asks.
    fn look(&self, input: HostTensor, request: &Request) -> Result<Look> {
        let photo = self.photo(&input);
        let images = Tensor::<4>::from_data(
            TensorData::new(input.values.clone(), input.shape.clone()),
            &device_of(&self.model),
        );
        let wants = |kind| request.kinds.contains(&kind);
        let t2t_maps = wants(VisualKind::Features) && matches!(self.model, Model::T2tVit(_));
        let mut tap_names: Vec<String> = Vec::new();
        if wants(VisualKind::Features) {
            tap_names.extend(request.layers.iter().map(|b| format!("block{b}")));
        }
        if t2t_maps {
            tap_names.extend(T2T_TAPS.iter().map(|(tap, _)| tap.to_string()));
        }
        let mut taps = Taps::only(tap_names);

        let mut rollout = wants(VisualKind::Rollout).then(|| Rollout::new(request.discard_ratio));
        let mut heads = Ok(Vec::new());
        let mut additive = None;
        if [VisualKind::Rollout, VisualKind::Heads, VisualKind::Additive]
            .into_iter()
            .any(wants)
        {
            let mut visit = |index: usize, weights: AttentionWeights| match weights {
                AttentionWeights::Softmax(probabilities) => {
                    if index == request.block && wants(VisualKind::Heads) {
                        // [1, H, N, N] → the class token's row over the patches.
                        let [_, h, n, _] = probabilities.dims();
                        let row = probabilities.clone().slice([0..1, 0..h, 0..1, 1..n]);
                        heads = per_head(row.into_data(), n - 1);
                    }
                    if let Some(rollout) = &mut rollout {
                        rollout.push(taps::owned(request.fusion.fuse(probabilities).into_data()));
                    }
                }
                AttentionWeights::Additive([alpha, beta]) if index == request.block => {
                    let [_, h, n] = alpha.dims();
                    let patches =
                        |w: Tensor<3>| per_head(w.slice([0..1, 0..h, 1..n]).into_data(), n - 1);
                    additive = Some([patches(alpha), patches(beta)]);
                }
                AttentionWeights::Additive(_) => {}
            };
            self.model
                .forward_attention(images, &mut taps, &mut visit)?;
        } else {
            self.model.forward_tapped(images, &mut taps);
        }

        let mut recorded: HashMap<String, TensorData> = taps.into_recorded().into_iter().collect();
        let mut channel_maps = |tap: &str, class_token: bool| -> Result<Vec<Grid>> {
            let data = recorded
                .remove(tap)
                .expect("every requested tap is recorded");
            token_channels(data, class_token).with_context(|| format!("{}: {tap}", self.name))
        };
        let features = match wants(VisualKind::Features) {
            true => request
                .layers
                .iter()
                .map(|&b| Ok((b, channel_maps(&format!("block{b}"), true)?)))
                .collect::<Result<_>>()?,
            false => Vec::new(),
        };
        let t2t = match t2t_maps {
            true => T2T_TAPS
                .iter()
                .map(|&(tap, _)| Ok((tap, channel_maps(tap, false)?)))
                .collect::<Result<_>>()?,
            false => Vec::new(),
        };
        Ok(Look {
            photo,
            input,
            rollout: rollout.map(|r| grid(r.mask())).transpose()?,
            heads: heads?,
            additive: additive
                .map(|[a, b]| Ok::<_, anyhow::Error>([a?, b?]))
                .transpose()?,
            features,
            t2t,
        })
    }
}

/// The one image of a batch as a `[1, 3, S, S]` input.
fn single_input(batch: Batch) -> HostTensor {
    HostTensor {
        shape: vec![1, 3, batch.img_size, batch.img_size],
        values: batch.images,
    }
}

/// A square grid of `values`, or an error when their count is not a square.
fn grid(values: Vec<f32>) -> Result<Grid> {
    let side = values.len().isqrt();
    ensure!(
        side * side == values.len(),
        "{} tokens do not form a square grid",
        values.len()
    );
    Ok(Grid { side, values })
}

/// `[1, heads, patches]` (any leading ones) → a grid per head.
fn per_head(data: TensorData, patches: usize) -> Result<Vec<Grid>> {
    HostTensor::from_data(data)
        .values
        .chunks(patches)
        .map(|head| grid(head.to_vec()))
        .collect()
}

/// Tokens `[1, N, C]` → the first [`CHANNELS`] channels as grids over the
/// tokens, the class token (token 0) left out when there is one.
fn token_channels(data: TensorData, class_token: bool) -> Result<Vec<Grid>> {
    let HostTensor { shape, values } = HostTensor::from_data(data);
    let [_, tokens, width] = shape[..] else {
        unreachable!("tokens are [1, N, C]")
    };
    let skip = usize::from(class_token);
    (0..width.min(CHANNELS))
        .map(|c| grid((skip..tokens).map(|t| values[t * width + c]).collect()))
        .collect()
}

/// Grids stacked as `[count, side, side]`.
fn stacked(grids: &[Grid]) -> HostTensor {
    let side = grids.first().map_or(0, |g| g.side);
    HostTensor {
        shape: vec![grids.len(), side, side],
        values: grids
            .iter()
            .flat_map(|g| g.values.iter().copied())
            .collect(),
    }
}

/// A file name part per image: the file's stem, numbered when two files
/// share one.
fn image_names(files: &[PathBuf]) -> Vec<String> {
    let stems: Vec<String> = files
        .iter()
        .map(|f| {
            f.file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let unique = stems.iter().collect::<BTreeSet<_>>().len() == stems.len();
    stems
        .into_iter()
        .enumerate()
        .map(|(i, stem)| if unique { stem } else { format!("{i}_{stem}") })
        .collect()
}

/// The kinds asked for, or every kind the model has; a kind the model
/// lacks is refused.
fn resolve_kinds(asked: &[VisualKind], subject: &Subject) -> Result<BTreeSet<VisualKind>> {
    let mixing = subject.mixing();
    let has = |kind: VisualKind| match kind {
        VisualKind::Features => true,
        VisualKind::Rollout | VisualKind::Heads => mixing == Mixing::Softmax,
        VisualKind::Additive => mixing == Mixing::Additive,
    };
    if asked.is_empty() {
        return Ok(VisualKind::value_variants_owned()
            .into_iter()
            .filter(|&k| has(k))
            .collect());
    }
    for &kind in asked {
        if !has(kind) {
            let why = match mixing {
                Mixing::Softmax => "has softmax attention, not FViT's additive attention",
                Mixing::Additive => {
                    "has additive attention, not softmax attention; use --kind additive"
                }
                Mixing::Other => {
                    "has blocks without attention weights to show; use --kind features"
                }
            };
            bail!("--kind {}: {} {why}", kind_name(kind), subject.name);
        }
    }
    Ok(asked.iter().copied().collect())
}

fn kind_name(kind: VisualKind) -> String {
    use clap::ValueEnum;
    kind.to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

impl VisualKind {
    fn value_variants_owned() -> Vec<VisualKind> {
        <VisualKind as clap::ValueEnum>::value_variants().to_vec()
    }
}

impl From<HeadFusionArg> for HeadFusion {
    fn from(arg: HeadFusionArg) -> Self {
        match arg {
            HeadFusionArg::Mean => HeadFusion::Mean,
            HeadFusionArg::Max => HeadFusion::Max,
            HeadFusionArg::Min => HeadFusion::Min,
        }
    }
}

/// A comma-separated list of block indices.
fn block_list(blocks: &[usize]) -> String {
    blocks
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(args: VisualizeArgs) -> Result<ExitCode> {
    let run = &args.run;
    ensure!(
        (0.0..1.0).contains(&args.discard_ratio),
        "--discard-ratio {}: must be in [0, 1)",
        args.discard_ratio
    );
    let spec = resolve_image_model(&run.model.model, &run.model.overrides)?;
    let output = &args.output;
    ensure!(
        !output.is_file(),
        "-o {}: is a file; name a folder for the pictures",
        output.display()
    );
    let (model, source) = load_image_run_model(&spec, run)?;
    let subject = Subject::new(&spec, model, run);
    let (files, loader) = subject.inputs(run)?;
    let kinds = resolve_kinds(&args.kind, &subject)?;
    let depth = subject.model.depth();
    let block = args.block.unwrap_or(depth - 1);
    subject.check_block("--block", block)?;
    let mut layers = args.layers.clone();
    if layers.is_empty() {
        layers = vec![0, depth / 2, depth - 1];
    }
    layers.sort_unstable();
    layers.dedup();
    for &layer in &layers {
        subject.check_block("--layers", layer)?;
    }
    let other = match (&args.compare, &args.other_checkpoint) {
        (Some(name), Some(checkpoint)) => {
            ensure!(
                kinds.contains(&VisualKind::Features),
                "--compare puts feature maps side by side; add features to --kind"
            );
            let overrides = ModelOverrides {
                model_kwargs: args.other_model_kwargs.clone(),
                ..ModelOverrides::default()
            };
            let spec = resolve_image_model(name, &overrides).context("--compare")?;
            let (model, _) = load_model(
                &spec,
                checkpoint,
                WeightsChoice::from_flags(run.no_ema, false),
                &open_device(&run.device)?.device,
            )
            .context("--other-checkpoint")?;
            let other = Subject::new(&spec, model, run);
            for &layer in &layers {
                other.check_block("--layers", layer)?;
            }
            let (_, loader) = other.inputs(run)?;
            Some((other, loader))
        }
        _ => None,
    };
    std::fs::create_dir_all(output).with_context(|| format!("-o {}", output.display()))?;

    let request = Request {
        kinds,
        block,
        layers,
        fusion: args.head_fusion.into(),
        discard_ratio: args.discard_ratio,
    };
    let other_request = Request {
        kinds: [VisualKind::Features].into(),
        ..request.clone()
    };

    let mut maps: Vec<(String, HostTensor)> = Vec::new();
    let mut written = Vec::new();
    let mut other_inputs = other
        .as_ref()
        .map(|(other, loader)| (other, loader.epoch(0, 0)));
    for (batch, name) in loader.epoch(0, 0).zip(image_names(&files)) {
        let look = subject.look(single_input(batch?), &request)?;
        let other_look = match &mut other_inputs {
            Some((other, inputs)) => {
                let batch = inputs.next().expect("one input per image")?;
                Some((*other, other.look(single_input(batch), &other_request)?))
            }
            None => None,
        };
        for (figure_name, figure) in figures(
            &name,
            &subject,
            &look,
            other_look.as_ref(),
            &request,
            &mut maps,
        ) {
            let path = output.join(figure_name);
            figure.save(&path)?;
            written.push(path);
        }
    }
    if let Some(path) = &args.save_maps {
        let mut metadata = BTreeMap::from([
            ("model".to_string(), subject.name.clone()),
            ("weights".to_string(), source),
            ("head_fusion".to_string(), request.fusion.name().to_string()),
            (
                "discard_ratio".to_string(),
                request.discard_ratio.to_string(),
            ),
        ]);
        if let Some((other, _)) = &other {
            metadata.insert("compare".to_string(), other.name.clone());
        }
        let dict = StateDict {
            tensors: maps.into_iter().collect(),
            metadata: metadata.into_iter().collect(),
        };
        write_safetensors(path, &dict)
            .with_context(|| format!("--save-maps {}", path.display()))?;
    }
    println!(
        "{}: {} pictures of {} images in {}{}",
        subject.name,
        written.len(),
        files.len(),
        output.display(),
        args.save_maps
            .as_ref()
            .map_or(String::new(), |p| format!("; arrays in {}", p.display()))
    );
    Ok(ExitCode::SUCCESS)
}

/// Rows of at most this many per-head panels.
const HEADS_PER_ROW: usize = 6;

/// The figures of one image, named by file, and its arrays added to `maps`
/// under `{image}.{map}` (`{image}.{other model}.{map}` for `--compare`).
fn figures(
    name: &str,
    subject: &Subject,
    look: &Look,
    other: Option<&(&Subject, Look)>,
    request: &Request,
    maps: &mut Vec<(String, HostTensor)>,
) -> Vec<(String, Figure)> {
    let model = &subject.name;
    let block = request.block;
    let mut figures = Vec::new();
    maps.push((format!("{name}.input"), look.input.clone()));
    if let Some(mask) = &look.rollout {
        maps.push((
            format!("{name}.rollout"),
            HostTensor {
                shape: vec![mask.side, mask.side],
                values: mask.values.clone(),
            },
        ));
        let title = format!(
            "{model}: blocks 0-{}, attention rollout ({} of heads, discard ratio {})",
            subject.model.depth() - 1,
            request.fusion.name(),
            request.discard_ratio
        );
        let row = vec![
            Panel {
                label: "input".into(),
                image: photo(&look.photo, IMAGE_PANEL),
            },
            Panel {
                label: "class token's rollout".into(),
                image: overlay(&look.photo, mask, IMAGE_PANEL),
            },
        ];
        figures.push((
            format!("{name}_rollout.png"),
            Figure {
                title,
                rows: vec![row],
            },
        ));
    }
    if !look.heads.is_empty() {
        maps.push((format!("{name}.heads.block{block}"), stacked(&look.heads)));
        let title = format!("{model}: block {block}, class-token attention of each head");
        let rows = head_rows(&look.photo, "head", &look.heads);
        figures.push((
            format!("{name}_heads_block{block}.png"),
            Figure { title, rows },
        ));
    }
    if let Some([alpha, beta]) = &look.additive {
        maps.push((
            format!("{name}.additive_alpha.block{block}"),
            stacked(alpha),
        ));
        maps.push((format!("{name}.additive_beta.block{block}"), stacked(beta)));
        let title = format!(
            "{model}: block {block}, additive attention: α over queries, β over keys, per head"
        );
        let mut rows = head_rows(&look.photo, "α head", alpha);
        rows.extend(head_rows(&look.photo, "β head", beta));
        figures.push((
            format!("{name}_additive_block{block}.png"),
            Figure { title, rows },
        ));
    }
    if !look.features.is_empty() {
        let mut models = vec![(subject, look, String::new())];
        if let Some((other, other_look)) = other {
            maps.push((
                format!("{name}.{}.input", other.name),
                other_look.input.clone(),
            ));
            models.push((other, other_look, format!("{}.", other.name)));
        }
        let rows = models
            .iter()
            .map(|(subject, look, prefix)| {
                look.features
                    .iter()
                    .map(|(b, channels)| {
                        maps.push((
                            format!("{name}.{prefix}features.block{b}"),
                            stacked(channels),
                        ));
                        Panel {
                            label: format!("{} block {b}", subject.name),
                            image: tiles(channels, TILE),
                        }
                    })
                    .collect()
            })
            .collect();
        let names: Vec<&str> = models.iter().map(|(s, _, _)| s.name.as_str()).collect();
        let title = format!(
            "{}: blocks {}, feature maps (first {CHANNELS} channels, each scaled to its range)",
            names.join(" vs "),
            block_list(&request.layers)
        );
        figures.push((format!("{name}_features.png"), Figure { title, rows }));
    }
    if !look.t2t.is_empty() {
        let row = look
            .t2t
            .iter()
            .zip(T2T_TAPS)
            .map(|((tap, channels), (_, caption))| {
                maps.push((format!("{name}.t2t.{tap}"), stacked(channels)));
                let side = channels[0].side;
                Panel {
                    label: format!("{caption} ({side}×{side})"),
                    image: tiles(channels, TILE),
                }
            })
            .collect();
        let title = format!(
            "{model}: tokens-to-token module, token maps (first {CHANNELS} channels, each scaled to its range)"
        );
        figures.push((
            format!("{name}_t2t_tokens.png"),
            Figure {
                title,
                rows: vec![row],
            },
        ));
    }
    figures
}

/// A panel per head, `map` over the image, captioned `{label} {h}`.
fn head_rows(image: &Image, label: &str, heads: &[Grid]) -> Vec<Vec<Panel>> {
    let panels: Vec<Panel> = heads
        .iter()
        .enumerate()
        .map(|(h, map)| Panel {
            label: format!("{label} {h}"),
            image: overlay(image, map, HEAD_PANEL),
        })
        .collect();
    let mut rows = Vec::new();
    let mut panels = panels.into_iter().peekable();
    while panels.peek().is_some() {
        rows.push(panels.by_ref().take(HEADS_PER_ROW).collect());
    }
    rows
}
