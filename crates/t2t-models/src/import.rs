//! Weights from anywhere users get them: our own runs and safetensors files,
//! PyTorch `.pth`/`.pth.tar` (zip or legacy, read as data, never executed),
//! and Paddle `.pdparams`; plus the adaptations that fine-tuning needs (a new
//! head, another image size).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::models::Model;
use crate::weights::{is_reference_key, read_safetensors, state_dict, HostTensor, StateDict};
use crate::ModelError;

/// Weights read from a file, and where exactly they came from.
pub struct Imported {
    pub dict: StateDict,
    /// The file, and the container key or EMA choice, e.g.
    /// `model.pth.tar (state_dict_ema)`.
    pub source: String,
    /// The container key (`state_dict_ema`, `state_dict`, ..., `ema`, `raw`, or "" for a bare dict).
    pub key: String,
}

/// Which of a checkpoint's weights to take, when it holds raw and EMA ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightsChoice {
    /// The checkpoint's own recommendation: what a run recorded for it (the
    /// better-scoring weights of `best`), else the EMA weights where there are any.
    Preferred,
    /// The raw weights (`--no-ema`).
    Raw,
    /// The EMA weights (`--ema`); an error where there are none.
    Ema,
}

impl WeightsChoice {
    /// The choice of the `--no-ema` and `--ema` flags.
    pub fn from_flags(no_ema: bool, ema: bool) -> Self {
        match (no_ema, ema) {
            (true, _) => Self::Raw,
            (false, true) => Self::Ema,
            (false, false) => Self::Preferred,
        }
    }
}

/// The raw or the EMA weights of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightsKind {
    Raw,
    Ema,
}

impl WeightsKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Ema => "ema",
        }
    }
}

/// The metadata key of a run's `NAME.safetensors` that names the weights
/// (`raw` or `ema`) its checkpoint recommends.
pub const PREFERRED_WEIGHTS: &str = "preferred_weights";

/// The stem of the files in a run's checkpoint directory `RUN/NAME/`:
/// `model.safetensors`, `model-ema.safetensors`, `model-state.safetensors`.
pub const CHECKPOINT_STEM: &str = "model";

/// The three files of one checkpoint of a run: `DIR/STEM.safetensors` (the
/// weights), `DIR/STEM-ema.safetensors` and `DIR/STEM-state.safetensors`.
/// A checkpoint is the directory `RUN/NAME/` with stem [`CHECKPOINT_STEM`];
/// runs of the earlier layout keep the files in `RUN/` with stem `NAME`.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointFiles {
    pub dir: PathBuf,
    pub stem: String,
}

impl CheckpointFiles {
    /// Checkpoint `name` of run directory `run`, in whichever layout it has.
    pub fn of_run(run: &Path, name: &str) -> Self {
        let dir = run.join(name);
        match dir.is_dir() {
            true => Self {
                dir,
                stem: CHECKPOINT_STEM.to_string(),
            },
            false => Self {
                dir: run.to_path_buf(),
                stem: name.to_string(),
            },
        }
    }

    /// What directory `dir` names: a checkpoint directory itself, else a
    /// run directory and so its `last` checkpoint.
    pub fn in_dir(dir: &Path) -> Self {
        let checkpoint = Self {
            dir: dir.to_path_buf(),
            stem: CHECKPOINT_STEM.to_string(),
        };
        match checkpoint.model().is_file() {
            true => checkpoint,
            false => Self::of_run(dir, "last"),
        }
    }

    /// What directory `dir` offers as weights: a checkpoint directory
    /// itself, else the run's `best` checkpoint, or `last` before there is one.
    pub fn weights_in_dir(dir: &Path) -> Self {
        let best = Self::of_run(dir, "best");
        match best.model().is_file() {
            true => best,
            false => Self::in_dir(dir),
        }
    }

    /// The run directory the checkpoint belongs to.
    pub fn run_dir(&self) -> PathBuf {
        match (self.stem == CHECKPOINT_STEM, self.dir.parent()) {
            (true, Some(run)) => run.to_path_buf(),
            _ => self.dir.clone(),
        }
    }

    pub fn model(&self) -> PathBuf {
        self.file("")
    }

    pub fn ema(&self) -> PathBuf {
        self.file("-ema")
    }

    pub fn state(&self) -> PathBuf {
        self.file("-state")
    }

    fn file(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}{suffix}.safetensors", self.stem))
    }
}

/// Reads weights in any supported format, choosing between raw and EMA
/// weights (a run's `-ema` file, `state_dict_ema`, `model_ema`) by `choice`.
/// A run directory means its `best` checkpoint, or `last` where there is no
/// `best` yet; a checkpoint directory means itself.
pub fn import_weights(path: &Path, choice: WeightsChoice) -> Result<Imported, ModelError> {
    let file = if path.is_dir() {
        CheckpointFiles::weights_in_dir(path).model()
    } else {
        path.to_path_buf()
    };
    if file.extension().is_some_and(|e| e == "safetensors") {
        return import_run_weights(&file, choice);
    }
    let file_error = |reason: String| ModelError::WeightsFile {
        path: file.display().to_string(),
        reason,
    };
    let no_ema = choice == WeightsChoice::Raw;
    let (key, tensors) =
        t2t_pickle::load_weights(&file, no_ema).map_err(|e| file_error(e.kind.to_string()))?;
    if choice == WeightsChoice::Ema && !key.contains("ema") {
        return Err(file_error(
            "--ema: the checkpoint holds no EMA weights".to_string(),
        ));
    }
    let paddle = t2t_pickle::is_paddle(&file);
    let tensors = tensors
        .into_iter()
        .map(|(name, t)| {
            // Integers were converted to f32 on reading, and would load as
            // weights without a word.
            if !t.dtype.is_float() && !is_reference_key(&name) {
                return Err(file_error(format!(
                    "tensor {name} is stored as {}; weights must be floating point",
                    t.dtype
                )));
            }
            let tensor = HostTensor::new(t.shape, t.values);
            // Paddle stores Linear weights [in, out].
            let tensor = if paddle && tensor.shape.len() == 2 && name.ends_with(".weight") {
                tensor.transposed()
            } else {
                tensor
            };
            Ok((name, tensor))
        })
        .collect::<Result<BTreeMap<String, HostTensor>, ModelError>>()?;
    let shown = if key.is_empty() {
        "bare state dict"
    } else {
        key.as_str()
    };
    Ok(Imported {
        source: format!(
            "{} ({shown}{})",
            file.display(),
            if paddle { ", Paddle layout" } else { "" }
        ),
        dict: StateDict {
            tensors,
            metadata: HashMap::new(),
        },
        key,
    })
}

/// A safetensors file, with the EMA weights of a run's checkpoint beside it
/// (`NAME-ema.safetensors`) chosen as asked.
fn import_run_weights(file: &Path, choice: WeightsChoice) -> Result<Imported, ModelError> {
    let ema_file = file
        .to_str()
        .and_then(|f| f.strip_suffix(".safetensors"))
        .map(|stem| PathBuf::from(format!("{stem}-ema.safetensors")))
        .filter(|ema| ema.is_file());
    let imported = |path: &Path, kind: Option<WeightsKind>, dict: StateDict| {
        let key = kind.map_or("", WeightsKind::name);
        let shown = if key.is_empty() { "weights" } else { key };
        Imported {
            source: format!("{} ({shown})", path.display()),
            dict,
            key: key.to_string(),
        }
    };
    let ema = match (choice, ema_file) {
        (WeightsChoice::Raw, _) => {
            return Ok(imported(
                file,
                Some(WeightsKind::Raw),
                read_safetensors(file)?,
            ))
        }
        (WeightsChoice::Ema, None) => {
            return Err(ModelError::WeightsFile {
                path: file.display().to_string(),
                reason: "--ema: no EMA weights beside it".to_string(),
            })
        }
        (WeightsChoice::Preferred, None) => {
            return Ok(imported(file, None, read_safetensors(file)?))
        }
        (WeightsChoice::Ema, Some(ema)) => ema,
        (WeightsChoice::Preferred, Some(ema)) => {
            // The raw file records the run's choice; read once, it is also
            // the answer when that choice is the raw weights. Checkpoints
            // written before runs recorded a choice mean the EMA weights.
            let raw = read_safetensors(file)?;
            if raw.metadata.get(PREFERRED_WEIGHTS).map(String::as_str) == Some("raw") {
                return Ok(imported(file, Some(WeightsKind::Raw), raw));
            }
            ema
        }
    };
    Ok(imported(
        &ema,
        Some(WeightsKind::Ema),
        read_safetensors(&ema)?,
    ))
}

/// Makes pretrained weights fit `model` for fine-tuning: a head of another
/// size is replaced by the model's freshly initialised one, and a position
/// table of another size is regenerated (T2T-ViT's fixed sinusoid) or
/// resized bicubically with the class row kept (ViT's learned table).
/// Returns what was changed, one line each; a position table that is not
/// `[1, tokens, dim]` with the model's `dim` is an error naming `source`.
pub fn adapt_for_finetuning(
    model: &Model,
    dict: &mut StateDict,
    source: &str,
) -> Result<Vec<String>, ModelError> {
    let own = state_dict(model);
    let mut notes = Vec::new();
    let differs = |key: &str, dict: &StateDict| match (dict.tensors.get(key), own.tensors.get(key))
    {
        (Some(theirs), Some(ours)) => theirs.shape != ours.shape,
        _ => false,
    };
    if differs("head.weight", dict) || differs("head.bias", dict) {
        // The class count, from a bias of any rank.
        let classes = |d: &StateDict| match d.tensors.get("head.bias").map(|t| &t.shape[..]) {
            Some([classes]) => classes.to_string(),
            Some(shape) => format!("head.bias of shape {shape:?}"),
            None => "0".to_string(),
        };
        notes.push(format!(
            "head replaced and re-initialised: {} -> {} classes",
            classes(dict),
            classes(&own)
        ));
        for key in ["head.weight", "head.bias"] {
            dict.tensors
                .insert(key.to_string(), own.tensors[key].clone());
        }
    }
    if differs("pos_embed", dict) {
        let ours = &own.tensors["pos_embed"];
        let theirs = &dict.tensors["pos_embed"];
        let dim = ours.shape[2];
        if !matches!(theirs.shape[..], [1, _, d] if d == dim) {
            return Err(ModelError::WeightsMismatch {
                path: source.to_string(),
                problems: vec![format!(
                    "pos_embed has shape {:?}, the model needs [1, tokens, {dim}] (here {:?})",
                    theirs.shape, ours.shape
                )],
            });
        }
        let note = format!("pos_embed {:?} -> {:?}", theirs.shape, ours.shape);
        let adapted = match model {
            Model::Vit(_) | Model::Fvit(_) => match resize_position_table(theirs, ours.shape[1]) {
                Some(resized) => {
                    notes.push(format!(
                        "{note}: learned table resized bicubically, class row kept"
                    ));
                    resized
                }
                None => {
                    notes.push(format!("{note}: not a square grid, re-initialised"));
                    ours.clone()
                }
            },
            _ => {
                notes.push(format!(
                    "{note}: sinusoid table regenerated for the new size"
                ));
                ours.clone()
            }
        };
        dict.tensors.insert("pos_embed".to_string(), adapted);
    }
    Ok(notes)
}

/// `[1, 1 + g², D]` → `[1, rows, D]` (rows = 1 + h²): the grid part is
/// resized bicubically like `F.interpolate(mode='bicubic', align_corners=False)`,
/// the class row is kept. None when either side is not a square grid of at
/// least one position, or the table is not `[1, tokens, D]`.
pub fn resize_position_table(table: &HostTensor, rows: usize) -> Option<HostTensor> {
    let [1, tokens, dim] = table.shape[..] else {
        return None;
    };
    let old = square_side(tokens.checked_sub(1)?)?;
    let new = square_side(rows.checked_sub(1)?)?;
    let grid = &table.values[dim..];
    let mut values = table.values[..dim].to_vec();
    values.extend(resize_bicubic(grid, old, new, dim));
    Some(HostTensor::new(vec![1, rows, dim], values))
}

/// The side of a non-empty square grid of `n` positions.
fn square_side(n: usize) -> Option<usize> {
    let side = (n as f64).sqrt().round() as usize;
    (side > 0 && side * side == n).then_some(side)
}

/// PyTorch's cubic convolution kernel, a = -0.75.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Bicubic resize of a row-major `[side, side, dim]` grid, with PyTorch's
/// half-pixel source coordinates and clamped borders.
fn resize_bicubic(grid: &[f32], old: usize, new: usize, dim: usize) -> Vec<f32> {
    let scale = old as f64 / new as f64;
    // For each output coordinate: the four source indices and their weights.
    let taps: Vec<([usize; 4], [f64; 4])> = (0..new)
        .map(|o| {
            let source = (o as f64 + 0.5) * scale - 0.5;
            let base = source.floor();
            let index = |k: i64| (base as i64 + k).clamp(0, old as i64 - 1) as usize;
            (
                [index(-1), index(0), index(1), index(2)],
                cubic_weights(source - base),
            )
        })
        .collect();
    let mut out = vec![0f32; new * new * dim];
    for (y, (ys, wy)) in taps.iter().enumerate() {
        for (x, (xs, wx)) in taps.iter().enumerate() {
            for c in 0..dim {
                let mut sum = 0.0;
                for (i, &sy) in ys.iter().enumerate() {
                    for (j, &sx) in xs.iter().enumerate() {
                        sum += wy[i] * wx[j] * grid[(sy * old + sx) * dim + c] as f64;
                    }
                }
                out[(y * new + x) * dim + c] = sum as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(side: usize, dim: usize, f: impl Fn(usize, usize, usize) -> f32) -> HostTensor {
        let mut values: Vec<f32> = (0..dim).map(|c| 100.0 + c as f32).collect();
        for y in 0..side {
            for x in 0..side {
                values.extend((0..dim).map(|c| f(y, x, c)));
            }
        }
        HostTensor::new(vec![1, 1 + side * side, dim], values)
    }

    /// A one-block ViT with a 10-class head and its own weights.
    fn small_vit() -> (Model, StateDict) {
        let mut config = crate::registry::find("vit_tiny_patch16_224")
            .unwrap()
            .config;
        config.apply_kwargs(&["depth=1", "num_classes=10"]).unwrap();
        let model = config.init(&crate::device::for_tests()).unwrap();
        let weights = state_dict(&model);
        (model, weights)
    }

    #[test]
    fn position_tables_of_another_rank_are_errors_naming_the_shapes() {
        let (model, own) = small_vit();
        let dim = own.tensors["pos_embed"].shape[2];
        for shape in [vec![197, dim], vec![dim], vec![], vec![1, 197, dim + 1]] {
            let mut dict = own.clone();
            let values = vec![0.5; shape.iter().product()];
            let table = HostTensor::new(shape.clone(), values);
            dict.tensors.insert("pos_embed".into(), table);
            let error = adapt_for_finetuning(&model, &mut dict, "bad.pth").unwrap_err();
            let expected =
                format!("pos_embed has shape {shape:?}, the model needs [1, tokens, {dim}]");
            assert!(error.to_string().contains(&expected), "{error}");
            assert!(error.to_string().contains("bad.pth"), "{error}");
        }
    }

    #[test]
    fn a_class_row_without_a_grid_and_a_scalar_head_are_replaced() {
        let (model, own) = small_vit();
        let dim = own.tensors["pos_embed"].shape[2];
        let mut dict = own.clone();
        let class_row = HostTensor::new(vec![1, 1, dim], vec![0.5; dim]);
        dict.tensors.insert("pos_embed".into(), class_row);
        let scalar = HostTensor::new(vec![], vec![0.5]);
        dict.tensors.insert("head.bias".into(), scalar);
        let notes = adapt_for_finetuning(&model, &mut dict, "odd.pth").unwrap();
        assert!(
            notes.iter().any(|n| n.contains("not a square grid")),
            "{notes:?}"
        );
        assert!(
            notes
                .iter()
                .any(|n| n
                    == "head replaced and re-initialised: head.bias of shape [] -> 10 classes"),
            "{notes:?}"
        );
        assert_eq!(dict.tensors["pos_embed"], own.tensors["pos_embed"]);
        assert_eq!(dict.tensors["head.bias"], own.tensors["head.bias"]);
    }

    #[test]
    fn same_size_is_identity_and_the_class_row_is_kept() {
        let t = table(5, 3, |y, x, c| (y * 7 + x * 3 + c) as f32 * 0.37 - 2.0);
        let r = resize_position_table(&t, 26).unwrap();
        assert_eq!(r, t);
        let up = resize_position_table(&t, 1 + 9 * 9).unwrap();
        assert_eq!(&up.values[..3], &[100.0, 101.0, 102.0]);
        assert!(resize_position_table(&t, 1 + 10).is_none());
    }

    #[test]
    fn cubic_weights_are_pytorchs() {
        // PyTorch's kernel with a = -0.75 at t = 0.25, worked by hand.
        assert_eq!(
            cubic_weights(0.25),
            [-0.10546875, 0.87890625, 0.26171875, -0.03515625]
        );
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
        for t in [0.1, 0.5, 0.9] {
            let w = cubic_weights(t);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let mirrored = cubic_weights(1.0 - t);
            assert!(w
                .iter()
                .zip(mirrored.iter().rev())
                .all(|(a, b)| (a - b).abs() < 1e-12));
        }
    }

    #[test]
    fn constants_stay_constant_and_ramps_stay_linear_inside() {
        let c = table(4, 2, |_, _, _| 1.5);
        let r = resize_position_table(&c, 1 + 7 * 7).unwrap();
        assert!(r.values[2..].iter().all(|v| (v - 1.5).abs() < 1e-6));
        // A ramp along x, upsampled 2x: away from the clamped border, output
        // x reads source (x + 0.5)/2 - 0.5 = base + t with t 0.75 or 0.25, and
        // the a = -0.75 kernel maps a ramp's t = 0.25 to 0.296875 (by hand from
        // the weights above), t = 0.75 to 0.703125.
        let ramp = table(8, 1, |_, x, _| x as f32);
        let r = resize_position_table(&ramp, 1 + 16 * 16).unwrap();
        for x in 4..12 {
            let got = r.values[1 + 5 * 16 + x];
            let base = (x / 2) as f32 - if x % 2 == 0 { 1.0 } else { 0.0 };
            let want = base + if x % 2 == 0 { 0.703125 } else { 0.296875 };
            assert!((got - want).abs() < 1e-5, "x {x}: {got} vs {want}");
        }
    }
}
