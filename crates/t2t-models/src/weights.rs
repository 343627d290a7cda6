//! Weights in the official PyTorch layout: key names from `state_dict()`,
//! Linear weights `[out, in]`, stored as safetensors.
//!
//! A burn parameter path becomes a PyTorch key through a handful of rules:
//! enum variants (our dispatch) vanish, `nn.Sequential` members are
//! numbered, a few fields are renamed, and burn's
//! `[in, out]` Linear weights are transposed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{DType, Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use tempfile::NamedTempFile;

use crate::ModelError;

/// A host tensor in PyTorch layout.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl HostTensor {
    pub fn new(shape: Vec<usize>, values: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        Self { shape, values }
    }

    /// The transpose of a matrix.
    pub fn transposed(&self) -> HostTensor {
        let (rows, cols) = (self.shape[0], self.shape[1]);
        let mut values = vec![0.0; self.values.len()];
        for r in 0..rows {
            for c in 0..cols {
                values[c * rows + r] = self.values[r * cols + c];
            }
        }
        HostTensor::new(vec![cols, rows], values)
    }

    pub fn from_data(data: TensorData) -> Self {
        let shape = data.shape().to_vec();
        let values = data
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("converted to f32");
        Self::new(shape, values)
    }

    pub fn to_tensor<const D: usize>(&self, device: &burn::tensor::Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.values.clone(), self.shape.clone()),
            device,
        )
    }
}

/// Named tensors, e.g. a PyTorch `state_dict()`, plus the file's metadata.
#[derive(Clone, Debug, Default)]
pub struct StateDict {
    pub tensors: BTreeMap<String, HostTensor>,
    pub metadata: HashMap<String, String>,
}

/// burn field names that PyTorch spells differently: (owning struct, field, key).
const RENAMES: &[(&str, &str, &str)] = &[
    ("PerformerMlp", "fc1", "0"),
    ("PerformerMlp", "fc2", "2"),
    ("ExcitationMlp", "reduce", "0"),
    ("ExcitationMlp", "expand", "2"),
    ("FastformerAttention", "self_attention", "self"),
    ("ResidualOutput", "layer_norm", "LayerNorm"),
];

/// Fields whose contents sit directly in their parent in PyTorch.
const FLATTENED: &[(&str, &str)] = &[
    ("DenseBlock", "block"),
    ("T2tVit", "encoder"),
    ("VisionTransformer", "encoder"),
];

/// Builds PyTorch keys while a visitor walks the module tree.
#[derive(Default)]
struct KeyPath {
    /// (key segment or None when elided, owning container)
    segments: Vec<(Option<String>, String)>,
}

impl KeyPath {
    fn enter(&mut self, name: &str, container: &str) {
        let owner = container.strip_prefix("Struct:").unwrap_or(container);
        let segment = if container.starts_with("Enum:") || FLATTENED.contains(&(owner, name)) {
            None
        } else {
            let renamed = RENAMES
                .iter()
                .find(|(o, field, _)| *o == owner && *field == name)
                .map(|(_, _, key)| *key);
            Some(renamed.unwrap_or(name).to_string())
        };
        self.segments.push((segment, owner.to_string()));
    }

    fn exit(&mut self) {
        self.segments.pop();
    }

    fn key(&self) -> String {
        let parts: Vec<&str> = self
            .segments
            .iter()
            .filter_map(|(s, _)| s.as_deref())
            .collect();
        parts.join(".")
    }

    /// burn stores Linear weights `[in, out]`, PyTorch `[out, in]`.
    fn is_linear_weight(&self) -> bool {
        matches!(self.segments.last(), Some((Some(s), owner)) if s == "weight" && owner == "Linear")
    }
}

/// Walks a module's parameters, telling each one's PyTorch key.
pub trait KeyedVisitor {
    /// `linear_weight`: the tensor is a burn Linear weight `[in, out]`, the
    /// transpose of PyTorch's layout.
    fn visit<const D: usize>(&mut self, key: &str, linear_weight: bool, param: &Param<Tensor<D>>);
}

/// Rebuilds a module's parameters, telling each one's PyTorch key.
pub trait KeyedMapper {
    fn map<const D: usize>(
        &mut self,
        key: &str,
        linear_weight: bool,
        param: Param<Tensor<D>>,
    ) -> Param<Tensor<D>>;
}

pub fn visit_keyed<M: Module, V: KeyedVisitor>(module: &M, visitor: &mut V) {
    struct Adapter<'a, V> {
        path: KeyPath,
        inner: &'a mut V,
    }
    impl<V: KeyedVisitor> ModuleVisitor for Adapter<'_, V> {
        fn enter_module(&mut self, name: &str, container: &str) {
            self.path.enter(name, container);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.inner
                .visit(&self.path.key(), self.path.is_linear_weight(), param);
        }
    }
    module.visit(&mut Adapter {
        path: KeyPath::default(),
        inner: visitor,
    });
}

pub fn map_keyed<M: Module, F: KeyedMapper>(module: M, mapper: &mut F) -> M {
    struct Adapter<'a, F> {
        path: KeyPath,
        inner: &'a mut F,
    }
    impl<F: KeyedMapper> ModuleMapper for Adapter<'_, F> {
        fn enter_module(&mut self, name: &str, container: &str) {
            self.path.enter(name, container);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let key = self.path.key();
            self.inner.map(&key, self.path.is_linear_weight(), param)
        }
    }
    module.map(&mut Adapter {
        path: KeyPath::default(),
        inner: mapper,
    })
}

/// The model's parameters under their PyTorch names and layout.
pub fn state_dict<M: Module>(model: &M) -> StateDict {
    struct Collector(BTreeMap<String, HostTensor>);
    impl KeyedVisitor for Collector {
        fn visit<const D: usize>(
            &mut self,
            key: &str,
            linear_weight: bool,
            param: &Param<Tensor<D>>,
        ) {
            let tensor = HostTensor::from_data(param.val().into_data());
            let tensor = if linear_weight {
                tensor.transposed()
            } else {
                tensor
            };
            self.0.insert(key.to_string(), tensor);
        }
    }
    let mut collector = Collector(BTreeMap::new());
    visit_keyed(model, &mut collector);
    StateDict {
        tensors: collector.0,
        metadata: HashMap::new(),
    }
}

/// Whether `key` names reference data (inputs and activations that `verify`
/// compares against) rather than a weight.
pub fn is_reference_key(key: &str) -> bool {
    key.starts_with("__")
}

/// Loads every parameter of `model` from `dict`. Keys starting with `__`
/// (reference activations) are ignored. Missing, unexpected and wrong-shape
/// tensors are all reported in one error that names `source`.
pub fn load_state_dict<M: Module>(
    model: M,
    dict: &StateDict,
    source: &str,
) -> Result<M, ModelError> {
    struct Loader<'a> {
        dict: &'a StateDict,
        used: HashSet<String>,
        problems: Vec<String>,
    }
    impl KeyedMapper for Loader<'_> {
        fn map<const D: usize>(
            &mut self,
            key: &str,
            linear_weight: bool,
            param: Param<Tensor<D>>,
        ) -> Param<Tensor<D>> {
            let Some(as_stored) = self.dict.tensors.get(key) else {
                self.problems.push(format!("missing {key}"));
                return param;
            };
            self.used.insert(key.to_string());
            let stored = if linear_weight && as_stored.shape.len() == 2 {
                as_stored.transposed()
            } else {
                as_stored.clone()
            };
            let expected = param.lazy_shape().to_vec();
            if stored.shape != expected {
                // Both in PyTorch's layout: the shape as the file stores it,
                // and burn's `[in, out]` Linear weight turned to `[out, in]`.
                let mut needed = expected;
                if linear_weight {
                    needed.reverse();
                }
                self.problems.push(format!(
                    "{key} has shape {:?}, the model needs {needed:?}",
                    as_stored.shape
                ));
                return param;
            }
            param.map(|old| {
                let loaded = stored.to_tensor::<D>(&old.device());
                loaded.set_require_grad(old.is_require_grad())
            })
        }
    }
    let mut loader = Loader {
        dict,
        used: HashSet::new(),
        problems: Vec::new(),
    };
    let model = map_keyed(model, &mut loader);
    let mut problems = loader.problems;
    problems.extend(
        dict.tensors
            .keys()
            .filter(|k| !is_reference_key(k) && !loader.used.contains(*k))
            .map(|k| format!("unexpected {k}")),
    );
    if problems.is_empty() {
        Ok(model)
    } else {
        Err(ModelError::WeightsMismatch {
            path: source.to_string(),
            problems,
        })
    }
}

fn file_error(path: &Path, reason: impl ToString) -> ModelError {
    ModelError::WeightsFile {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Reads every tensor of a safetensors file, converted to f32. Integer
/// tensors are refused unless they are reference data: converted, they
/// would load as weights without a word.
pub fn read_safetensors(path: &Path) -> Result<StateDict, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| file_error(path, format!("not a safetensors file ({e})")))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| file_error(path, format!("not a safetensors file ({e})")))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.tensors() {
        let dtype = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::F64 => DType::F64,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            Dtype::I64 | Dtype::I32 | Dtype::U8 if !is_reference_key(&name) => {
                return Err(file_error(
                    path,
                    format!(
                        "tensor {name} is stored as {:?}; weights must be floating point",
                        view.dtype()
                    ),
                ))
            }
            Dtype::I64 => DType::I64,
            Dtype::I32 => DType::I32,
            Dtype::U8 => DType::U8,
            other => {
                return Err(file_error(
                    path,
                    format!("tensor {name} has unsupported dtype {other:?}"),
                ))
            }
        };
        let shape = view.shape().to_vec();
        let data = TensorData::from_bytes_vec(view.data().to_vec(), shape, dtype);
        tensors.insert(name, HostTensor::from_data(data));
    }
    Ok(StateDict {
        tensors,
        metadata: header.metadata().clone().unwrap_or_default(),
    })
}

/// Writes a safetensors file through a temporary file and a rename, so that
/// an interrupted write never leaves a truncated file under `path`.
pub fn write_safetensors(path: &Path, dict: &StateDict) -> Result<(), ModelError> {
    write_atomically(path, &safetensors_bytes(dict, path)?)
}

/// `dict` as the bytes of a safetensors file, all tensors f32; `path`, where
/// they will go, only names the file in errors.
pub fn safetensors_bytes(dict: &StateDict, path: &Path) -> Result<Vec<u8>, ModelError> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = dict
        .tensors
        .iter()
        .map(|(name, t)| {
            let raw = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), raw, t.shape.clone())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, raw, shape)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), raw).expect("sizes match");
            (name.as_str(), view)
        })
        .collect::<Vec<_>>();
    let metadata = (!dict.metadata.is_empty()).then(|| dict.metadata.clone());
    safetensors::serialize(views, &metadata).map_err(|e| file_error(path, e))
}

/// Writes `bytes` to `path` via a sibling temporary file, flushed to disk
/// before it is renamed over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    write_then_replace(temp_file_beside(path)?, path, bytes)
}

/// Writes `bytes` to `temp` (from [`temp_file_beside`]), flushed to disk,
/// and renames it over `path`. A caller that must not do long work only to
/// find the destination unwritable creates `temp` first.
pub fn write_then_replace(
    mut temp: NamedTempFile,
    path: &Path,
    bytes: &[u8],
) -> Result<(), ModelError> {
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| file_error(path, e))?;
    replace_with(temp, path)
}

/// A new temporary file in `path`'s folder, to be renamed over `path` by
/// [`replace_with`]. Its name is random and it is created exclusively, so
/// nothing planted in the folder (a symlink at a predictable name) can
/// redirect the write; it is removed if dropped before the rename. It gets
/// the permissions a plain new file would (0666 less the umask).
pub fn temp_file_beside(path: &Path) -> Result<NamedTempFile, ModelError> {
    let file_name = path
        .file_name()
        .ok_or_else(|| file_error(path, "not a file path"))?
        .to_string_lossy();
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let extension = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let prefix = format!(".{file_name}.");
    let mut builder = tempfile::Builder::new();
    // The extension stays last: some writers pick the format by it.
    builder.prefix(&prefix).suffix(&extension);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder.tempfile_in(folder).map_err(|e| file_error(path, e))
}

/// Renames `temp` (from [`temp_file_beside`]) over `path`.
pub fn replace_with(temp: NamedTempFile, path: &Path) -> Result<(), ModelError> {
    temp.persist(path)
        .map(drop)
        .map_err(|e| file_error(path, e.error))
}
