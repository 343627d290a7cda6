use burn::module::Module;
use burn::tensor::module::unfold4d;
use burn::tensor::ops::{PadMode, UnfoldOptions};
use burn::tensor::Tensor;

use crate::kernels::{on_flex, soft_split_image, soft_split_tokens};

/// `nn.Unfold` followed by `transpose(1, 2)`: every k×k patch (with overlap)
/// becomes one token whose features are ordered channel-major, `c·k·k + i·k + j`.
#[derive(Module, Debug, Copy)]
pub struct SoftSplit {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl SoftSplit {
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        Self {
            kernel,
            stride,
            padding,
        }
    }

    /// `[B, C, H, W]` → `[B, L, C·k·k]`.
    pub fn forward(&self, image: Tensor<4>) -> Tensor<3> {
        if on_flex(image.device()) {
            return soft_split_image(image, self.kernel, self.stride, self.padding);
        }
        // Padding first and unfolding without padding is much faster than
        // unfolding with padding.
        let p = self.padding;
        let padded = image.pad((p, p, p, p), PadMode::Constant(0.0));
        let columns = unfold4d(
            padded,
            [self.kernel, self.kernel],
            UnfoldOptions::new([self.stride, self.stride], [0, 0], [1, 1]),
        );
        columns.swap_dims(1, 2)
    }

    /// Tokens `[B, H·W, C]` on a square grid → `[B, L, C·k·k]`: the
    /// re-structurization into an image and the split in one step.
    pub fn forward_tokens(&self, tokens: Tensor<3>) -> Tensor<3> {
        if on_flex(tokens.device()) {
            return soft_split_tokens(tokens, self.kernel, self.stride, self.padding);
        }
        self.forward(tokens_to_image(tokens))
    }

    /// Side of the output grid for an input of side `size`.
    pub fn out_size(&self, size: usize) -> usize {
        (size + 2 * self.padding - self.kernel) / self.stride + 1
    }

    pub fn features(&self, channels: usize) -> usize {
        channels * self.kernel * self.kernel
    }
}

/// Re-structurization: tokens `[B, L, C]` on a square grid back to an image
/// `[B, C, √L, √L]`.
fn tokens_to_image(tokens: Tensor<3>) -> Tensor<4> {
    let [batch, length, channels] = tokens.dims();
    let side = (length as f64).sqrt() as usize;
    tokens
        .swap_dims(1, 2)
        .reshape([batch, channels, side, side])
}
