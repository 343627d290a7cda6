use burn::tensor::{Tensor, TensorData};

/// Named intermediate activations, recorded only when a caller asks for them
/// (parity checks compare them against the `__*` tensors of reference files).
#[derive(Default)]
pub struct Taps {
    enabled: bool,
    recorded: Vec<(String, TensorData)>,
}

impl Taps {
    /// A recorder that keeps nothing: the normal forward pass.
    pub fn off() -> Self {
        Self::default()
    }

    /// A recorder that copies every tapped tensor to the host.
    pub fn on() -> Self {
        Self {
            enabled: true,
            recorded: Vec::new(),
        }
    }

    pub fn record<const D: usize>(&mut self, name: &str, tensor: &Tensor<D>) {
        if self.enabled {
            self.recorded.push((name.to_string(), tensor.to_data()));
        }
    }

    pub fn into_recorded(self) -> Vec<(String, TensorData)> {
        self.recorded
    }
}
