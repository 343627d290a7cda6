//! Loader throughput on ImageNet-like JPEGs with the full T2T training
//! transform (RandomResizedCrop 224, flip, RandAugment rand-m9-mstd0.5-inc1,
//! random erasing 0.25, mixup/cutmix).
//!
//! ```text
//! cargo run --release -p t2t-data --example loader_throughput [workers]
//! ```
//!
//! Writes 200 JPEGs of 500x375 into a temporary folder, then reports the
//! median img/s of three epochs (2 workers unless given).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use image::codecs::jpeg::JpegEncoder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use t2t_data::transforms::TrainTransform;
use t2t_data::{Dataset, ImageFolder, Loader, LoaderConfig, MixupConfig, Transform};

const IMAGES: usize = 200;
const CLASSES: usize = 4;
const SIZE: (u32, u32) = (500, 375);
const PASSES: usize = 3;
/// Amplitude of the uniform per-pixel noise.
const NOISE: f32 = 20.0;

fn main() {
    let workers = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("the argument is a worker count"))
        .unwrap_or(2);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let bytes = write_jpegs(dir.path());
    let dataset =
        Arc::new(ImageFolder::open(dir.path(), None).expect("the generated folder opens"));
    println!(
        "{} JPEGs of {}x{}, {} KB on average",
        dataset.len(),
        SIZE.0,
        SIZE.1,
        bytes / IMAGES as u64 / 1000
    );
    println!(
        "decode only, 1 thread: {:.0} img/s",
        decode_rate(dataset.as_ref())
    );

    let config = LoaderConfig {
        workers,
        shuffle: true,
        transform: Transform::Train(TrainTransform::default()),
        mixup: Some(MixupConfig::default()),
        smoothing: 0.1,
        ..LoaderConfig::new(32, 224, CLASSES)
    };
    let loader = Loader::new(dataset, config).expect("a valid loader config");
    let mut rates: Vec<f64> = (0..PASSES)
        .map(|epoch| {
            let start = Instant::now();
            let images: usize = loader
                .epoch(epoch, 0)
                .map(|batch| batch.expect("synthetic samples always load").batch_size)
                .sum();
            let rate = images as f64 / start.elapsed().as_secs_f64();
            println!("pass {}: {images} images, {rate:.0} img/s", epoch + 1);
            rate
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    println!(
        "train transform at 224, {workers} workers: median {:.0} img/s over {PASSES} passes",
        rates[PASSES / 2]
    );
}

/// Colour gradients with random rectangles and per-pixel noise, at quality
/// 90: files of about the size of ImageNet's (around 110 KB), which is what
/// the decoding cost follows. Returns the bytes written.
fn write_jpegs(root: &Path) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut bytes = 0;
    for i in 0..IMAGES {
        let base: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..255.0));
        let slope: [f32; 3] = std::array::from_fn(|_| rng.random_range(-0.4..0.4));
        let rects: Vec<([u32; 4], [u8; 3])> = (0..8)
            .map(|_| {
                let (x, y) = (rng.random_range(0..SIZE.0), rng.random_range(0..SIZE.1));
                let (w, h) = (rng.random_range(10..150), rng.random_range(10..150));
                ([x, y, x + w, y + h], rng.random())
            })
            .collect();
        let img = image::RgbImage::from_fn(SIZE.0, SIZE.1, |x, y| {
            let inside = rects
                .iter()
                .find(|([x0, y0, x1, y1], _)| (*x0..*x1).contains(&x) && (*y0..*y1).contains(&y));
            let rgb = match inside {
                Some((_, colour)) => colour.map(f32::from),
                None => std::array::from_fn(|c| base[c] + slope[c] * (x + y) as f32),
            };
            image::Rgb(rgb.map(|v| (v + rng.random_range(-NOISE..=NOISE)).clamp(0.0, 255.0) as u8))
        });
        let dir = root.join(format!("class{}", i % CLASSES));
        std::fs::create_dir_all(&dir).expect("a class folder");
        let path = dir.join(format!("{i}.jpg"));
        let file = std::fs::File::create(&path).expect("a JPEG file");
        JpegEncoder::new_with_quality(std::io::BufWriter::new(file), 90)
            .encode_image(&img)
            .expect("encoding a JPEG");
        bytes += std::fs::metadata(&path).expect("the written JPEG").len();
    }
    bytes
}

/// Single-thread decode rate: the floor under any transform.
fn decode_rate(dataset: &dyn Dataset) -> f64 {
    let start = Instant::now();
    for index in 0..dataset.len() {
        dataset.get(index).expect("a generated image decodes");
    }
    dataset.len() as f64 / start.elapsed().as_secs_f64()
}
