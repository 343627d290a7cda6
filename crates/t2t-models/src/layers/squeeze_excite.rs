use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};

use super::{linear, linear_macs};
use crate::complexity::Macs;

/// Squeeze-and-excitation over the channels of a token sequence: the
/// channel gate comes from the mean over tokens.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    pub fc: ExcitationMlp,
}

/// `nn.Sequential(Linear, ReLU, Linear, Sigmoid)`, both Linear without bias
/// (saved as `fc.0` and `fc.2`).
#[derive(Module, Debug)]
pub struct ExcitationMlp {
    pub reduce: Linear,
    pub expand: Linear,
}

impl SqueezeExcite {
    pub fn new(channels: usize, reduction: usize, device: &Device) -> Self {
        Self {
            fc: ExcitationMlp {
                reduce: linear(channels, channels / reduction, false, device),
                expand: linear(channels / reduction, channels, false, device),
            },
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let squeezed = x.clone().mean_dim(1);
        let gate = sigmoid(
            self.fc
                .expand
                .forward(relu(self.fc.reduce.forward(squeezed))),
        );
        x * gate
    }

    /// The gate runs once per image, not per token.
    pub fn macs(&self) -> Macs {
        linear_macs(&self.fc.reduce, 1) + linear_macs(&self.fc.expand, 1)
    }
}
