//! T2T-ViT (Yuan et al., "Tokens-to-Token ViT", ICCV 2021).
//!
//! ```text
//! image ─ soft split ─ T2T layer ─ restructure ─ soft split ─ T2T layer ─ restructure ─ soft split
//!       ─ project ─ [cls] + sinusoid pos ─ blocks ─ norm ─ head(token 0)
//! ```

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{
    block_parameters, check_activations, check_mlp_ratio, check_parameters, check_range,
    class_token, frozen, mlp_hidden, Activation, DenseLayer, Encoder, Model, Stage, MAX_CLASSES,
    MAX_DEPTH, MAX_IN_CHANS, MAX_WIDTH,
};
use crate::complexity::Macs;
use crate::layers::{
    dense, layer_norm, linear, linear_macs, sinusoid_table, AttentionConfig, Block, Dropout,
    GhostAttention, GhostMlp, Mlp, SoftSplit, Sublayer, TokenPerformer, TokenTransformer,
};
use crate::{ModelError, Taps};

/// T2T-ViT's LayerNorm epsilon (PyTorch's default).
const LAYER_NORM_EPS: f64 = 1e-5;

/// Which layer re-weights the tokens between soft splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokensType {
    Performer,
    Transformer,
}

/// One soft split: `nn.Unfold(kernel, stride, padding)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSpec {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

/// The backbone variants of the paper's design study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Backbone {
    /// Pre-norm ViT blocks (every released model).
    Standard,
    /// An SE layer inside each block's attention (`t2t_vit_se.py`).
    SqueezeExcite,
    /// Ghost attention and MLP (`t2t_vit_ghost.py`).
    Ghost,
    /// DenseNet-style concatenation with transitions (`t2t_vit_dense.py`).
    Dense {
        growth_rate: usize,
        stages: Vec<usize>,
    },
}

/// Everything that distinguishes one T2T-ViT from another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct T2tVitConfig {
    pub img_size: usize,
    pub in_chans: usize,
    pub num_classes: usize,
    pub tokens_type: TokensType,
    pub token_dim: usize,
    pub soft_splits: [SplitSpec; 3],
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    /// Overrides the attention scale `head_dim^-0.5` of the blocks.
    pub qk_scale: Option<f64>,
    pub drop_rate: f64,
    pub attn_drop_rate: f64,
    pub drop_path_rate: f64,
    pub backbone: Backbone,
}

/// The official soft splits: 7/4, 3/2, 3/2, a total stride of 16.
pub const IMAGENET_SPLITS: [SplitSpec; 3] = [
    SplitSpec {
        kernel: 7,
        stride: 4,
        padding: 2,
    },
    SplitSpec {
        kernel: 3,
        stride: 2,
        padding: 1,
    },
    SplitSpec {
        kernel: 3,
        stride: 2,
        padding: 1,
    },
];

impl T2tVitConfig {
    /// `T2T_ViT(...)` with the official defaults.
    pub fn new(
        tokens_type: TokensType,
        embed_dim: usize,
        depth: usize,
        num_heads: usize,
        mlp_ratio: f64,
    ) -> Self {
        Self {
            img_size: 224,
            in_chans: 3,
            num_classes: 1000,
            tokens_type,
            token_dim: 64,
            soft_splits: IMAGENET_SPLITS,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio,
            qkv_bias: false,
            qk_scale: None,
            drop_rate: 0.0,
            attn_drop_rate: 0.0,
            drop_path_rate: 0.0,
            backbone: Backbone::Standard,
        }
    }

    pub fn with_backbone(mut self, backbone: Backbone) -> Self {
        self.backbone = backbone;
        self
    }

    pub fn with_soft_splits(mut self, soft_splits: [SplitSpec; 3]) -> Self {
        self.soft_splits = soft_splits;
        self
    }

    /// The product of the split strides: image sides must be a multiple of it.
    pub fn total_stride(&self) -> usize {
        self.soft_splits
            .iter()
            .fold(1, |product, s| product.saturating_mul(s.stride))
    }

    /// Side of the token grid that enters the blocks.
    pub fn grid_size(&self) -> usize {
        self.soft_splits.iter().fold(self.img_size, |size, s| {
            (size + 2 * s.padding - s.kernel) / s.stride + 1
        })
    }

    /// Checks every setting, and that an image of `img_size` fits the limits
    /// of [`super::MAX_TOKENS`] and the others, before anything is built.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_range("in_chans", self.in_chans, 1..=MAX_IN_CHANS)?;
        check_range("num_classes", self.num_classes, 0..=MAX_CLASSES)?;
        check_range("token_dim", self.token_dim, 1..=MAX_WIDTH)?;
        check_range("embed_dim", self.embed_dim, 1..=MAX_WIDTH)?;
        check_range("depth", self.depth, 1..=MAX_DEPTH)?;
        check_range("num_heads", self.num_heads, 1..=self.embed_dim)?;
        if let Some(scale) = self.qk_scale.filter(|s| !s.is_finite()) {
            return Err(ModelError::BadConfig(format!(
                "qk_scale {scale} is not a finite number"
            )));
        }
        if let Backbone::Dense {
            growth_rate,
            stages,
        } = &self.backbone
        {
            check_range("growth_rate", *growth_rate, 1..=MAX_WIDTH)?;
            check_range("the number of dense stages", stages.len(), 1..=MAX_DEPTH)?;
            for &blocks in stages {
                check_range("blocks of a dense stage", blocks, 1..=MAX_DEPTH)?;
            }
        }
        let sides = self.split_sides()?;
        let stride = self.total_stride();
        if !self.img_size.is_multiple_of(stride) {
            return Err(ModelError::BadConfig(format!(
                "img_size {} is not a multiple of the total soft-split stride {stride}",
                self.img_size
            )));
        }
        if sides[2].saturating_mul(stride) != self.img_size {
            return Err(ModelError::BadConfig(format!(
                "soft splits {:?} do not tile a {}x{} image",
                self.soft_splits, self.img_size, self.img_size
            )));
        }
        let widths = self.block_widths();
        if let Some(w) = widths.iter().find(|w| *w % self.num_heads != 0) {
            return Err(ModelError::BadConfig(format!(
                "width {w} is not divisible by num_heads {}",
                self.num_heads
            )));
        }
        for &width in &widths {
            check_mlp_ratio(width, self.mlp_ratio)?;
        }
        if self.backbone == Backbone::Ghost && self.mlp_hidden() != 3 * self.embed_dim {
            return Err(ModelError::BadConfig(
                "the ghost MLP exists only for mlp_ratio 3".to_string(),
            ));
        }
        super::check_rates(&[
            ("drop_rate", self.drop_rate),
            ("attn_drop_rate", self.attn_drop_rate),
            ("drop_path_rate", self.drop_path_rate),
        ])?;
        check_activations(self.img_size, self.in_chans, &self.activations(sides))?;
        check_parameters(self.estimated_parameters(sides))
    }

    /// Sides of the token grids after the three soft splits, each split
    /// checked to be well formed and to fit its input.
    fn split_sides(&self) -> Result<[usize; 3], ModelError> {
        let mut size = self.img_size;
        let mut sides = [0; 3];
        for (index, (s, side)) in self.soft_splits.iter().zip(&mut sides).enumerate() {
            if s.kernel == 0 || s.stride == 0 || 2 * s.padding >= s.kernel {
                return Err(ModelError::BadConfig(format!(
                    "soft split {index} {s:?} needs kernel >= 1, stride >= 1 and \
                     padding < kernel / 2"
                )));
            }
            let reach = size.saturating_add(2 * s.padding);
            if size == 0 || reach < s.kernel {
                return Err(ModelError::BadConfig(format!(
                    "img_size {} is too small for soft split {index} (kernel {})",
                    self.img_size, s.kernel
                )));
            }
            *side = (reach - s.kernel) / s.stride + 1;
            size = *side;
        }
        Ok(sides)
    }

    /// Input widths of the blocks.
    fn block_widths(&self) -> Vec<usize> {
        match &self.backbone {
            Backbone::Dense {
                growth_rate,
                stages,
            } => dense_widths(self.embed_dim, *growth_rate, stages),
            _ => vec![self.embed_dim],
        }
    }

    /// The largest tensors of each stage for one image, given the grid sides.
    fn activations(&self, [side0, side1, side2]: [usize; 3]) -> [Activation; 3] {
        let [s0, s1, s2] = self.soft_splits;
        let transformer = self.tokens_type == TokensType::Transformer;
        let features = |channels: usize, s: SplitSpec| channels * s.kernel * s.kernel;
        let widest_block = self.block_widths().into_iter().max().unwrap_or(0);
        let block_width = (3 * widest_block).max(mlp_hidden(widest_block, self.mlp_ratio));
        let tokens = |side: usize| side.saturating_mul(side);
        [
            Activation {
                stage: "after the first soft split",
                tokens: tokens(side0),
                width: features(self.in_chans, s0).max(3 * self.token_dim),
                softmax: transformer,
            },
            Activation {
                stage: "after the second soft split",
                tokens: tokens(side1),
                width: features(self.token_dim, s1).max(3 * self.token_dim),
                softmax: transformer,
            },
            Activation {
                stage: "in the blocks",
                tokens: tokens(side2) + 1,
                width: features(self.token_dim, s2).max(block_width),
                softmax: true,
            },
        ]
    }

    /// About as many parameters as the model has: the T2T module's Linear
    /// layers, the position table, the blocks and the head.
    fn estimated_parameters(&self, [_, _, side2]: [usize; 3]) -> f64 {
        let [s0, s1, s2] = self.soft_splits.map(|s| (s.kernel * s.kernel) as f64);
        let (channels, token_dim, embed_dim) = (
            self.in_chans as f64,
            self.token_dim as f64,
            self.embed_dim as f64,
        );
        // kqv, proj and the two MLP layers of each token layer, then project.
        let token_layer = |inputs: f64| 3.0 * inputs * token_dim + 3.0 * token_dim * token_dim;
        let t2t =
            token_layer(channels * s0) + token_layer(token_dim * s1) + token_dim * s2 * embed_dim;
        let positions = ((side2 * side2) as f64 + 1.0) * embed_dim;
        let widths = self.block_widths();
        let blocks: f64 = match self.backbone {
            Backbone::Dense { .. } => widths
                .iter()
                .map(|&w| block_parameters(w, mlp_hidden(w, self.mlp_ratio)))
                .sum(),
            _ => {
                self.depth as f64
                    * block_parameters(self.embed_dim, mlp_hidden(self.embed_dim, self.mlp_ratio))
            }
        };
        let head_inputs = widths.iter().copied().max().unwrap_or(0) as f64;
        t2t + positions + blocks + head_inputs * self.num_classes as f64
    }

    fn mlp_hidden(&self) -> usize {
        mlp_hidden(self.embed_dim, self.mlp_ratio)
    }

    fn attention(&self, dim: usize) -> AttentionConfig {
        AttentionConfig {
            dim,
            num_heads: self.num_heads,
            qkv_bias: self.qkv_bias,
            qk_scale: self.qk_scale,
            attn_drop: self.attn_drop_rate,
            proj_drop: self.drop_rate,
            squeeze_excite: self.backbone == Backbone::SqueezeExcite,
        }
    }

    pub(crate) fn block(&self, dim: usize, drop_path: f64, device: &Device) -> Block {
        let hidden = mlp_hidden(dim, self.mlp_ratio);
        let attn = self.attention(dim).init(device);
        let mlp = Mlp::new(dim, hidden, dim, self.drop_rate, device);
        Block::new(dim, attn, mlp, drop_path, LAYER_NORM_EPS, device)
    }

    pub fn init(&self, device: &Device) -> Result<Model, ModelError> {
        self.validate()?;
        let dpr = super::drop_path_rates(self.drop_path_rate, self.depth);
        let model = match &self.backbone {
            Backbone::Standard | Backbone::SqueezeExcite => {
                let blocks = dpr
                    .iter()
                    .map(|&p| self.block(self.embed_dim, p, device))
                    .collect();
                Model::T2tVit(self.assemble(blocks, self.embed_dim, device))
            }
            Backbone::Ghost => {
                let dim = self.embed_dim;
                let scale = self
                    .qk_scale
                    .unwrap_or(((dim / self.num_heads) as f64).powf(-0.5));
                let blocks = dpr
                    .iter()
                    .map(|&p| {
                        let attn =
                            GhostAttention::new(dim, self.num_heads, self.qkv_bias, scale, device);
                        let mlp = GhostMlp::new(dim, self.drop_rate, device);
                        Block::new(dim, attn, mlp, p, LAYER_NORM_EPS, device)
                    })
                    .collect();
                Model::T2tVitGhost(self.assemble(blocks, dim, device))
            }
            Backbone::Dense {
                growth_rate,
                stages,
            } => {
                let stage_rates = super::drop_path_rates(self.drop_path_rate, self.depth);
                let layers = DenseLayer::stack(self, *growth_rate, stages, &stage_rates, device);
                let out_width = *dense_widths(self.embed_dim, *growth_rate, stages)
                    .last()
                    .unwrap()
                    + growth_rate;
                Model::T2tVitDense(self.assemble(layers, out_width, device))
            }
        };
        Ok(model)
    }

    fn assemble<L: Sublayer>(
        &self,
        blocks: Vec<L>,
        out_width: usize,
        device: &Device,
    ) -> T2tVit<L> {
        let tokens = self.grid_size() * self.grid_size();
        T2tVit {
            tokens_to_token: T2tModule::new(self, device),
            encoder: Encoder {
                cls_token: class_token(self.embed_dim, device),
                pos_embed: frozen(sinusoid_table(tokens + 1, self.embed_dim, device)),
                pos_drop: Dropout::new(self.drop_rate),
                blocks,
                norm: layer_norm(out_width, LAYER_NORM_EPS, device),
                head: (self.num_classes > 0)
                    .then(|| linear(out_width, self.num_classes, true, device)),
            },
            img_size: self.img_size,
        }
    }
}

/// Input widths of the dense blocks, stage by stage.
pub(crate) fn dense_widths(embed_dim: usize, growth_rate: usize, stages: &[usize]) -> Vec<usize> {
    let mut widths = Vec::new();
    let mut start = embed_dim;
    for &layers in stages {
        let stage: Vec<usize> = (0..layers).map(|j| start + j * growth_rate).collect();
        start = (stage.last().copied().unwrap_or(start) + growth_rate) / 2;
        widths.extend(stage);
    }
    widths
}

/// A T2T layer of either kind.
#[derive(Module, Debug)]
pub enum TokenLayer {
    Performer(TokenPerformer),
    Transformer(TokenTransformer),
}

impl TokenLayer {
    fn new(kind: TokensType, dim: usize, emb: usize, device: &Device) -> Self {
        match kind {
            TokensType::Performer => TokenLayer::Performer(TokenPerformer::new(dim, emb, device)),
            TokensType::Transformer => {
                TokenLayer::Transformer(TokenTransformer::new(dim, emb, device))
            }
        }
    }
}

impl Sublayer for TokenLayer {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            TokenLayer::Performer(layer) => layer.forward(x),
            TokenLayer::Transformer(layer) => layer.forward(x),
        }
    }

    fn macs(&self, tokens: usize) -> Macs {
        match self {
            TokenLayer::Performer(layer) => layer.macs(tokens),
            TokenLayer::Transformer(layer) => layer.macs(tokens),
        }
    }
}

/// The tokens-to-token module: image → `[B, (H/16)², embed_dim]` tokens.
#[derive(Module, Debug)]
pub struct T2tModule {
    pub soft_split0: SoftSplit,
    pub attention1: TokenLayer,
    pub soft_split1: SoftSplit,
    pub attention2: TokenLayer,
    pub soft_split2: SoftSplit,
    pub project: Linear,
}

impl T2tModule {
    fn new(config: &T2tVitConfig, device: &Device) -> Self {
        let [s0, s1, s2] = config
            .soft_splits
            .map(|s| SoftSplit::new(s.kernel, s.stride, s.padding));
        let token_dim = config.token_dim;
        Self {
            soft_split0: s0,
            attention1: TokenLayer::new(
                config.tokens_type,
                s0.features(config.in_chans),
                token_dim,
                device,
            ),
            soft_split1: s1,
            attention2: TokenLayer::new(
                config.tokens_type,
                s1.features(token_dim),
                token_dim,
                device,
            ),
            soft_split2: s2,
            project: linear(s2.features(token_dim), config.embed_dim, true, device),
        }
    }

    pub fn forward(&self, images: Tensor<4>, taps: &mut Taps) -> Tensor<3> {
        let x = self.soft_split0.forward(images);
        taps.record("t2t_split0", &x);
        let x = self.attention1.forward(x);
        taps.record("t2t_attn1", &x);
        let x = self.soft_split1.forward_tokens(x);
        let x = self.attention2.forward(x);
        taps.record("t2t_attn2", &x);
        let x = self.soft_split2.forward_tokens(x);
        dense(&self.project, x)
    }

    fn macs(&self, img_size: usize) -> Macs {
        let grid0 = self.soft_split0.out_size(img_size);
        let grid1 = self.soft_split1.out_size(grid0);
        let grid2 = self.soft_split2.out_size(grid1);
        self.attention1.macs(grid0 * grid0)
            + self.attention2.macs(grid1 * grid1)
            + linear_macs(&self.project, grid2 * grid2)
    }
}

/// T2T-ViT: the T2T module, then a ViT backbone of `L` blocks.
#[derive(Module, Debug)]
pub struct T2tVit<L = Block> {
    pub tokens_to_token: T2tModule,
    pub encoder: Encoder<L>,
    pub img_size: usize,
}

impl<L: Sublayer> T2tVit<L> {
    pub fn forward_tapped(&self, images: Tensor<4>, taps: &mut Taps) -> Tensor<2> {
        self.forward_visiting(images, taps, &mut |_, _, _| {})
    }

    /// The forward pass that shows `visit` each block and its input
    /// ([`Encoder::forward_visiting`]).
    pub fn forward_visiting(
        &self,
        images: Tensor<4>,
        taps: &mut Taps,
        visit: &mut dyn FnMut(usize, &L, &Tensor<3>),
    ) -> Tensor<2> {
        let tokens = self.tokens_to_token.forward(images, taps);
        taps.record("t2t_tokens", &tokens);
        self.encoder.forward_visiting(tokens, taps, visit)
    }

    pub fn stages(&self) -> Vec<Stage> {
        let t2t = Stage {
            name: "tokens_to_token",
            macs: self.tokens_to_token.macs(self.img_size),
        };
        let [blocks, head] = self.encoder.stages();
        vec![t2t, blocks, head]
    }
}
