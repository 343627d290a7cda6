//! The CIFAR-10/100 binary format
//! (<https://www.cs.toronto.edu/~kriz/cifar.html>), held in memory.
//!
//! A record is the label byte(s) followed by 3072 pixel bytes: the R plane
//! (1024 bytes), then G, then B, each 32x32 row-major. The planes are kept as
//! they are and interleaved into HWC on [`Dataset::get`].

use std::path::Path;

use crate::{DataError, Dataset, Image, Split};

const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;
const PIXELS: usize = 3 * PLANE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarKind {
    Cifar10,
    Cifar100,
}

impl CifarKind {
    pub fn num_classes(self) -> usize {
        match self {
            Self::Cifar10 => 10,
            Self::Cifar100 => 100,
        }
    }

    /// Label bytes before the pixels: CIFAR-100 stores the coarse label
    /// first and the fine label (the one used) second.
    fn label_bytes(self) -> usize {
        match self {
            Self::Cifar10 => 1,
            Self::Cifar100 => 2,
        }
    }

    fn record_size(self) -> usize {
        self.label_bytes() + PIXELS
    }

    fn files(self, split: Split) -> Vec<String> {
        match (self, split) {
            (Self::Cifar10, Split::Train) => {
                (1..=5).map(|i| format!("data_batch_{i}.bin")).collect()
            }
            (Self::Cifar10, Split::Test) => vec!["test_batch.bin".into()],
            (Self::Cifar100, Split::Train) => vec!["train.bin".into()],
            (Self::Cifar100, Split::Test) => vec!["test.bin".into()],
        }
    }

    fn names_file(self) -> &'static str {
        match self {
            Self::Cifar10 => "batches.meta.txt",
            Self::Cifar100 => "fine_label_names.txt",
        }
    }
}

/// One CIFAR split, all records in memory as `u8`.
pub struct CifarDataset {
    /// The pixel part of each record, `PIXELS` bytes apiece, in CHW order.
    pixels: Vec<u8>,
    labels: Vec<u8>,
    class_names: Vec<String>,
}

impl CifarDataset {
    /// Reads the split's `.bin` files from `root`. Each file may hold any
    /// whole number of records, so subsets of the official files work.
    pub fn open(root: &Path, kind: CifarKind, split: Split) -> Result<Self, DataError> {
        let mut dataset = Self {
            pixels: Vec::new(),
            labels: Vec::new(),
            class_names: read_class_names(&root.join(kind.names_file()), kind.num_classes())?,
        };
        for file in kind.files(split) {
            let path = root.join(file);
            let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
            dataset.append_records(&path, &bytes, kind)?;
        }
        Ok(dataset)
    }

    fn append_records(
        &mut self,
        path: &Path,
        bytes: &[u8],
        kind: CifarKind,
    ) -> Result<(), DataError> {
        let record_size = kind.record_size();
        if !bytes.len().is_multiple_of(record_size) {
            return Err(DataError::format(
                path,
                format!(
                    "size {} is not a multiple of the {record_size}-byte {kind:?} record",
                    bytes.len()
                ),
            ));
        }
        for (i, record) in bytes.chunks_exact(record_size).enumerate() {
            let (label_bytes, pixels) = record.split_at(kind.label_bytes());
            let label = label_bytes[label_bytes.len() - 1];
            if usize::from(label) >= kind.num_classes() {
                return Err(DataError::format(
                    path,
                    format!(
                        "record {i} has label {label}, but {kind:?} has {} classes",
                        kind.num_classes()
                    ),
                ));
            }
            self.labels.push(label);
            self.pixels.extend_from_slice(pixels);
        }
        Ok(())
    }
}

/// Names from the optional one-name-per-line file (blank lines ignored),
/// else the class indices as text.
fn read_class_names(path: &Path, num_classes: usize) -> Result<Vec<String>, DataError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((0..num_classes).map(|i| i.to_string()).collect());
        }
        Err(e) => return Err(DataError::io(path, e)),
    };
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect();
    if names.len() != num_classes {
        return Err(DataError::format(
            path,
            format!("holds {} class names, expected {num_classes}", names.len()),
        ));
    }
    Ok(names)
}

impl Dataset for CifarDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }

    fn get(&self, index: usize) -> Result<(Image, usize), DataError> {
        let planes = &self.pixels[index * PIXELS..(index + 1) * PIXELS];
        let mut hwc = Vec::with_capacity(PIXELS);
        for offset in 0..PLANE {
            hwc.extend([0, 1, 2].map(|c| planes[c * PLANE + offset]));
        }
        Ok((Image::new(SIDE, SIDE, hwc), usize::from(self.labels[index])))
    }
}
