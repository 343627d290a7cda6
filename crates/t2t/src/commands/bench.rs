use std::process::ExitCode;
use std::time::Instant;

use anyhow::{ensure, Result};
use burn::tensor::{Distribution, Tensor};
use serde_json::json;
use t2t_models::kernels::simd;
use t2t_train::grads::Gradients;
use t2t_train::loss::{smoothed_targets, soft_target_cross_entropy};
use t2t_train::optim::{AdamWConfig, Optimizer, OptimizerConfig};

use super::{open_device, print_json, resolve_model};
use crate::cli::BenchArgs;

/// The most input values one benchmark batch may hold (256 MiB of f32):
/// the activations of a batch are tens of times larger again.
const MAX_INPUT_VALUES: usize = 1 << 26;

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    ensure!(args.iters > 0, "--iters must be at least 1");
    let spec = resolve_model(&args.model.model, &args.model.overrides)?;
    let size = spec.config.img_size();
    let classes = spec.config.num_classes();
    let shape = [args.batch_size, spec.config.in_chans(), size, size];
    let values = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    ensure!(
        values.is_some_and(|v| v <= MAX_INPUT_VALUES),
        "--batch-size {}: a batch of {}x{size}x{size} images holds more than {MAX_INPUT_VALUES} \
         input values, the limit of a benchmark batch",
        args.batch_size,
        shape[1]
    );
    let placement = open_device(&args.device)?;
    let times_ms = if args.train {
        ensure!(
            classes > 0,
            "bench --train needs a classification head for its loss, and --num-classes 0 \
             (num_classes=0) builds a model without one"
        );
        let device = placement.device.clone().autodiff();
        let mut model = spec.config.init(&device)?;
        let images = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let labels: Vec<usize> = (0..args.batch_size).map(|i| i % classes).collect();
        let targets = smoothed_targets(&labels, classes, 0.1, &device);
        let mut optim = Optimizer::new(OptimizerConfig::AdamW(AdamWConfig::default()));
        time(args.warmup, args.iters, || {
            let loss = soft_target_cross_entropy(model.forward(images.clone()), targets.clone());
            let grads = Gradients::collect(&model, &loss.backward());
            model = optim.step(model.clone(), &grads, 1e-3, &|_| 1.0);
            // A GPU runs the step asynchronously: wait for it.
            device
                .sync()
                .map_err(|error| anyhow::anyhow!("the device failed: {error:?}"))
        })?
    } else {
        let device = placement.device.clone();
        let model = spec.config.init(&device)?;
        let images = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        // Reading the result back waits for the whole computation.
        time(args.warmup, args.iters, || {
            model.forward(images.clone()).into_data();
            Ok(())
        })?
    };
    // What the device's allocator holds after the steps: its peak, as it keeps freed blocks.
    let device_memory_mb = placement
        .device
        .memory_pool_usage()
        .map(|usage| usage.bytes_reserved as f64 / (1 << 20) as f64);
    let median = times_ms[times_ms.len() / 2];
    let img_per_s = args.batch_size as f64 / (median / 1e3);
    let mode = if args.train { "train" } else { "inference" };
    let peak_rss_mb = peak_rss_mb();
    if args.json {
        print_json(&json!({
            "model": spec.name, "img_size": size, "batch_size": args.batch_size, "mode": mode,
            "img_per_s": img_per_s, "ms_per_batch": median, "times_ms": times_ms, "peak_rss_mb": peak_rss_mb,
            "simd": {"kernels": simd::kernel_instruction_set(), "matrix_products": simd::matrix_instruction_set()},
            "backend": placement.backend, "adapter": placement.adapter, "device_memory_mb": device_memory_mb,
        }));
    } else {
        println!(
            "{} {mode} {size}px batch {}: {median:.1} ms/batch (median of {}), {img_per_s:.2} img/s, peak RSS {} \
             (kernels {}, matrix products {})",
            spec.name,
            args.batch_size,
            args.iters,
            peak_rss_mb.map_or("n/a".to_string(), |m| format!("{m:.0} MB")),
            simd::kernel_instruction_set(),
            simd::matrix_instruction_set(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `step` `warmup` times untimed, then `iters` times timed; sorted milliseconds.
fn time(warmup: usize, iters: usize, mut step: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        step()?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        step()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// The process's peak resident set (Linux `VmHWM`).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
