use burn::module::Module;
use burn::tensor::Tensor;

use crate::kernels::{soft_split_image, soft_split_tokens};

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
        soft_split_image(image, self.kernel, self.stride, self.padding)
    }

    /// Tokens `[B, H·W, C]` on a square grid → `[B, L, C·k·k]`: the
    /// re-structurization into an image and the split in one step.
    pub fn forward_tokens(&self, tokens: Tensor<3>) -> Tensor<3> {
        soft_split_tokens(tokens, self.kernel, self.stride, self.padding)
    }

    /// Side of the output grid for an input of side `size`.
    pub fn out_size(&self, size: usize) -> usize {
        (size + 2 * self.padding - self.kernel) / self.stride + 1
    }

    pub fn features(&self, channels: usize) -> usize {
        channels * self.kernel * self.kernel
    }
}
