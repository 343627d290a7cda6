//! ImageFolder: class order, class maps, decoding and errors.

mod common;

use common::{write_corrupt, write_image};
use t2t_data::folder::MAX_IMAGE_PIXELS;
use t2t_data::{decode_file, DataError, Dataset, ImageFolder};
use t2t_testing::write_png_header;

#[test]
fn classes_sort_naturally_and_images_decode() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (i, class) in ["class10", "class2", "Class3", "class1"].iter().enumerate() {
        write_image(&root.join(class).join("a.png"), 5 + i as u32, 4, i as u8);
    }
    write_image(&root.join("class2/b.JPG"), 16, 8, 9);
    std::fs::write(root.join("class2/notes.txt"), "not an image").unwrap();
    let data = ImageFolder::open(root, None).unwrap();
    assert_eq!(
        data.class_names(),
        ["class1", "class2", "Class3", "class10"]
    );
    assert_eq!(data.len(), 5);
    let labels: Vec<usize> = (0..5).map(|i| data.get(i).unwrap().1).collect();
    assert_eq!(labels, [0, 1, 1, 2, 3]);
    // class10 was written first, as a 5x4 PNG with tag 0.
    let (img, _) = data.get(4).unwrap();
    assert_eq!((img.width, img.height), (5, 4));
    assert_eq!(img.pixel(3, 2), [3, 2, 0]);
    assert!(data.path(2).ends_with("class2/b.JPG"));
    assert_eq!(data.get(2).unwrap().0.width, 16);
}

#[test]
fn a_class_map_fixes_the_order_and_the_classes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("train");
    for class in ["cat", "dog", "eel"] {
        write_image(&root.join(class).join("x.png"), 3, 3, 0);
    }
    let map = dir.path().join("classes.txt");
    std::fs::write(&map, "dog\ncat\nfox\n").unwrap();
    let data = ImageFolder::open(&root, Some(&map)).unwrap();
    // "eel" is not in the map, "fox" has no folder: timm's behaviour.
    assert_eq!(data.class_names(), ["dog", "cat", "fox"]);
    assert_eq!(data.num_classes(), 3);
    let labels: Vec<usize> = (0..data.len()).map(|i| data.get(i).unwrap().1).collect();
    assert_eq!(labels, [0, 1]);

    std::fs::write(&map, "fox\n").unwrap();
    let error = ImageFolder::open(&root, Some(&map))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.starts_with(&format!("{}: ", root.display())),
        "{error}"
    );
}

#[test]
fn an_empty_class_folder_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_image(&dir.path().join("a/1.png"), 2, 2, 0);
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    let error = ImageFolder::open(dir.path(), None)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        error,
        format!(
            "{}: class folder holds no images",
            dir.path().join("b").display()
        )
    );
}

#[test]
fn an_unreadable_root_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let error = ImageFolder::open(&missing, None).err().unwrap();
    assert!(matches!(error, DataError::Io { .. }));
    assert!(error
        .to_string()
        .starts_with(&format!("{}: ", missing.display())));
}

#[test]
fn a_corrupt_image_fails_in_get_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("a/bad.jpg");
    write_corrupt(&bad);
    write_image(&dir.path().join("a/good.png"), 2, 2, 0);
    let data = ImageFolder::open(dir.path(), None).unwrap();
    let error = data.get(0).err().unwrap().to_string();
    assert!(
        error.starts_with(&format!("{}: cannot decode image", bad.display())),
        "{error}"
    );
    assert!(!error.contains('\n'));
    assert!(data.get(1).is_ok());
}

#[test]
fn an_image_over_the_pixel_limit_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("a/huge.png");
    // 20000 x 20000 RGB would be 1.2 GB decoded.
    write_png_header(&huge, 20_000, 20_000);
    let error = decode_file(&huge).err().unwrap().to_string();
    assert!(
        error.starts_with(&format!("{}: ", huge.display()))
            && error.contains(&format!("1 to {MAX_IMAGE_PIXELS}")),
        "{error}"
    );
}

#[test]
fn a_truncated_jpeg_still_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/cut.jpg");
    write_image(&path, 256, 192, 3);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let image = decode_file(&path).unwrap();
    assert_eq!((image.width, image.height), (256, 192));
}

#[cfg(unix)]
#[test]
fn a_class_folder_name_that_is_not_utf8_is_named_in_the_error() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    write_image(&class.join("1.png"), 2, 2, 0);
    let error = ImageFolder::open(dir.path(), None)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        error,
        format!(
            "{}: class folder name is not valid UTF-8; rename the folder",
            class.display()
        )
    );
}
