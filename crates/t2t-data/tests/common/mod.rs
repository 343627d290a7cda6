//! Helpers shared by the integration tests.

use std::path::Path;

/// Writes a `width` x `height` RGB image whose pixel `(x, y)` is
/// `[x, y, tag]`; the format follows the file extension.
pub fn write_image(path: &Path, width: u32, height: u32, tag: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, tag]));
    img.save(path).unwrap();
}

/// A file with an image extension that holds no image.
pub fn write_corrupt(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"\xff\xd8\xff\xe0 this is not really a jpeg").unwrap();
}
