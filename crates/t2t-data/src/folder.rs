//! `root/<class>/<image>` trees, as timm's `ImageDataset` reads them.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use crate::{DataError, Dataset, Image};

const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// Images under `root/<class>/`, decoded lazily in [`Dataset::get`].
pub struct ImageFolder {
    root: PathBuf,
    class_names: Vec<String>,
    /// Path and class index, grouped by class in class order.
    samples: Vec<(PathBuf, usize)>,
}

impl ImageFolder {
    /// Classes are the sub-folders of `root` in timm's natural order ("c2"
    /// before "c10"). A class map (one class name per line, line order =
    /// index) fixes the order instead: folders it does not name are ignored
    /// and classes without a folder simply have no samples, as in timm.
    /// An empty class folder, or no image at all, is an error.
    pub fn open(root: &Path, class_map: Option<&Path>) -> Result<Self, DataError> {
        let class_names = match class_map {
            Some(map) => read_class_map(map)?,
            None => {
                let mut names = subfolder_names(root)?;
                names.sort_by(|a, b| natural_cmp(a, b));
                names
            }
        };
        let mut samples = Vec::new();
        for (index, name) in class_names.iter().enumerate() {
            let dir = root.join(name);
            if class_map.is_some() && !dir.is_dir() {
                continue;
            }
            let images = image_files(&dir)?;
            if images.is_empty() {
                return Err(DataError::format(&dir, "class folder holds no images"));
            }
            samples.extend(images.into_iter().map(|path| (path, index)));
        }
        if samples.is_empty() {
            return Err(DataError::format(
                root,
                "no class folder of the class map exists",
            ));
        }
        Ok(Self {
            root: root.to_path_buf(),
            class_names,
            samples,
        })
    }

    /// The file behind sample `index`.
    pub fn path(&self, index: usize) -> &Path {
        &self.samples[index].0
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }

    fn get(&self, index: usize) -> Result<(Image, usize), DataError> {
        let (path, label) = &self.samples[index];
        Ok((decode_file(path)?, *label))
    }

    fn origin(&self) -> String {
        self.root.display().to_string()
    }
}

/// Image files in a given order, all of class 0: images without labels,
/// such as those to embed.
pub struct ImageFiles {
    files: Vec<PathBuf>,
}

impl ImageFiles {
    pub fn new(files: Vec<PathBuf>) -> Self {
        Self { files }
    }
}

impl Dataset for ImageFiles {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn num_classes(&self) -> usize {
        1
    }

    fn class_names(&self) -> Vec<String> {
        vec!["image".to_string()]
    }

    fn get(&self, index: usize) -> Result<(Image, usize), DataError> {
        Ok((decode_file(&self.files[index])?, 0))
    }

    fn origin(&self) -> String {
        "the image files".into()
    }
}

/// The most pixels a decoded image may have: PIL's `MAX_IMAGE_PIXELS`
/// (about 256 MiB as RGB). The size is read from the header, so a larger
/// image is refused before anything is allocated for it.
pub const MAX_IMAGE_PIXELS: u64 = 89_478_485;

/// Decodes any supported format (sniffed from the bytes) to RGB. A JPEG
/// that stops before its end marker decodes to what is there, with a
/// warning naming the file.
pub fn decode_file(path: &Path) -> Result<Image, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let decoder = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?
        .into_decoder()
        .map_err(|e| DataError::decode(path, e))?;
    let (width, height) = image::ImageDecoder::dimensions(&decoder);
    let pixels = u64::from(width) * u64::from(height);
    if !(1..=MAX_IMAGE_PIXELS).contains(&pixels) {
        return Err(DataError::decode(
            path,
            format!(
                "{width}x{height} is {pixels} pixels; an image may have 1 to {MAX_IMAGE_PIXELS}"
            ),
        ));
    }
    let rgb = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| DataError::decode(path, e))?
        .into_rgb8();
    if is_truncated_jpeg(&bytes) {
        eprintln!(
            "warning: {}: truncated JPEG (no end marker); the missing part is filled in",
            path.display()
        );
    }
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    Ok(Image::new(width, height, rgb.into_raw()))
}

/// A JPEG (FF D8 at the start) that lacks the end-of-image marker FF D9
/// before any trailing padding.
fn is_truncated_jpeg(bytes: &[u8]) -> bool {
    let trimmed = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(&bytes[..0], |last| &bytes[..=last]);
    bytes.starts_with(&[0xFF, 0xD8]) && !trimmed.ends_with(&[0xFF, 0xD9])
}

fn read_class_map(path: &Path) -> Result<Vec<String>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Err(DataError::format(path, "class map names no class"));
    }
    Ok(names)
}

/// The entries of `dir` as (path, file name), skipping hidden ones.
fn visible_entries(dir: &Path) -> Result<Vec<(PathBuf, String)>, DataError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.starts_with('.') {
            entries.push((path, name));
        }
    }
    Ok(entries)
}

/// The class folders of `root`. Their names become class names, which are
/// text, so a name that is not UTF-8 is refused rather than altered.
fn subfolder_names(root: &Path) -> Result<Vec<String>, DataError> {
    let mut names = Vec::new();
    for (path, name) in visible_entries(root)? {
        if !path.is_dir() {
            continue;
        }
        if path.file_name().and_then(|n| n.to_str()).is_none() {
            return Err(DataError::format(
                &path,
                "class folder name is not valid UTF-8; rename the folder",
            ));
        }
        names.push(name);
    }
    if names.is_empty() {
        return Err(DataError::format(root, "no class folders"));
    }
    Ok(names)
}

/// The images directly inside `dir`, in natural order of their names.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut files: Vec<(PathBuf, String)> = visible_entries(dir)?
        .into_iter()
        .filter(|(path, _)| path.is_file() && has_image_extension(path))
        .collect();
    files.sort_by(|a, b| natural_cmp(&a.1, &b.1));
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

/// Whether `path` names a file of an image format the loader decodes.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|known| e.eq_ignore_ascii_case(known)))
}

/// timm's `natural_key` order: lower-cased text with digit runs compared as
/// numbers, so "class2" < "class10". Exact ties fall back to the raw text to
/// keep the order total.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    natural_key(a).cmp(&natural_key(b)).then_with(|| a.cmp(b))
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum KeyPart {
    /// A digit run without leading zeros: a longer run is a larger number,
    /// equal lengths compare digit by digit.
    Number(usize, String),
    Text(String),
}

fn natural_key(text: &str) -> Vec<KeyPart> {
    let lower = text.to_lowercase();
    let mut parts = Vec::new();
    let mut rest = lower.as_str();
    while let Some(first) = rest.chars().next() {
        let is_digit = first.is_ascii_digit();
        let end = rest
            .find(|c: char| c.is_ascii_digit() != is_digit)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        parts.push(if is_digit {
            let digits = run.trim_start_matches('0');
            KeyPart::Number(digits.len(), digits.to_string())
        } else {
            KeyPart::Text(run.to_string())
        });
        rest = tail;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::is_truncated_jpeg;

    #[test]
    fn a_jpeg_without_its_end_marker_is_truncated() {
        assert!(!is_truncated_jpeg(b"\xff\xd8 data \xff\xd9"));
        assert!(!is_truncated_jpeg(b"\xff\xd8 data \xff\xd9\0\0"));
        assert!(is_truncated_jpeg(b"\xff\xd8 data"));
        assert!(is_truncated_jpeg(b"\xff\xd8\0\0"));
        assert!(!is_truncated_jpeg(b"\x89PNG\r\n\x1a\n"));
    }
}
