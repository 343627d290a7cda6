//! Writes held-out samples of the built-in dataset as PNGs, so that they can
//! be looked at, or given to `t2t predict` and `t2t visualize`.
//!
//! ```text
//! cargo run --release --example synthetic_samples -- OUT_DIR [PER_CLASS] [IMG_SIZE] [SEED]
//! ```
//!
//! The samples are those of the test split that `t2t train` evaluates on
//! with the same seed (42 unless given) and image size (32 unless given),
//! `PER_CLASS` of each class (1 unless given), named `CLASS_INDEX.png`.

use std::path::PathBuf;

use t2t_data::{Dataset, Split, Synthetic};

/// The test split's length in the built-in preset.
const TEST_SAMPLES: usize = 512;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: synthetic_samples OUT_DIR [PER_CLASS] [IMG_SIZE] [SEED]";
    let out = PathBuf::from(args.next().ok_or(usage)?);
    let mut number = |default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(args
            .next()
            .map(|text| text.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let per_class = number(1)?;
    let img_size = number(32)?;
    let seed = number(42)? as u64;

    let dataset = Synthetic::new(Split::Test, TEST_SAMPLES, img_size, seed);
    let names = dataset.class_names();
    std::fs::create_dir_all(&out)?;
    let classes = names.len();
    for index in 0..(per_class * classes).min(TEST_SAMPLES) {
        let (image, class) = dataset.get(index)?;
        let path = out.join(format!("{}_{index}.png", names[class]));
        image::save_buffer(
            &path,
            &image.pixels,
            image.width as u32,
            image.height as u32,
            image::ExtendedColorType::Rgb8,
        )?;
        println!("{}", path.display());
    }
    Ok(())
}
