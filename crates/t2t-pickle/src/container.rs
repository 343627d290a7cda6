//! The files that hold checkpoint pickles: torch's zip archive (torch >= 1.6),
//! torch's legacy stream of pickles followed by raw storages, and a plain
//! pickle (Paddle's `.pdparams`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::ops::Range;
use std::path::Path;

use zip::result::ZipError;
use zip::ZipArchive;

use crate::budget::Budget;
use crate::cursor::Cursor;
use crate::dtype::DType;
use crate::error::{malformed, preview, ErrorKind};
use crate::materialize::{Materializer, NoStorages, Storages};
use crate::nodes::Node;
use crate::value::Value;
use crate::vm::unpickle;

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// Pickles of protocol 2 and later open with the PROTO opcode.
const PROTO: u8 = 0x80;
/// The first pickle of a legacy torch file, `0x1950a86a20f9469cfc6c`, in
/// the little-endian bytes Python pickles it with.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL: i64 = 1001;

/// Interprets the checkpoint at `path`, whatever its container.
pub(crate) fn read(path: &Path) -> Result<Value, ErrorKind> {
    let mut file = File::open(path)?;
    let mut budget = Budget::for_file(file.metadata()?.len());
    let mut head = Vec::new();
    (&mut file)
        .take(ZIP_MAGIC.len() as u64)
        .read_to_end(&mut head)?;
    file.rewind()?;
    if head == ZIP_MAGIC {
        read_zip(BufReader::new(file), &mut budget)
    } else if head.first() == Some(&PROTO) {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        read_pickles(&bytes, &mut budget)
    } else {
        Err(ErrorKind::UnknownFormat)
    }
}

fn read_zip<R: Read + Seek>(reader: R, budget: &mut Budget) -> Result<Value, ErrorKind> {
    let mut archive = ZipArchive::new(reader)?;
    let root = archive_root(&archive)?;
    let byteorder = format!("{root}/byteorder");
    // Archives from before torch 2.1 have no byteorder entry and are little-endian.
    if archive.file_names().any(|name| name == byteorder)
        && read_at_most(&mut archive, &byteorder, 16)? != b"little"
    {
        return Err(ErrorKind::Unsupported("big-endian storages".into()));
    }
    let data = format!("{root}/data.pkl");
    // The decompressed pickle is held in memory, so it counts as copied data.
    let limit = budget.bytes.remaining();
    let pickle = read_at_most(&mut archive, &data, limit.saturating_add(1))?;
    if pickle.len() > limit {
        return Err(ErrorKind::TooLarge(format!("{data} is implausibly large")));
    }
    budget.bytes.charge(pickle.len())?;
    let pickle = unpickle(&pickle, 0, budget)?;
    let mut storages = ZipStorages { archive, root };
    Materializer::new(&mut storages, &mut budget.output).value(&pickle.nodes, pickle.root)
}

/// The folder all entries sit in: torch names it after the file (or
/// `archive`), so it is found as the prefix of the one `<root>/data.pkl`.
fn archive_root<R: Read + Seek>(archive: &ZipArchive<R>) -> Result<String, ErrorKind> {
    let mut roots = archive
        .file_names()
        .filter_map(|name| name.strip_suffix("/data.pkl"))
        .filter(|root| !root.is_empty() && !root.contains('/'));
    match (roots.next(), roots.next()) {
        (Some(root), None) => Ok(root.to_owned()),
        (None, _) => Err(malformed("zip archive has no <root>/data.pkl")),
        (Some(_), Some(_)) => Err(malformed("zip archive has several <root>/data.pkl")),
    }
}

/// Up to `limit` bytes of entry `name`, decompressed; the limit keeps a
/// highly compressed entry from expanding without bound. The rest of the
/// entry is read and dropped, because the zip reader checks an entry's
/// CRC-32 only once it reaches its end: a corrupt byte anywhere is refused,
/// as Python's zipfile does, instead of silently changing a weight.
fn read_at_most<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    name: &str,
    limit: usize,
) -> Result<Vec<u8>, ErrorKind> {
    let mut entry = archive.by_name(name).map_err(|error| match error {
        ZipError::FileNotFound => malformed(format!("zip archive has no {}", preview(name))),
        error => error.into(),
    })?;
    let damaged =
        |error: io::Error| malformed(format!("zip entry {} is damaged: {error}", preview(name)));
    let mut bytes = Vec::new();
    (&mut entry)
        .take(u64::try_from(limit).unwrap_or(u64::MAX))
        .read_to_end(&mut bytes)
        .map_err(damaged)?;
    io::copy(&mut entry, &mut io::sink()).map_err(damaged)?;
    Ok(bytes)
}

/// Storages as zip entries `<root>/data/<key>`.
struct ZipStorages<R> {
    archive: ZipArchive<R>,
    root: String,
}

impl<R: Read + Seek> Storages for ZipStorages<R> {
    fn read(&mut self, key: &str, len: usize) -> Result<Cow<'_, [u8]>, ErrorKind> {
        let name = format!("{}/data/{key}", self.root);
        let bytes = read_at_most(&mut self.archive, &name, len)?;
        if bytes.len() < len {
            return Err(malformed(format!(
                "{} is shorter than its persistent id says",
                preview(&name)
            )));
        }
        Ok(Cow::Owned(bytes))
    }
}

/// A stream of pickles: one plain pickle, or torch's legacy layout when the
/// first one is torch's magic number.
fn read_pickles(bytes: &[u8], budget: &mut Budget) -> Result<Value, ErrorKind> {
    let mut pos = 0;
    let first = plain_pickle(bytes, &mut pos, budget)?;
    if first != Value::BigInt(LEGACY_MAGIC.to_vec()) {
        return Ok(first);
    }
    let protocol = plain_pickle(bytes, &mut pos, budget)?;
    if protocol != Value::Int(LEGACY_PROTOCOL) {
        return Err(ErrorKind::Unsupported(format!(
            "legacy torch protocol {}",
            preview(format_args!("{protocol:?}"))
        )));
    }
    let sys_info = plain_pickle(bytes, &mut pos, budget)?;
    if sys_info.get("little_endian") != Some(&Value::Bool(true)) {
        return Err(ErrorKind::Unsupported(
            "big-endian legacy checkpoint".into(),
        ));
    }
    let object = unpickle(bytes, pos, budget)?;
    pos = object.end;
    let keys = plain_pickle(bytes, &mut pos, budget)?;
    let mut storages = LegacyStorages::locate(bytes, pos, &keys, &object.nodes)?;
    Materializer::new(&mut storages, &mut budget.output).value(&object.nodes, object.root)
}

/// The pickle at `*pos`, which is moved past it; it may not name storages.
fn plain_pickle(bytes: &[u8], pos: &mut usize, budget: &mut Budget) -> Result<Value, ErrorKind> {
    let pickle = unpickle(bytes, *pos, budget)?;
    *pos = pickle.end;
    Materializer::new(&mut NoStorages, &mut budget.output).value(&pickle.nodes, pickle.root)
}

/// Storages of the legacy format, which follow the pickles as records of an
/// int64 element count and the raw elements, in the order of the key list.
struct LegacyStorages<'a> {
    bytes: &'a [u8],
    spans: HashMap<String, Range<usize>>,
}

impl<'a> LegacyStorages<'a> {
    /// Finds each record. Its element size comes from the persistent ids
    /// in the object pickle, which is why that pickle is read first.
    fn locate(
        bytes: &'a [u8],
        start: usize,
        keys: &Value,
        nodes: &[Node],
    ) -> Result<Self, ErrorKind> {
        let Value::List(keys) = keys else {
            return Err(malformed("legacy storage keys are not a list"));
        };
        let dtypes: HashMap<&str, DType> = nodes
            .iter()
            .filter_map(|node| match node {
                Node::Storage(storage) => Some((storage.key.as_str(), storage.dtype)),
                _ => None,
            })
            .collect();
        let mut cursor = Cursor::new(bytes, start);
        let mut spans = HashMap::new();
        for key in keys {
            let Value::Str(key) = key else {
                return Err(malformed("a legacy storage key is not a string"));
            };
            let dtype = dtypes.get(key.as_str()).ok_or_else(|| {
                malformed(format!(
                    "legacy storage {:?} is listed but unused",
                    preview(key)
                ))
            })?;
            let numel = cursor.u64()?;
            let len = numel
                .checked_mul(dtype.size() as u64)
                .ok_or(ErrorKind::Truncated)?;
            let start = cursor.pos();
            cursor.take_u64(len)?;
            spans.insert(key.clone(), start..cursor.pos());
        }
        Ok(Self { bytes, spans })
    }
}

impl Storages for LegacyStorages<'_> {
    fn read(&mut self, key: &str, len: usize) -> Result<Cow<'_, [u8]>, ErrorKind> {
        let span = self
            .spans
            .get(key)
            .ok_or_else(|| malformed(format!("legacy storage {:?} has no data", preview(key))))?;
        let stored = &self.bytes[span.clone()];
        let bytes = stored.get(..len).ok_or_else(|| {
            malformed(format!(
                "legacy storage {:?} is shorter than its persistent id says",
                preview(key)
            ))
        })?;
        Ok(Cow::Borrowed(bytes))
    }
}
