//! Where a training step or an inference pass spends its time: milliseconds
//! of each layer of `t2t_vit_7_cifar` at 32 px, or of `t2t_vit_7` at 224 px
//! (and of the operations inside the first T2T layer and a block), at the
//! shapes the model gives them, on the CPU backend.
//!
//!     cargo run --release -p t2t --example layer_timing [BATCH [SIDE [MODE]]]
//!
//! BATCH defaults to 128, SIDE, 32 or 224, to 32, and MODE to `train`:
//! forward and backward passes in training mode. MODE `inference` times
//! forward passes alone, without gradients, as `t2t predict` runs them.
//!
//! In training mode each row is the median of 7 runs after one untimed run,
//! and the backward time includes the gradient of a sum over the output,
//! which costs about as much as the `residual add` row's backward. In
//! inference mode each row is the median of 31 runs, timed on a second pass
//! over the table: the first passes of a process run slower while its
//! memory settles.

mod common;

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use t2t_models::kernels::{gelu, performer_attention, qkv_attention};
use t2t_models::layers::{
    dense, layer_norm, linear, set_stochastic, AttentionConfig, Block, Mlp, SoftSplit, Sublayer,
    TokenPerformer,
};

/// Activations are allocated and freed at every operation: keep them mapped,
/// as the `t2t` binary does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
/// `mi_option_purge_delay` in mimalloc.h (v3); -1: never hand memory back.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

const RUNS: usize = 7;
/// The largest batch: the first layer's activations take about 100 MB per
/// 128 images, several times over.
const MAX_BATCH: usize = 1024;

/// The two models' first soft split, `(kernel, stride, padding)`, by image
/// side: the CIFAR variant's 3×3 keeps every pixel, the paper's 7×7 stride 4
/// takes 224 px to 56×56 tokens. The later splits are 3×3 stride 2 in both.
fn first_split(side: usize) -> Option<(usize, usize, usize)> {
    match side {
        32 => Some((3, 1, 1)),
        224 => Some((7, 4, 2)),
        _ => None,
    }
}

/// Tokens along a side after a soft split.
fn split_side(side: usize, (kernel, stride, padding): (usize, usize, usize)) -> usize {
    (side + 2 * padding - kernel) / stride + 1
}

/// What a table times.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Forward and backward passes, gradients tracked, stochastic layers on.
    Train,
    /// Forward passes alone.
    Inference,
}

/// Runs inference rows this many times after one untimed run: they last
/// tenths of a millisecond at batch 1.
const INFERENCE_RUNS: usize = 31;

/// Times the rows of a table, printing them or not.
struct Timer {
    mode: Mode,
    print: bool,
}

impl Timer {
    /// Times `layer` on `input`, forward and backward in training mode,
    /// forward in inference mode, and prints the medians as a row when the
    /// table is printed.
    fn time<const D: usize>(
        &self,
        name: &str,
        input: &Tensor<D>,
        layer: impl Fn(Tensor<D>) -> Tensor<3>,
    ) {
        let cells = match self.mode {
            Mode::Train => {
                let (forward, backward) = train_times(input, layer);
                format!("{forward:.1} | {backward:.1}")
            }
            Mode::Inference => format!("{:.3}", inference_time(input, layer)),
        };
        if self.print {
            println!("| {name} | {cells} |");
        }
    }
}

/// The median forward and backward milliseconds of `layer` on `input`.
fn train_times<const D: usize>(
    input: &Tensor<D>,
    layer: impl Fn(Tensor<D>) -> Tensor<3>,
) -> (f64, f64) {
    let (mut forward, mut backward) = (Vec::new(), Vec::new());
    for run in 0..=RUNS {
        let x = input.clone().require_grad();
        let started = Instant::now();
        let total = layer(x.clone()).sum();
        total.clone().into_scalar::<f32>();
        let forward_ms = started.elapsed().as_secs_f64() * 1e3;
        let started = Instant::now();
        let grads = total.backward();
        x.grad(&grads)
            .expect("a gradient")
            .sum()
            .into_scalar::<f32>();
        if run > 0 {
            forward.push(forward_ms);
            backward.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    (common::median(forward), common::median(backward))
}

/// The median forward milliseconds of `layer` on `input`, no gradients.
fn inference_time<const D: usize>(
    input: &Tensor<D>,
    layer: impl Fn(Tensor<D>) -> Tensor<3>,
) -> f64 {
    let times = (0..=INFERENCE_RUNS)
        .map(|_| {
            let started = Instant::now();
            layer(input.clone()).sum().into_scalar::<f32>();
            started.elapsed().as_secs_f64() * 1e3
        })
        .skip(1)
        .collect();
    common::median(times)
}

fn main() {
    // SAFETY: sets a process-wide option before any allocation of note.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let batch = common::argument(
        1,
        128,
        |b| (1..=MAX_BATCH).contains(&b),
        &format!("BATCH must be a whole number from 1 to {MAX_BATCH}"),
    );
    let side = common::argument(
        2,
        32,
        |s| first_split(s).is_some(),
        "SIDE must be 32 or 224",
    );
    let mode = match std::env::args().nth(3).as_deref() {
        None | Some("train") => Mode::Train,
        Some("inference") => Mode::Inference,
        Some(_) => {
            eprintln!("error: MODE must be train or inference");
            std::process::exit(2);
        }
    };
    common::on_compute_threads(|| {
        if mode == Mode::Inference {
            time_layers(batch, side, &Timer { mode, print: false });
        }
        time_layers(batch, side, &Timer { mode, print: true });
    });
}

/// Builds the layers at the shapes of a batch of `batch` images of `side`
/// px, and times them.
fn time_layers(batch: usize, side: usize, timer: &Timer) {
    let first_geometry = first_split(side).expect("SIDE was checked");
    let later_geometry = (3, 2, 1);
    let (kernel, _, _) = first_geometry;
    let patch = 3 * kernel * kernel;
    let side_1 = split_side(side, first_geometry);
    let side_2 = split_side(side_1, later_geometry);
    let side_3 = split_side(side_2, later_geometry);
    let [tokens_1, tokens_2, tokens_3] = [side_1, side_2, side_3].map(|s| s * s);
    let training = timer.mode == Mode::Train;
    let device = match timer.mode {
        Mode::Train => Device::flex().autodiff(),
        Mode::Inference => Device::flex(),
    };
    let random =
        |shape: [usize; 3]| Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let split = |(kernel, stride, padding)| SoftSplit::new(kernel, stride, padding);
    let (first_split, later_split) = (split(first_geometry), split(later_geometry));
    let first = set_stochastic(TokenPerformer::new(patch, 64, &device), training);
    let second = set_stochastic(TokenPerformer::new(576, 64, &device), training);
    let project = linear(576, 256, true, &device);
    let attention = AttentionConfig {
        dim: 256,
        num_heads: 4,
        qkv_bias: false,
        qk_scale: None,
        attn_drop: 0.0,
        proj_drop: 0.0,
        squeeze_excite: false,
    }
    .init(&device);
    let mlp = Mlp::new(256, 512, 256, 0.0, &device);
    let block = set_stochastic(
        Block::new(256, attention.clone(), mlp.clone(), 0.1, 1e-6, &device),
        training,
    );
    let norm = layer_norm(256, 1e-6, &device);

    if timer.print {
        println!("{}", common::lscpu_model_name());
        let model = if side == 32 {
            "t2t_vit_7_cifar"
        } else {
            "t2t_vit_7"
        };
        let (what, columns) = match timer.mode {
            Mode::Train => ("training", "| layer | forward | backward |\n|---|---|---|"),
            Mode::Inference => ("inference", "| layer | forward |\n|---|---|"),
        };
        println!("{model} layers at batch {batch}, {side} px, {what} (ms)\n");
        println!("{columns}");
    }
    let image = Tensor::<4>::random(
        [batch, 3, side, side],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    timer.time(
        &format!("soft split 0: image → {tokens_1} tokens × {patch}"),
        &image,
        |x| first_split.forward(x),
    );
    let tokens = random([batch, tokens_1, patch]);
    timer.time(
        &format!("T2T layer 1 (Performer, {patch} → 64, {tokens_1} tokens)"),
        &tokens,
        |x| first.forward(x),
    );
    timer.time(
        &format!("· LayerNorm + kqv {patch} → 192"),
        &tokens,
        |x| first.norm1.then_linear(&first.kqv, x),
    );
    let kqv = random([batch, tokens_1, 192]);
    let features = first.w.val();
    timer.time("· Performer attention", &kqv, |x| {
        performer_attention(x, features.clone())
    });
    let hidden = random([batch, tokens_1, 64]);
    timer.time("· v cut from kqv + the proj branch", &kqv, |x| {
        x.narrow(2, 128, 64) + hidden.clone()
    });
    timer.time("· proj 64 → 64", &hidden, |x| dense(&first.proj, x));
    timer.time("· LayerNorm + fc1 64 → 64", &hidden, |x| {
        first.norm2.then_linear(&first.mlp.fc1, x)
    });
    timer.time("· GELU", &hidden, gelu);
    timer.time("· fc2 64 → 64", &hidden, |x| dense(&first.mlp.fc2, x));
    timer.time("· dropout 0.1", &hidden, |x| first.dp.forward(x));
    timer.time("· residual add", &hidden, |x| x.clone() + x);
    timer.time(
        &format!("soft split 1: {tokens_1} → {tokens_2} tokens × 576"),
        &hidden,
        |x| later_split.forward_tokens(x),
    );
    let tokens = random([batch, tokens_2, 576]);
    timer.time(
        &format!("T2T layer 2 (Performer, 576 → 64, {tokens_2} tokens)"),
        &tokens,
        |x| second.forward(x),
    );
    timer.time("· LayerNorm + kqv 576 → 192", &tokens, |x| {
        second.norm1.then_linear(&second.kqv, x)
    });
    let hidden = random([batch, tokens_2, 64]);
    timer.time(
        &format!("soft split 2: {tokens_2} → {tokens_3} tokens × 576"),
        &hidden,
        |x| later_split.forward_tokens(x),
    );
    let tokens = random([batch, tokens_3, 576]);
    timer.time("project 576 → 256", &tokens, |x| dense(&project, x));
    let tokens = random([batch, tokens_3 + 1, 256]);
    timer.time(
        &format!("block (256 wide, {} tokens, MLP 512)", tokens_3 + 1),
        &tokens,
        |x| block.forward(x),
    );
    timer.time("· LayerNorm + attention", &tokens, |x| {
        attention.forward_normed(&norm, x)
    });
    let qkv = random([batch, tokens_3 + 1, 768]);
    timer.time("· · softmax attention of qkv", &qkv, |x| {
        qkv_attention(x, 4, 0.125, None)
    });
    timer.time("· LayerNorm + MLP", &tokens, |x| {
        mlp.forward_normed(&norm, x)
    });
}
