use burn::tensor::{Device, Tensor, TensorData};

/// The fixed sinusoid position table `[1, positions, dim]` of T2T-ViT:
/// `angle = p / 10000^(2·(j//2)/dim)`, sin on even j, cos on odd j, computed
/// in f64 and rounded to f32 as the official numpy code does.
pub fn sinusoid_table(positions: usize, dim: usize, device: &Device) -> Tensor<3> {
    let mut values = Vec::with_capacity(positions * dim);
    for p in 0..positions {
        for j in 0..dim {
            let angle = p as f64 / 10000f64.powf((2 * (j / 2)) as f64 / dim as f64);
            let value = if j % 2 == 0 { angle.sin() } else { angle.cos() };
            values.push(value as f32);
        }
    }
    Tensor::from_data(TensorData::new(values, [1, positions, dim]), device)
}
