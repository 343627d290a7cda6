//! Reads PyTorch and Paddle checkpoints as data, executing nothing.
//!
//! Checkpoints are pickles, and unpickling in Python runs whatever functions
//! the file names. Here a pickle is interpreted into a [`Value`] tree instead:
//! tensors are built only by reimplementations of torch's and numpy's own
//! rebuild functions, a few plain data classes (`argparse.Namespace`) become
//! inert [`Value::Object`]s, and a file that calls any other global while
//! loading is refused with an error naming it. Sizes, nesting and expansion
//! are bounded by the size of the file, so hostile input yields an error,
//! never a panic, a hang or unbounded memory.
//!
//! Containers: torch's zip archive (`torch.save` since 1.6), torch's legacy
//! stream (`_use_new_zipfile_serialization=False`) and a plain pickle of numpy
//! arrays (Paddle's `.pdparams`).

mod budget;
mod calls;
mod container;
mod cursor;
mod dtype;
mod error;
mod materialize;
mod nodes;
mod value;
mod vm;

use std::path::Path;

pub use dtype::DType;
pub use error::{ErrorKind, PickleError};
pub use value::{Global, Tensor, Value};

/// Containers that hold a model's state dict in training checkpoints (timm's
/// CheckpointSaver, DeiT, the official T2T-ViT scripts).
const EMA_KEYS: [&str; 2] = ["state_dict_ema", "model_ema"];
const RAW_KEYS: [&str; 3] = ["state_dict", "model", "net"];
/// The key [`state_dicts`] reports for a checkpoint that is itself a state dict.
const BARE: &str = "";

/// Interprets the checkpoint at `path` (torch zip, torch legacy or a plain pickle).
pub fn read_value(path: &Path) -> Result<Value, PickleError> {
    container::read(path).map_err(|kind| kind.at(path))
}

/// The state dicts a checkpoint holds: a bare state dict (dict of name ->
/// tensor), or the dicts under the keys `state_dict`, `state_dict_ema`,
/// `model`, `model_ema`, `net` (timm CheckpointSaver, DeiT, the official
/// CIFAR transfer script). Each entry: (container key or "" for a bare dict,
/// ordered (name, Tensor) pairs with a leading `module.` stripped).
pub fn state_dicts(value: &Value) -> Vec<(String, Vec<(String, Tensor)>)> {
    tensor_dicts(value)
        .into_iter()
        .map(|(key, entries)| (key.to_owned(), named_tensors(entries)))
        .collect()
}

/// Picks the weights: EMA (`state_dict_ema`, then `model_ema`) unless
/// `no_ema`, then `state_dict`/`model`/`net`/bare, so a checkpoint without
/// EMA weights loads its raw ones. Returns the key used. Error (one line,
/// naming the file) when nothing loadable is found.
pub fn load_weights(
    path: &Path,
    no_ema: bool,
) -> Result<(String, Vec<(String, Tensor)>), PickleError> {
    let value = read_value(path)?;
    let ema: &[&str] = if no_ema { &[] } else { &EMA_KEYS };
    let found = tensor_dicts(&value);
    let chosen = ema
        .iter()
        .chain(&RAW_KEYS)
        .chain([&BARE])
        .find_map(|wanted| found.iter().find(|(key, _)| key == wanted));
    match chosen {
        Some((key, entries)) => Ok(((*key).to_owned(), named_tensors(entries))),
        None => {
            let keys = [ema, &RAW_KEYS].concat().join(", ");
            let looked_for = format!("{keys} or a bare name -> tensor dict");
            Err(ErrorKind::NoWeights(looked_for).at(path))
        }
    }
}

/// Whether `path` is a Paddle checkpoint, whose 2-D Linear weights are
/// stored `[in, out]` (torch stores `[out, in]`), so callers transpose them.
pub fn is_paddle(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("pdparams"))
}

/// The dicts holding tensors, with their container key: the top-level dict
/// itself (as [`BARE`]) and the known container keys, in file order.
fn tensor_dicts(value: &Value) -> Vec<(&str, &[(Value, Value)])> {
    let Value::Dict(top) = value else {
        return Vec::new();
    };
    let bare = holds_tensors(top).then_some((BARE, top.as_slice()));
    let containers = top.iter().filter_map(|(key, value)| match (key, value) {
        (Value::Str(key), Value::Dict(entries))
            if EMA_KEYS.iter().chain(&RAW_KEYS).any(|k| k == key) && holds_tensors(entries) =>
        {
            Some((key.as_str(), entries.as_slice()))
        }
        _ => None,
    });
    bare.into_iter().chain(containers).collect()
}

fn holds_tensors(entries: &[(Value, Value)]) -> bool {
    entries
        .iter()
        .any(|(_, value)| matches!(value, Value::Tensor(_)))
}

/// The string-keyed tensors of a state dict, without the `module.` prefix
/// that DataParallel and DDP add. Other entries (Paddle's name table,
/// torch's metadata) carry no weights and are skipped.
fn named_tensors(entries: &[(Value, Value)]) -> Vec<(String, Tensor)> {
    entries
        .iter()
        .filter_map(|(key, value)| match (key, value) {
            (Value::Str(name), Value::Tensor(tensor)) => {
                let name = name.strip_prefix("module.").unwrap_or(name);
                Some((name.to_owned(), tensor.clone()))
            }
            _ => None,
        })
        .collect()
}
