use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};

use crate::complexity::Macs;

/// ViT's patch embedding: a p×p convolution with stride p, flattened to
/// tokens `[B, (H/p)·(W/p), D]` in row-major grid order.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: Conv2d,
}

impl PatchEmbed {
    pub fn new(in_chans: usize, embed_dim: usize, patch: usize, device: &Device) -> Self {
        // burn's default conv init is PyTorch's (kaiming-uniform weights and bias).
        let proj = Conv2dConfig::new([in_chans, embed_dim], [patch, patch])
            .with_stride([patch, patch])
            .init(device);
        Self { proj }
    }

    pub fn forward(&self, images: Tensor<4>) -> Tensor<3> {
        let x = self.proj.forward(images);
        let [batch, channels, height, width] = x.dims();
        x.reshape([batch, channels, height * width]).swap_dims(1, 2)
    }

    pub fn macs(&self, tokens: usize) -> Macs {
        let [out, inp, kh, kw] = self.proj.weight.lazy_shape().dims();
        Macs::layers((tokens * out * inp * kh * kw) as u64)
    }
}
