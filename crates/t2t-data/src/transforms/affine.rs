//! PIL's `Image.transform(size, AFFINE, ...)`, the warp behind RandAugment's
//! rotate, shear and translate.

use super::Filter;
use crate::Image;

/// An output-to-input map: output pixel centre `(x, y)` samples the input at
/// `(a x + b y + c, d x + e y + f)`, PIL's `(a, b, c, d, e, f)` data.
pub type AffineMatrix = [f64; 6];

/// Warps `img` into an image of the same size. Samples that fall outside the
/// input take `fill`; inside, neighbours beyond the border are clamped, as in
/// PIL's bilinear and bicubic filters.
pub fn affine(img: &Image, matrix: AffineMatrix, filter: Filter, fill: [u8; 3]) -> Image {
    let [a, b, c, d, e, f] = matrix;
    let (w, h) = (img.width as f64, img.height as f64);
    let mut out = Image::zeros(img.width, img.height);
    for (y, row) in out.pixels.chunks_exact_mut(img.width * 3).enumerate() {
        let yc = y as f64 + 0.5;
        for (x, pixel) in row.chunks_exact_mut(3).enumerate() {
            let xc = x as f64 + 0.5;
            let (xin, yin) = (a * xc + b * yc + c, d * xc + e * yc + f);
            let value = if (0.0..w).contains(&xin) && (0.0..h).contains(&yin) {
                sample(img, xin - 0.5, yin - 0.5, filter)
            } else {
                fill
            };
            pixel.copy_from_slice(&value);
        }
    }
    out
}

/// PIL's `rotate(degrees)`: counter-clockwise about the image centre.
pub fn rotation(width: usize, height: usize, degrees: f64) -> AffineMatrix {
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    // PIL rounds to 15 decimals, which makes right angles exact.
    let round15 = |v: f64| (v * 1e15).round() / 1e15;
    let (sin, cos) = (-degrees.to_radians()).sin_cos();
    let (sin, cos) = (round15(sin), round15(cos));
    let (a, b, d, e) = (cos, sin, -sin, cos);
    // Rotate about the origin, then move the centre back onto itself.
    [a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy]
}

/// Interpolates at a position in pixel-index coordinates (pixel `i` is
/// centred on `i`).
fn sample(img: &Image, x: f64, y: f64, filter: Filter) -> [u8; 3] {
    let (x0, y0) = (x.floor(), y.floor());
    let (tx, ty) = ((x - x0) as f32, (y - y0) as f32);
    let (x0, y0) = (x0 as isize, y0 as isize);
    match filter {
        Filter::Bilinear => convolve(img, x0, y0, [1.0 - tx, tx], [1.0 - ty, ty]),
        Filter::Bicubic => convolve(img, x0 - 1, y0 - 1, cubic_taps(tx), cubic_taps(ty)),
    }
}

/// The weighted sum of the `N` x `N` pixels from (`left`, `top`), with
/// coordinates clamped to the image.
fn convolve<const N: usize>(
    img: &Image,
    left: isize,
    top: isize,
    wx: [f32; N],
    wy: [f32; N],
) -> [u8; 3] {
    let clamp = |v: isize, len: usize| v.clamp(0, len as isize - 1) as usize;
    let columns: [usize; N] = std::array::from_fn(|i| clamp(left + i as isize, img.width));
    let mut acc = [0.0f32; 3];
    for (j, weight_y) in wy.iter().enumerate() {
        let row = clamp(top + j as isize, img.height) * img.width;
        let mut row_acc = [0.0f32; 3];
        for (column, weight_x) in columns.iter().zip(&wx) {
            let p = (row + column) * 3;
            for (c, value) in row_acc.iter_mut().enumerate() {
                *value += weight_x * f32::from(img.pixels[p + c]);
            }
        }
        for (value, row_value) in acc.iter_mut().zip(row_acc) {
            *value += weight_y * row_value;
        }
    }
    acc.map(|v| (v + 0.5).clamp(0.0, 255.0) as u8)
}

/// Bicubic weights of the taps at offsets -1, 0, 1, 2 for fractional
/// position `t`.
fn cubic_taps(t: f32) -> [f32; 4] {
    [cubic(1.0 + t), cubic(t), cubic(1.0 - t), cubic(2.0 - t)]
}

/// Keys' cubic convolution kernel with a = -0.5, PIL's bicubic.
fn cubic(x: f32) -> f32 {
    const A: f32 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(width: usize, height: usize) -> Image {
        let pixels = (0..width * height)
            .flat_map(|i| [i as u8, (i * 7) as u8, 255 - i as u8])
            .collect();
        Image::new(width, height, pixels)
    }

    #[test]
    fn identity_matrix_copies_with_both_filters() {
        let img = numbered(7, 5);
        for filter in [Filter::Bilinear, Filter::Bicubic] {
            assert_eq!(
                affine(&img, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], filter, [0; 3]),
                img
            );
        }
    }

    #[test]
    fn rotating_90_degrees_turns_counter_clockwise() {
        let img = numbered(6, 6);
        let out = affine(&img, rotation(6, 6, 90.0), Filter::Bilinear, [0; 3]);
        // Output (x, y) shows input column W-1-y, row x: the top-right corner
        // moves to the top-left.
        for y in 0..6 {
            for x in 0..6 {
                assert_eq!(out.pixel(x, y), img.pixel(5 - y, x), "at ({x}, {y})");
            }
        }
    }

    #[test]
    fn whole_pixel_translation_shifts_and_fills() {
        let img = numbered(8, 4);
        let fill = [1, 2, 3];
        // Sampling input x + 3: content moves 3 pixels to the left.
        let out = affine(&img, [1.0, 0.0, 3.0, 0.0, 1.0, 0.0], Filter::Bicubic, fill);
        for y in 0..4 {
            for x in 0..8 {
                let want = if x + 3 < 8 { img.pixel(x + 3, y) } else { fill };
                assert_eq!(out.pixel(x, y), want);
            }
        }
    }

    #[test]
    fn bicubic_taps_interpolate_linear_ramps_exactly() {
        for t in [0.0, 0.25, 0.5, 0.9] {
            let weights = cubic_taps(t);
            assert!((weights.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            let ramp: f32 = weights
                .iter()
                .enumerate()
                .map(|(k, w)| w * (k as f32 - 1.0))
                .sum();
            assert!((ramp - t).abs() < 1e-6, "at {t}");
        }
    }

    #[test]
    fn half_pixel_shift_averages_neighbours() {
        // On a linear ramp away from the border both filters give the mean
        // of the two neighbours.
        let ramp = [0, 60, 120, 180, 240]
            .iter()
            .flat_map(|&v| [v; 3])
            .collect();
        let img = Image::new(5, 1, ramp);
        for filter in [Filter::Bilinear, Filter::Bicubic] {
            assert_eq!(sample(&img, 1.5, 0.0, filter), [90; 3], "{filter:?}");
        }
    }
}
