//! The synthetic texture dataset.

use t2t_data::{Dataset, Image, Split, Synthetic};

/// Squared horizontal and vertical differences, summed over pixels and
/// channels: per-pixel noise adds the same to both, a grating to one.
fn gradient_energy(img: &Image) -> (f64, f64) {
    let (mut gx, mut gy) = (0.0, 0.0);
    for y in 0..img.height - 1 {
        for x in 0..img.width - 1 {
            let here = img.pixel(x, y).map(f64::from);
            let right = img.pixel(x + 1, y).map(f64::from);
            let below = img.pixel(x, y + 1).map(f64::from);
            for c in 0..3 {
                gx += (right[c] - here[c]).powi(2);
                gy += (below[c] - here[c]).powi(2);
            }
        }
    }
    (gx, gy)
}

#[test]
fn samples_are_pure_functions_of_seed_split_and_index() {
    let a = Synthetic::new(Split::Train, 100, 32, 1);
    let b = Synthetic::new(Split::Train, 100, 32, 1);
    assert_eq!(a.get(17).unwrap(), b.get(17).unwrap());
    assert_ne!(
        a.get(17).unwrap(),
        Synthetic::new(Split::Train, 100, 32, 2).get(17).unwrap()
    );
    let (img, label) = a.get(17).unwrap();
    assert_eq!((img.width, img.height, label), (32, 32, 7));
    assert_eq!(a.class_names()[0], "hstripes");
    assert_eq!(a.num_classes(), 10);
}

#[test]
fn train_and_test_share_no_sample() {
    let train = Synthetic::new(Split::Train, 200, 32, 0);
    let test = Synthetic::new(Split::Test, 200, 32, 0);
    let train_images: std::collections::HashSet<Vec<u8>> =
        (0..200).map(|i| train.get(i).unwrap().0.pixels).collect();
    assert_eq!(train_images.len(), 200);
    assert!((0..200).all(|i| !train_images.contains(&test.get(i).unwrap().0.pixels)));
}

#[test]
fn stripe_classes_differ_in_local_structure_not_colour() {
    let data = Synthetic::new(Split::Train, 400, 32, 5);
    let mut mean_luma = [0.0f64; 10];
    for index in 0..400 {
        let (img, label) = data.get(index).unwrap();
        let (gx, gy) = gradient_energy(&img);
        match label {
            0 => assert!(gy > 1.5 * gx, "hstripes sample {index}: gx {gx} gy {gy}"),
            1 => assert!(gx > 1.5 * gy, "vstripes sample {index}: gx {gx} gy {gy}"),
            _ => {}
        }
        mean_luma[label] +=
            img.pixels.iter().map(|&v| f64::from(v)).sum::<f64>() / img.pixels.len() as f64 / 40.0;
    }
    // No class is told apart by its average brightness.
    for luma in mean_luma {
        assert!((90.0..165.0).contains(&luma), "{mean_luma:?}");
    }
}

/// Squared differences along the two diagonals, `(↘, ↙)`: a grating along
/// one diagonal changes little along it and much along the other.
fn diagonal_energy(img: &Image) -> (f64, f64) {
    let (mut down_right, mut down_left) = (0.0, 0.0);
    for y in 0..img.height - 1 {
        for x in 1..img.width - 1 {
            let here = img.pixel(x, y).map(f64::from);
            let right = img.pixel(x + 1, y + 1).map(f64::from);
            let left = img.pixel(x - 1, y + 1).map(f64::from);
            for c in 0..3 {
                down_right += (right[c] - here[c]).powi(2);
                down_left += (left[c] - here[c]).powi(2);
            }
        }
    }
    (down_right, down_left)
}

fn mirrored(img: &Image) -> Image {
    let mut pixels = Vec::with_capacity(img.pixels.len());
    for y in 0..img.height {
        for x in (0..img.width).rev() {
            pixels.extend(img.pixel(x, y));
        }
    }
    Image::new(img.width, img.height, pixels)
}

/// Why the `builtin` preset does not flip: a horizontal flip turns a
/// `diagonal` sample into an `antidiagonal` one and back.
#[test]
fn the_diagonal_classes_are_each_others_mirror_image() {
    let data = Synthetic::new(Split::Train, 400, 32, 5);
    let names = data.class_names();
    let (diagonal, antidiagonal) = (2, 3);
    assert_eq!(
        (&*names[diagonal], &*names[antidiagonal]),
        ("diagonal", "antidiagonal")
    );
    let leans = |img: &Image| {
        let (down_right, down_left) = diagonal_energy(img);
        if down_right > 1.5 * down_left {
            Some(diagonal)
        } else if down_left > 1.5 * down_right {
            Some(antidiagonal)
        } else {
            None
        }
    };
    let mut checked = 0;
    for index in 0..400 {
        let (img, label) = data.get(index).unwrap();
        if label != diagonal && label != antidiagonal {
            continue;
        }
        let other = diagonal + antidiagonal - label;
        assert_eq!(leans(&img), Some(label), "sample {index}");
        assert_eq!(
            leans(&mirrored(&img)),
            Some(other),
            "mirrored sample {index}"
        );
        checked += 1;
    }
    assert_eq!(checked, 80);
}
