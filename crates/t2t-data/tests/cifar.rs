//! CIFAR binary parsing on generated files.

use std::path::Path;

use t2t_data::{CifarDataset, CifarKind, Dataset, Split};

/// Record `r` of a file: R depends on the column only, G on the row only,
/// B is `tag`, so a transposed reader fails.
fn record(labels: &[u8], tag: u8) -> Vec<u8> {
    let mut bytes = labels.to_vec();
    bytes.extend((0..1024).map(|i| (i % 32) as u8 * 4)); // R: column
    bytes.extend((0..1024).map(|i| (i / 32) as u8 * 4)); // G: row
    bytes.extend([tag; 1024]);
    bytes
}

fn write_cifar10(root: &Path, per_file: usize) {
    for (file, first_tag) in [
        ("data_batch_1.bin", 0),
        ("data_batch_2.bin", 10),
        ("data_batch_3.bin", 20),
        ("data_batch_4.bin", 30),
        ("data_batch_5.bin", 40),
        ("test_batch.bin", 100),
    ] {
        let bytes: Vec<u8> = (0..per_file)
            .flat_map(|r| record(&[(first_tag as usize + r) as u8 % 10], first_tag + r as u8))
            .collect();
        std::fs::write(root.join(file), bytes).unwrap();
    }
}

#[test]
fn cifar10_records_parse_with_planes_in_place() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path(), 3);
    let train = CifarDataset::open(dir.path(), CifarKind::Cifar10, Split::Train).unwrap();
    assert_eq!(train.len(), 15);
    assert_eq!(train.num_classes(), 10);
    assert_eq!(
        train.class_names(),
        (0..10).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    // Sample 4 is record 1 of data_batch_2: tag 11, label 1.
    let (img, label) = train.get(4).unwrap();
    assert_eq!((img.width, img.height, label), (32, 32, 1));
    for (x, y) in [(0, 0), (31, 0), (5, 17), (0, 31), (30, 2)] {
        assert_eq!(
            img.pixel(x, y),
            [x as u8 * 4, y as u8 * 4, 11],
            "at ({x}, {y})"
        );
    }
    let test = CifarDataset::open(dir.path(), CifarKind::Cifar10, Split::Test).unwrap();
    assert_eq!(test.len(), 3);
    assert_eq!(test.get(2).unwrap().1, 2);
    assert_eq!(test.get(2).unwrap().0.pixel(3, 9), [12, 36, 102]);
}

#[test]
fn cifar10_class_names_come_from_batches_meta() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path(), 1);
    let names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ];
    // The official file ends with blank lines.
    std::fs::write(
        dir.path().join("batches.meta.txt"),
        names.join("\n") + "\n\n\n",
    )
    .unwrap();
    let data = CifarDataset::open(dir.path(), CifarKind::Cifar10, Split::Test).unwrap();
    assert_eq!(data.class_names(), names);

    std::fs::write(dir.path().join("batches.meta.txt"), "a\nb\n").unwrap();
    let error = CifarDataset::open(dir.path(), CifarKind::Cifar10, Split::Test)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("batches.meta.txt") && error.contains("2 class names"),
        "{error}"
    );
}

#[test]
fn cifar100_uses_the_fine_label() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..4u8)
        .flat_map(|r| record(&[19 - r, 90 + r], r))
        .collect();
    std::fs::write(dir.path().join("train.bin"), bytes).unwrap();
    let names: Vec<String> = (0..100).map(|i| format!("fine{i}")).collect();
    std::fs::write(dir.path().join("fine_label_names.txt"), names.join("\n")).unwrap();
    let data = CifarDataset::open(dir.path(), CifarKind::Cifar100, Split::Train).unwrap();
    assert_eq!((data.len(), data.num_classes()), (4, 100));
    assert_eq!(data.class_names()[93], "fine93");
    for r in 0..4 {
        let (img, label) = data.get(r).unwrap();
        assert_eq!(label, 90 + r);
        assert_eq!(img.pixel(7, 3), [28, 12, r as u8]);
    }
}

#[test]
fn a_partial_record_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path(), 2);
    let path = dir.path().join("data_batch_4.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(3073 + 100);
    std::fs::write(&path, bytes).unwrap();
    let error = CifarDataset::open(dir.path(), CifarKind::Cifar10, Split::Train)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        error,
        format!(
            "{}: size 3173 is not a multiple of the 3073-byte Cifar10 record",
            path.display()
        )
    );
}

#[test]
fn a_missing_file_and_a_bad_label_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path(), 1);
    let path = dir.path().join("data_batch_3.bin");
    std::fs::remove_file(&path).unwrap();
    let error = CifarDataset::open(dir.path(), CifarKind::Cifar10, Split::Train)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.starts_with(&format!("{}: ", path.display())),
        "{error}"
    );
    assert!(!error.contains('\n'));

    std::fs::write(&path, record(&[10], 0)).unwrap();
    let error = CifarDataset::open(dir.path(), CifarKind::Cifar10, Split::Train)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("data_batch_3.bin") && error.contains("label 10"),
        "{error}"
    );
}
