use std::collections::BTreeSet;

use burn::tensor::{Tensor, TensorData};

/// Named intermediate activations, recorded only when a caller asks for them
/// (parity checks compare them against the `__*` tensors of reference files;
/// `t2t embed` stores a few of them).
#[derive(Default)]
pub struct Taps {
    wanted: Wanted,
    recorded: Vec<(String, TensorData)>,
}

/// Which taps a recorder keeps.
#[derive(Default)]
enum Wanted {
    #[default]
    Nothing,
    Everything,
    Only(BTreeSet<String>),
}

impl Taps {
    /// A recorder that keeps nothing: the normal forward pass.
    pub fn off() -> Self {
        Self::default()
    }

    /// A recorder that copies every tapped tensor to the host.
    pub fn on() -> Self {
        Self {
            wanted: Wanted::Everything,
            recorded: Vec::new(),
        }
    }

    /// A recorder that copies only the taps named in `names` to the host,
    /// so that large intermediates nobody asked for stay on the device.
    pub fn only<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self {
            wanted: Wanted::Only(names.into_iter().map(Into::into).collect()),
            recorded: Vec::new(),
        }
    }

    /// Whether `name` would be recorded.
    pub fn wants(&self, name: &str) -> bool {
        match &self.wanted {
            Wanted::Nothing => false,
            Wanted::Everything => true,
            Wanted::Only(names) => names.contains(name),
        }
    }

    pub fn record<const D: usize>(&mut self, name: &str, tensor: &Tensor<D>) {
        if self.wants(name) {
            self.recorded
                .push((name.to_string(), owned(tensor.to_data())));
        }
    }

    /// The recorded tensors in the order the forward pass reached them.
    pub fn into_recorded(self) -> Vec<(String, TensorData)> {
        self.recorded
    }
}

/// `data` in memory of its own. On the wgpu backend the data that
/// `to_data` and `into_data` return can share memory with the runtime's
/// staging buffers: kept while more work runs on the device, it can come to
/// hold another tensor's values. Data kept for later goes through here.
pub fn owned(data: TensorData) -> TensorData {
    let shape = data.shape().clone();
    let values: Vec<f32> = data.try_to_vec().expect("activations are f32");
    TensorData::new(values, shape)
}
