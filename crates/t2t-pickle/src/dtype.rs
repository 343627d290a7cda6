//! Element types of stored tensors and the strided copy to contiguous `f32`.

use std::fmt;

use crate::error::{malformed, ErrorKind};

/// The element types a torch storage or numpy array may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    /// Legacy typed storage classes (`torch.FloatStorage`, ...), which torch
    /// still writes into persistent ids.
    pub(crate) fn from_storage_class(name: &str) -> Option<Self> {
        Some(match name {
            "DoubleStorage" => Self::F64,
            "FloatStorage" => Self::F32,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    /// Dtype globals such as `torch.float32`, with their aliases.
    pub(crate) fn from_torch_dtype(name: &str) -> Option<Self> {
        Some(match name {
            "float64" | "double" => Self::F64,
            "float32" | "float" => Self::F32,
            "float16" | "half" => Self::F16,
            "bfloat16" => Self::BF16,
            "int64" | "long" => Self::I64,
            "int32" | "int" => Self::I32,
            "int16" | "short" => Self::I16,
            "int8" => Self::I8,
            "uint8" => Self::U8,
            "bool" => Self::Bool,
            _ => return None,
        })
    }

    /// Numpy type codes as `numpy.dtype` pickles them (`'f4'`, ...).
    pub(crate) fn from_numpy(code: &str) -> Option<Self> {
        Some(match code {
            "f8" => Self::F64,
            "f4" => Self::F32,
            "f2" => Self::F16,
            "i8" => Self::I64,
            "i4" => Self::I32,
            "i2" => Self::I16,
            "i1" => Self::I8,
            "u1" => Self::U8,
            "b1" => Self::Bool,
            _ => return None,
        })
    }

    /// Whether elements are floating point, as weights must be: the
    /// values of any other type are converted to `f32` all the same.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F64 | Self::F32 | Self::F16 | Self::BF16)
    }

    pub(crate) fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// One little-endian element; `bytes` is exactly `self.size()` long.
    fn decode(self, bytes: &[u8]) -> f32 {
        let two = || [bytes[0], bytes[1]];
        let four = || [bytes[0], bytes[1], bytes[2], bytes[3]];
        let eight = || {
            let mut b = [0; 8];
            b.copy_from_slice(bytes);
            b
        };
        match self {
            Self::F64 => f64::from_le_bytes(eight()) as f32,
            Self::F32 => f32::from_le_bytes(four()),
            Self::F16 => f16_to_f32(u16::from_le_bytes(two())),
            Self::BF16 => f32::from_bits(u32::from(u16::from_le_bytes(two())) << 16),
            Self::I64 => i64::from_le_bytes(eight()) as f32,
            Self::I32 => i32::from_le_bytes(four()) as f32,
            Self::I16 => f32::from(i16::from_le_bytes(two())),
            Self::I8 => f32::from(bytes[0] as i8),
            Self::U8 => f32::from(bytes[0]),
            Self::Bool => f32::from(u8::from(bytes[0] != 0)),
        }
    }
}

/// torch's names for the types.
impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F64 => "float64",
            Self::F32 => "float32",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
            Self::I64 => "int64",
            Self::I32 => "int32",
            Self::I16 => "int16",
            Self::I8 => "int8",
            Self::U8 => "uint8",
            Self::Bool => "bool",
        })
    }
}

/// IEEE half to single precision; exact, since every half is a single.
fn f16_to_f32(half: u16) -> f32 {
    let sign = u32::from(half >> 15) << 31;
    let exponent = u32::from((half >> 10) & 0x1f);
    let mantissa = u32::from(half & 0x3ff);
    let magnitude = match exponent {
        // Zero and subnormals: mantissa * 2^-24, exactly representable as a normal f32.
        0 => (mantissa as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        // Infinities and NaNs keep their payload.
        0x1f => 0x7f80_0000 | (mantissa << 13),
        // Rebias the exponent from 15 to 127.
        _ => ((exponent + 112) << 23) | (mantissa << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// Where a tensor's elements sit in its storage, in elements.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

impl Layout {
    /// Row-major (C order) strides, or column-major when `fortran`.
    pub fn dense(shape: Vec<usize>, fortran: bool) -> Self {
        let mut stride = vec![0; shape.len()];
        let mut step = 1usize;
        let order: Vec<usize> = if fortran {
            (0..shape.len()).collect()
        } else {
            (0..shape.len()).rev().collect()
        };
        for d in order {
            stride[d] = step;
            step = step.saturating_mul(shape[d]);
        }
        Self {
            offset: 0,
            shape,
            stride,
        }
    }

    /// The element count, or None when it overflows.
    pub fn numel(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// Strides with those of size-1 dimensions zeroed: torch leaves arbitrary
    /// values there, and they never move through the storage.
    fn effective_stride(&self) -> Vec<usize> {
        self.shape
            .iter()
            .zip(&self.stride)
            .map(|(&size, &stride)| if size > 1 { stride } else { 0 })
            .collect()
    }

    /// One past the highest element the view reads, or None on overflow.
    fn extent(&self, stride: &[usize]) -> Option<usize> {
        self.shape
            .iter()
            .zip(stride)
            .try_fold(self.offset, |end, (&size, &stride)| {
                end.checked_add((size - 1).checked_mul(stride)?)
            })?
            .checked_add(1)
    }
}

/// Copies the elements of `layout` out of little-endian `bytes` into a
/// contiguous row-major `f32` buffer. The caller has budgeted `numel` values.
pub(crate) fn gather(bytes: &[u8], dtype: DType, layout: &Layout) -> Result<Vec<f32>, ErrorKind> {
    if layout.shape.len() != layout.stride.len() {
        return Err(malformed("tensor size and stride differ in length"));
    }
    let numel = layout
        .numel()
        .ok_or_else(|| malformed("tensor element count overflows"))?;
    if numel == 0 {
        return Ok(Vec::new());
    }
    let stride = layout.effective_stride();
    let size = dtype.size();
    let extent = layout
        .extent(&stride)
        .ok_or_else(|| malformed("tensor view overflows"))?;
    if extent > bytes.len() / size {
        return Err(malformed("tensor view reaches past the end of its storage"));
    }
    let element = |index: usize| dtype.decode(&bytes[index * size..(index + 1) * size]);
    if stride == Layout::dense(layout.shape.clone(), false).effective_stride() {
        return Ok((layout.offset..layout.offset + numel)
            .map(element)
            .collect());
    }
    let mut values = Vec::with_capacity(numel);
    let mut index = vec![0; layout.shape.len()];
    let mut position = layout.offset;
    for _ in 0..numel {
        values.push(element(position));
        // Odometer: step the last dimension, carrying into earlier ones. Each
        // position stays below 2 * extent, so this cannot overflow.
        for d in (0..index.len()).rev() {
            index[d] += 1;
            position += stride[d];
            if index[d] < layout.shape[d] {
                break;
            }
            position -= stride[d] * layout.shape[d];
            index[d] = 0;
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn strided_views_become_contiguous() {
        let bytes: Vec<u8> = (0..6u8).flat_map(|v| f32::from(v).to_le_bytes()).collect();
        // The transpose of a row-major [2, 3] matrix.
        let transposed = Layout {
            offset: 0,
            shape: vec![3, 2],
            stride: vec![1, 3],
        };
        let values = gather(&bytes, DType::F32, &transposed).unwrap();
        assert_eq!(values, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let fortran = gather(&bytes, DType::F32, &Layout::dense(vec![2, 3], true)).unwrap();
        assert_eq!(fortran, [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
    }

    #[test]
    fn views_past_the_storage_are_rejected() {
        let bytes = [0u8; 8];
        let layout = Layout {
            offset: 1,
            shape: vec![2],
            stride: vec![1],
        };
        assert!(gather(&bytes, DType::F32, &layout).is_err());
        let huge = Layout {
            offset: 0,
            shape: vec![2, usize::MAX],
            stride: vec![usize::MAX, 1],
        };
        assert!(gather(&bytes, DType::F32, &huge).is_err());
    }
}
