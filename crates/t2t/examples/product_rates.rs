//! The rate, in GFLOP/s, at which the CPU backend's matrix product runs the
//! products of a T2T-ViT block (qkv, proj, fc1, fc2) at the shapes of a
//! batch of 224 px images: the largest and most regular products in the
//! model, so their best rate bounds the rate of the whole model from above.
//!
//!     cargo run --release -p t2t --example product_rates [BATCH]
//!
//! BATCH defaults to 16. Each rate is the median of 9 runs after one untimed
//! run, on every core (set `RAYON_NUM_THREADS=1` for one).

mod common;

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 9;
const MAX_BATCH: usize = 256;
/// Tokens of a 224 px image after the T2T module: 14×14 and the class token.
const TOKENS: usize = 197;

/// Median GFLOP/s of `[rows, inner] · [inner, cols]`.
fn rate(rows: usize, inner: usize, cols: usize, device: &Device) -> f64 {
    let random = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Default, device);
    let (lhs, rhs) = (random([rows, inner]), random([inner, cols]));
    let seconds: Vec<f64> = (0..=RUNS)
        .map(|_| {
            let started = Instant::now();
            let product = lhs.clone().matmul(rhs.clone());
            // Reading one value waits for the product.
            product.slice([0..1, 0..1]).into_scalar::<f32>();
            started.elapsed().as_secs_f64()
        })
        .skip(1)
        .collect();
    2.0 * (rows * inner * cols) as f64 / common::median(seconds) / 1e9
}

fn main() {
    let batch = common::argument(
        1,
        16,
        |b| (1..=MAX_BATCH).contains(&b),
        &format!("BATCH must be a whole number from 1 to {MAX_BATCH}"),
    );
    common::on_compute_threads(|| time_and_print(batch));
}

/// Times the block products at the shapes of a batch of `batch` images.
fn time_and_print(batch: usize) {
    let device = Device::flex();
    let rows = batch * TOKENS;
    println!("{}", common::lscpu_model_name());
    println!("block products at batch {batch} ({rows} rows), GFLOP/s\n");
    println!("| model | product | shape | GFLOP/s |\n|---|---|---|---|");
    // (model, width, MLP ratio) of the two models `bench/compare.sh` times.
    for (model, width, mlp_ratio) in [("t2t_vit_7", 256, 2), ("t2t_vit_14", 384, 3)] {
        let hidden = width * mlp_ratio;
        for (product, inner, cols) in [
            ("qkv", width, 3 * width),
            ("proj", width, width),
            ("fc1", width, hidden),
            ("fc2", hidden, width),
        ] {
            let gflops = rate(rows, inner, cols, &device);
            println!("| {model} | {product} | {rows}×{inner} · {inner}×{cols} | {gflops:.0} |");
        }
    }
}
