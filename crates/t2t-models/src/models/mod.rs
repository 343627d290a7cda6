//! Whole models. Each file reads like the figure of its paper.

mod t2t_vit;
mod t2t_vit_dense;
mod vit;

pub use t2t_vit::{Backbone, SplitSpec, T2tModule, T2tVit, T2tVitConfig, TokenLayer, TokensType};
pub use t2t_vit_dense::{DenseBlock, DenseLayer, Transition};
pub use vit::{FastVisionTransformer, Mixer, VisionTransformer, VitConfig};

use std::collections::HashMap;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Tensor, TensorData};

use crate::complexity::Macs;
use crate::layers::{
    layer_norm_macs, linear_macs, Block, Dropout, GhostAttention, GhostMlp, LayerNorm, Sublayer,
};
use crate::weights::HostTensor;
use crate::{ModelError, Taps};

/// Every model of the zoo, behind one type for the command line and the trainers.
#[derive(Module, Debug)]
pub enum Model {
    T2tVit(T2tVit),
    T2tVitGhost(T2tVit<Block<GhostAttention, GhostMlp>>),
    T2tVitDense(T2tVit<DenseLayer>),
    Vit(VisionTransformer),
    Fvit(FastVisionTransformer),
}

/// MACs of one named part of a model.
#[derive(Clone, Debug)]
pub struct Stage {
    pub name: &'static str,
    pub macs: Macs,
}

impl Model {
    /// Images `[B, C, H, W]` → logits `[B, classes]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_tapped(images, &mut Taps::off())
    }

    /// The forward pass that also records named intermediates into `taps`.
    /// An empty batch gives empty logits without running anything: burn's
    /// matrix product crashes on empty operands.
    pub fn forward_tapped(&self, images: Tensor<4>, taps: &mut Taps) -> Tensor<2> {
        let [batch, ..] = images.dims();
        if batch == 0 {
            return Tensor::zeros([0, self.outputs()], &images.device());
        }
        match self {
            Model::T2tVit(m) => m.forward_tapped(images, taps),
            Model::T2tVitGhost(m) => m.forward_tapped(images, taps),
            Model::T2tVitDense(m) => m.forward_tapped(images, taps),
            Model::Vit(m) => m.forward_tapped(images, taps),
            Model::Fvit(m) => m.forward_tapped(images, taps),
        }
    }

    /// Logits per image: the classes, or the features of a model without a head.
    pub fn outputs(&self) -> usize {
        match self {
            Model::T2tVit(m) => m.encoder.outputs(),
            Model::T2tVitGhost(m) => m.encoder.outputs(),
            Model::T2tVitDense(m) => m.encoder.outputs(),
            Model::Vit(m) => m.encoder.outputs(),
            Model::Fvit(m) => m.encoder.outputs(),
        }
    }

    /// Blocks after the tokenizer.
    pub fn depth(&self) -> usize {
        match self {
            Model::T2tVit(m) => m.encoder.blocks.len(),
            Model::T2tVitGhost(m) => m.encoder.blocks.len(),
            Model::T2tVitDense(m) => m.encoder.blocks.len(),
            Model::Vit(m) => m.encoder.blocks.len(),
            Model::Fvit(m) => m.encoder.blocks.len(),
        }
    }

    /// The pre-logits embeddings of `images`, named as `t2t embed` stores
    /// them, in this order:
    /// - `features` `[B, N, C]`: the final norm's output for every token,
    ///   class token first (timm's `forward_features`);
    /// - `pre_logits` `[B, C]`: what the head takes, the class token of
    ///   `features` (timm's `forward_head(x, pre_logits=True)`); the logits
    ///   are `head(pre_logits)`, or `pre_logits` itself without a head;
    /// - `blocks.{i}` `[B, N, C]`: the output of block `i`, for each of
    ///   `blocks` in the order given.
    ///
    /// A block index past the last block is refused before anything runs.
    /// An empty batch gives no tensors.
    pub fn embed(
        &self,
        images: Tensor<4>,
        blocks: &[usize],
    ) -> Result<Vec<(String, HostTensor)>, ModelError> {
        let depth = self.depth();
        if let Some(block) = blocks.iter().find(|&&b| b >= depth) {
            return Err(ModelError::BadConfig(format!(
                "block {block}: the model has {depth} blocks, counted from 0"
            )));
        }
        // (tap, stored name): the taps keep the names of the golden files,
        // where `features` is the pooled class token.
        let mut names = vec![
            ("norm".to_string(), "features".to_string()),
            ("features".to_string(), "pre_logits".to_string()),
        ];
        names.extend(
            blocks
                .iter()
                .map(|b| (format!("block{b}"), format!("blocks.{b}"))),
        );
        let mut taps = Taps::only(names.iter().map(|(tap, _)| tap.clone()));
        self.forward_tapped(images, &mut taps);
        let mut recorded: HashMap<String, TensorData> = taps.into_recorded().into_iter().collect();
        Ok(names
            .into_iter()
            .filter_map(|(tap, name)| Some((name, HostTensor::from_data(recorded.remove(&tap)?))))
            .collect())
    }

    /// MACs per image by stage.
    pub fn stages(&self) -> Vec<Stage> {
        match self {
            Model::T2tVit(m) => m.stages(),
            Model::T2tVitGhost(m) => m.stages(),
            Model::T2tVitDense(m) => m.stages(),
            Model::Vit(m) => m.stages(),
            Model::Fvit(m) => m.stages(),
        }
    }
}

/// What follows the tokenizer in every ViT-style classifier: prepend the
/// class token, add the position table, run the blocks, normalise, classify
/// token 0. Its parameters sit at the top level of the checkpoints
/// (`cls_token`, `pos_embed`, `blocks.*`, `norm.*`, `head.*`).
#[derive(Module, Debug)]
pub struct Encoder<L> {
    pub cls_token: Param<Tensor<3>>,
    /// `[1, N + 1, D]`: learned (ViT) or a fixed sinusoid (T2T-ViT).
    pub pos_embed: Param<Tensor<3>>,
    pub pos_drop: Dropout,
    pub blocks: Vec<L>,
    pub norm: LayerNorm,
    pub head: Option<Linear>,
}

impl<L: Sublayer> Encoder<L> {
    /// Tokens `[B, N, D]` → logits `[B, classes]` (features without a head).
    pub fn forward(&self, tokens: Tensor<3>, taps: &mut Taps) -> Tensor<2> {
        self.forward_visiting(tokens, taps, &mut |_, _, _| {})
    }

    /// [`Self::forward`] that shows `visit` each block, with its index and
    /// its input, before the block runs (see [`crate::inspect`]).
    pub fn forward_visiting(
        &self,
        tokens: Tensor<3>,
        taps: &mut Taps,
        visit: &mut dyn FnMut(usize, &L, &Tensor<3>),
    ) -> Tensor<2> {
        let [batch, _, width] = tokens.dims();
        let cls = self.cls_token.val().expand([batch, 1, width]);
        let mut x = self
            .pos_drop
            .forward(Tensor::cat(vec![cls, tokens], 1) + self.pos_embed.val());
        for (index, block) in self.blocks.iter().enumerate() {
            visit(index, block, &x);
            x = block.forward(x);
            taps.record(&format!("block{index}"), &x);
        }
        let normed = self.norm.forward(x);
        taps.record("norm", &normed);
        let [_, _, width] = normed.dims();
        let features = normed
            .slice([0..batch, 0..1, 0..width])
            .reshape([batch, width]);
        taps.record("features", &features);
        let logits = match &self.head {
            Some(head) => head.forward(features),
            None => features,
        };
        taps.record("logits", &logits);
        logits
    }

    /// Logits per image: the classes, or the features without a head.
    pub fn outputs(&self) -> usize {
        match &self.head {
            Some(head) => head.weight.lazy_shape().dims::<2>()[1],
            None => self.norm.width(),
        }
    }

    /// Tokens entering the blocks, class token included.
    pub fn tokens(&self) -> usize {
        self.pos_embed.lazy_shape().dims::<3>()[1]
    }

    /// MACs of the blocks, and of the final norm with the head.
    pub fn stages(&self) -> [Stage; 2] {
        let tokens = self.tokens();
        let blocks = self.blocks.iter().map(|b| b.macs(tokens)).sum();
        let head = layer_norm_macs(self.norm.width(), tokens)
            + self
                .head
                .as_ref()
                .map(|h| linear_macs(h, 1))
                .unwrap_or_default();
        [
            Stage {
                name: "blocks",
                macs: blocks,
            },
            Stage {
                name: "head",
                macs: head,
            },
        ]
    }
}

/// A frozen parameter: stored in checkpoints and counted, never trained.
pub(crate) fn frozen<const D: usize>(tensor: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(tensor).set_require_grad(false)
}

/// `[1, 1, width]` class token from a normal with std 0.02, as timm's `trunc_normal_`.
pub(crate) fn class_token(width: usize, device: &burn::tensor::Device) -> Param<Tensor<3>> {
    let values = Tensor::<3>::random(
        [1, 1, width],
        burn::tensor::Distribution::Normal(0.0, 0.02),
        device,
    );
    Param::from_tensor(values)
}

/// Drop-path rate of each of `count` blocks, rising linearly from 0 to `max`.
pub(crate) fn drop_path_rates(max: f64, count: usize) -> Vec<f64> {
    (0..count)
        .map(|i| match count {
            1 => 0.0,
            _ => max * i as f64 / (count - 1) as f64,
        })
        .collect()
}

/// Every dropout-like rate must be a probability below 1.
pub(crate) fn check_rates(rates: &[(&str, f64)]) -> Result<(), ModelError> {
    match rates.iter().find(|(_, p)| !(0.0..1.0).contains(p)) {
        Some((name, p)) => Err(ModelError::BadConfig(format!(
            "{name} {p} is not in [0, 1)"
        ))),
        None => Ok(()),
    }
}

// Bounds that every configuration is held to before anything is built.
// Each is far above every registered model (a 2048-px image through T2T-ViT,
// a billion-parameter ViT) and far below what would exhaust a machine's
// memory, so that a typo in a flag is refused instead of allocating for
// minutes.

/// Widest token: embedding, token and MLP hidden widths.
pub const MAX_WIDTH: usize = 1 << 16;
pub const MAX_IN_CHANS: usize = 1 << 10;
pub const MAX_CLASSES: usize = 1 << 20;
pub const MAX_DEPTH: usize = 1 << 10;
/// Tokens of any stage: T2T-ViT's first soft split of a 2048-px image.
pub const MAX_TOKENS: usize = 1 << 18;
/// Elements of one image's widest activation: 1 GiB of f32.
pub const MAX_ACTIVATION: usize = 1 << 28;
/// Softmax attention scores of one head and image (2 GiB of f32): 23170
/// tokens, more than the 16385 of a 2048-px image at stride 16.
pub const MAX_ATTENTION_SCORES: usize = 1 << 29;
/// Parameters of a whole model: 4 GiB of f32.
pub const MAX_PARAMETERS: usize = 1 << 30;

pub(crate) fn check_range(
    key: &str,
    value: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<(), ModelError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(ModelError::BadConfig(format!(
            "{key} {value} is not in [{}, {}]",
            range.start(),
            range.end()
        )))
    }
}

/// The MLP hidden width of a block of `width`, `int(width·mlp_ratio)` as timm rounds it.
pub(crate) fn mlp_hidden(width: usize, mlp_ratio: f64) -> usize {
    // `as` saturates: NaN and negative ratios give 0, huge ones usize::MAX.
    (width as f64 * mlp_ratio) as usize
}

pub(crate) fn check_mlp_ratio(width: usize, mlp_ratio: f64) -> Result<(), ModelError> {
    let hidden = match mlp_hidden(width, mlp_ratio) {
        1..=MAX_WIDTH => return Ok(()),
        hidden @ 0 => hidden.to_string(),
        _ => format!("over {MAX_WIDTH}"),
    };
    Err(ModelError::BadConfig(format!(
        "mlp_ratio {mlp_ratio:?} gives an MLP hidden size of {hidden} for width {width}; \
         int(width * mlp_ratio) must be in [1, {MAX_WIDTH}]"
    )))
}

/// A tensor that the forward pass holds for each image.
pub(crate) struct Activation {
    /// Where it arises, e.g. "after the first soft split".
    pub stage: &'static str,
    pub tokens: usize,
    /// The widest of the tensors of that stage.
    pub width: usize,
    /// Whether softmax attention runs over its tokens (`tokens²` scores a head).
    pub softmax: bool,
}

/// Refuses an input size whose image or activations would not fit the limits.
pub(crate) fn check_activations(
    img_size: usize,
    in_chans: usize,
    activations: &[Activation],
) -> Result<(), ModelError> {
    for a in activations {
        let refuse = |what: String| {
            Err(ModelError::BadConfig(format!(
                "img_size {img_size} gives {} tokens {}: {what}",
                a.tokens, a.stage
            )))
        };
        if a.tokens > MAX_TOKENS {
            return refuse(format!("the limit is {MAX_TOKENS} tokens"));
        }
        let elements = a.tokens.saturating_mul(a.width);
        if elements > MAX_ACTIVATION {
            return refuse(format!(
                "{elements} values per image at width {}; the limit is {MAX_ACTIVATION}",
                a.width
            ));
        }
        let scores = a.tokens.saturating_mul(a.tokens);
        if a.softmax && scores > MAX_ATTENTION_SCORES {
            return refuse(format!(
                "their attention needs {scores} scores per head; the limit is \
                 {MAX_ATTENTION_SCORES} ({} tokens)",
                MAX_ATTENTION_SCORES.isqrt()
            ));
        }
    }
    let pixels = img_size.saturating_mul(img_size).saturating_mul(in_chans);
    if pixels > MAX_ACTIVATION {
        return Err(ModelError::BadConfig(format!(
            "img_size {img_size} with in_chans {in_chans} gives {pixels} values per image; \
             the limit is {MAX_ACTIVATION}"
        )));
    }
    Ok(())
}

/// Weights of a pre-norm block of `width` with an MLP of `hidden`: qkv,
/// proj, fc1 and fc2, biases and norms aside.
pub(crate) fn block_parameters(width: usize, hidden: usize) -> f64 {
    let (width, hidden) = (width as f64, hidden as f64);
    4.0 * width * width + 2.0 * width * hidden
}

/// Refuses a model of about `parameters` weights past the limit (an
/// estimate in f64, which cannot overflow).
pub(crate) fn check_parameters(parameters: f64) -> Result<(), ModelError> {
    if parameters <= MAX_PARAMETERS as f64 {
        return Ok(());
    }
    Err(ModelError::BadConfig(format!(
        "the model would have about {parameters:.3e} parameters; the limit is {MAX_PARAMETERS}"
    )))
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::registry::{self, ModelConfig};
    use crate::ModelKwarg;

    /// The logits of `images` in training mode, sample `s` keyed by `keys[s]`.
    fn keyed_logits(model: &Model, images: Tensor<4>, keys: Vec<u64>) -> Vec<f32> {
        crate::layers::with_sample_keys(keys, || model.forward(images))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn keyed_training_noise_follows_the_sample_not_the_batch() {
        let device = crate::device::for_tests().autodiff();
        for name in ["t2t_vit_lite_cifar", "vit_cifar"] {
            let mut config = registry::find(name).unwrap().config;
            config
                .apply_kwargs(&["drop_rate=0.3", "drop_path_rate=0.5"])
                .unwrap();
            let model = crate::layers::set_stochastic(config.init(&device).unwrap(), true);
            let images =
                Tensor::<4>::random([4, 3, 32, 32], burn::tensor::Distribution::Default, &device);
            let whole = keyed_logits(&model, images.clone(), vec![11, 12, 13, 14]);
            let halves = [
                keyed_logits(&model, images.clone().slice(0..2), vec![11, 12]),
                keyed_logits(&model, images.clone().slice(2..4), vec![13, 14]),
            ]
            .concat();
            for (a, b) in whole.iter().zip(&halves) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                    "{name}: {a} vs {b}"
                );
            }
            // The noise is there: other keys give other logits.
            let other = keyed_logits(&model, images, vec![21, 22, 23, 24]);
            let moved = whole.iter().zip(&other).filter(|(a, b)| a != b).count();
            assert!(moved > whole.len() / 2, "{name}: {moved} logits moved");
        }
    }

    #[test]
    fn an_empty_batch_gives_empty_logits_without_running() {
        let device = crate::device::for_tests();
        for name in ["t2t_vit_lite_cifar", "vit_cifar"] {
            let model = registry::find(name).unwrap().config.init(&device).unwrap();
            let logits = model.forward(Tensor::zeros([0, 3, 32, 32], &device));
            assert_eq!(logits.dims(), [0, 10], "{name}");
        }
    }

    fn refusal(name: &str, kwargs: &[&str]) -> String {
        let mut config = registry::find(name).unwrap().config;
        match config.apply_kwargs(kwargs) {
            Ok(()) => panic!("{name} {kwargs:?} was accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn registered_models_validate_and_large_real_inputs_fit() {
        for spec in registry::all() {
            spec.config.validate().unwrap();
        }
        for (name, size) in [
            ("t2t_vit_7", 2048),
            ("t2t_vit_t_14", 512),
            ("vit_base_patch16_224", 2048),
            ("fvit_base_patch16_224", 1024),
        ] {
            let mut config = registry::find(name).unwrap().config;
            config.apply(&[ModelKwarg::ImgSize(size)]).unwrap();
        }
    }

    #[test]
    fn sizes_past_the_limits_are_refused_with_the_limit() {
        let error = refusal("t2t_vit_7", &["img_size=100000"]);
        assert!(
            error.contains("625000000 tokens after the first soft split")
                && error.contains(&MAX_TOKENS.to_string()),
            "{error}"
        );
        let error = refusal("t2t_vit_t_14", &["img_size=1024"]);
        assert!(error.contains("scores per head"), "{error}");
        let error = refusal("vit_base_patch16_224", &["img_size=100000"]);
        assert!(error.contains("tokens in the blocks"), "{error}");
        let error = refusal(
            "vit_cifar",
            &["in_chans=1024", "img_size=1024", "patch_size=32"],
        );
        assert!(error.contains("values per image"), "{error}");
        let error = refusal("t2t_vit_7", &["num_classes=1000000", "embed_dim=8192"]);
        assert!(error.contains("parameters"), "{error}");
    }

    #[test]
    fn sizes_and_ratios_without_meaning_are_refused_naming_the_key() {
        for (kwarg, needle) in [
            ("num_heads=0", "num_heads 0 is not in [1, 256]"),
            ("embed_dim=0", "embed_dim 0 is not in [1, 65536]"),
            ("token_dim=0", "token_dim 0 is not in [1, 65536]"),
            ("in_chans=0", "in_chans 0 is not in [1, 1024]"),
            ("depth=0", "depth 0 is not in [1, 1024]"),
            ("mlp_ratio=0", "hidden size of 0"),
            ("mlp_ratio=-1", "hidden size of 0"),
            ("mlp_ratio=0.001", "hidden size of 0"),
            ("mlp_ratio=1e30", "hidden size of over 65536"),
            ("num_heads=3", "not divisible by num_heads 3"),
            ("drop_rate=1", "drop_rate 1 is not in [0, 1)"),
        ] {
            let error = refusal("t2t_vit_7", &[kwarg]);
            assert!(error.contains(needle), "{kwarg}: {error}");
        }
        let error = refusal("vit_cifar", &["patch_size=0"]);
        assert!(error.contains("patch_size 0"), "{error}");
    }

    #[test]
    fn malformed_soft_splits_are_refused() {
        let Some(ModelConfig::T2tVit(mut config)) =
            registry::find("t2t_vit_7").map(|spec| spec.config).ok()
        else {
            unreachable!()
        };
        config.soft_splits[1].stride = 0;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("soft split 1"), "{error}");
        config.soft_splits[1].stride = 2;
        config.img_size = 2;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("too small for soft split"), "{error}");
    }
}
