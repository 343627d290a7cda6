//! Pixel-value operations with PIL's semantics (`ImageOps`, `ImageEnhance`),
//! which timm's RandAugment and torchvision's ColorJitter call.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::{DataError, Image};

/// PIL's `convert("L")`: ITU-R 601-2 luma in 16-bit fixed point.
fn luma(rgb: &[u8]) -> u8 {
    let [r, g, b] = [rgb[0], rgb[1], rgb[2]].map(u32::from);
    ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8
}

fn lut(f: impl Fn(u8) -> u8) -> [u8; 256] {
    std::array::from_fn(|v| f(v as u8))
}

fn apply_lut(img: &mut Image, table: &[u8; 256]) {
    for v in &mut img.pixels {
        *v = table[usize::from(*v)];
    }
}

fn apply_channel_luts(img: &mut Image, tables: &[[u8; 256]; 3]) {
    for pixel in img.pixels.chunks_exact_mut(3) {
        for (v, table) in pixel.iter_mut().zip(tables) {
            *v = table[usize::from(*v)];
        }
    }
}

fn histograms(img: &Image) -> [[u32; 256]; 3] {
    let mut counts = [[0u32; 256]; 3];
    for pixel in img.pixels.chunks_exact(3) {
        for (c, &v) in pixel.iter().enumerate() {
            counts[c][usize::from(v)] += 1;
        }
    }
    counts
}

pub fn invert(img: &mut Image) {
    apply_lut(img, &lut(|v| 255 - v));
}

/// Inverts the values at or above `threshold` (256 leaves the image as is).
pub fn solarize(img: &mut Image, threshold: u32) {
    apply_lut(
        img,
        &lut(|v| if u32::from(v) < threshold { v } else { 255 - v }),
    );
}

/// Adds `add` (saturating) to the values below `threshold`.
pub fn solarize_add(img: &mut Image, add: u32, threshold: u32) {
    apply_lut(
        img,
        &lut(|v| {
            if u32::from(v) < threshold {
                (u32::from(v) + add).min(255) as u8
            } else {
                v
            }
        }),
    );
}

/// Keeps the `bits` most significant bits of every value (8 or more: no-op).
pub fn posterize(img: &mut Image, bits: u32) {
    if bits >= 8 {
        return;
    }
    let mask = !((1u32 << (8 - bits)) - 1) as u8;
    apply_lut(img, &lut(|v| v & mask));
}

/// Stretches each channel so that its darkest value maps to 0 and its
/// brightest to 255 (`ImageOps.autocontrast`, no cutoff).
pub fn autocontrast(img: &mut Image) {
    let tables = histograms(img).map(|counts| {
        let lo = counts.iter().position(|&n| n > 0).unwrap_or(0);
        let hi = counts.iter().rposition(|&n| n > 0).unwrap_or(255);
        if hi <= lo {
            return lut(|v| v);
        }
        let scale = 255.0 / (hi - lo) as f64;
        let offset = -(lo as f64) * scale;
        lut(|v| (f64::from(v) * scale + offset).clamp(0.0, 255.0) as u8)
    });
    apply_channel_luts(img, &tables);
}

/// Flattens each channel's histogram (`ImageOps.equalize`).
pub fn equalize(img: &mut Image) {
    let pixel_count = (img.pixels.len() / 3) as u32;
    let tables = histograms(img).map(|counts| {
        let last_used = counts.iter().rposition(|&n| n > 0).map_or(0, |i| counts[i]);
        let step = (pixel_count - last_used) / 256;
        if step == 0 {
            return lut(|v| v);
        }
        let mut table = [0u8; 256];
        let mut n = step / 2;
        for (entry, &count) in table.iter_mut().zip(&counts) {
            *entry = (n / step).min(255) as u8;
            n += count;
        }
        table
    });
    apply_channel_luts(img, &tables);
}

/// The `ImageEnhance` family: blend the image with a degenerate version of
/// itself, `degenerate + factor * (image - degenerate)`. Factor 1 is the
/// identity, 0 the degenerate image, above 1 extrapolates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enhance {
    /// Degenerate: black.
    Brightness,
    /// Degenerate: the mean luma everywhere.
    Contrast,
    /// Degenerate: per-pixel luma (saturation in ColorJitter's terms).
    Color,
    /// Degenerate: PIL's 3x3 `SMOOTH` filter.
    Sharpness,
}

impl Enhance {
    pub fn apply(self, img: &mut Image, factor: f32) {
        match self {
            Self::Brightness => blend_with(img, factor, |_, _| 0),
            Self::Contrast => {
                let mean = mean_luma(img);
                blend_with(img, factor, |_, _| mean);
            }
            Self::Color => {
                let gray: Vec<u8> = img.pixels.chunks_exact(3).map(luma).collect();
                blend_with(img, factor, |i, _| gray[i / 3]);
            }
            Self::Sharpness => {
                let smooth = smooth_3x3(img);
                blend_with(img, factor, |i, _| smooth.pixels[i]);
            }
        }
    }
}

/// `Image.blend(degenerate, img, factor)`, computed in `f32` and truncated as
/// PIL does; `degenerate` gets the byte index and the original value.
fn blend_with(img: &mut Image, factor: f32, degenerate: impl Fn(usize, u8) -> u8) {
    for (i, v) in img.pixels.iter_mut().enumerate() {
        let d = f32::from(degenerate(i, *v));
        *v = (d + factor * (f32::from(*v) - d)).clamp(0.0, 255.0) as u8;
    }
}

/// `int(mean(L) + 0.5)`, the contrast pivot of `ImageEnhance.Contrast`.
fn mean_luma(img: &Image) -> u8 {
    let count = (img.pixels.len() / 3).max(1);
    let sum: u64 = img.pixels.chunks_exact(3).map(|p| u64::from(luma(p))).sum();
    (sum as f64 / count as f64 + 0.5) as u8
}

/// PIL's `ImageFilter.SMOOTH` (kernel 1 1 1 / 1 5 1 / 1 1 1, divided by 13);
/// border pixels are copied unchanged, as PIL does.
fn smooth_3x3(img: &Image) -> Image {
    let stride = img.width * 3;
    let mut out = img.clone();
    if img.width < 3 || img.height < 3 {
        return out;
    }
    for y in 1..img.height - 1 {
        let rows = [y - 1, y, y + 1].map(|r| &img.pixels[r * stride..(r + 1) * stride]);
        let out_row = &mut out.pixels[y * stride..(y + 1) * stride];
        // Byte i of a row has its horizontal neighbours at i - 3 and i + 3.
        for i in 3..stride - 3 {
            let box_sum: u32 = rows
                .iter()
                .map(|row| u32::from(row[i - 3]) + u32::from(row[i]) + u32::from(row[i + 3]))
                .sum();
            let total = box_sum + 4 * u32::from(rows[1][i]);
            out_row[i] = ((total as f32 / 13.0) + 0.5) as u8;
        }
    }
    out
}

/// torchvision's `ColorJitter` without hue: each enabled adjustment draws a
/// factor from `[max(0, 1 - s), 1 + s]`, and they run in a random order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColorJitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
}

impl ColorJitter {
    /// timm's `--color-jitter s`: the same strength for all three.
    pub fn uniform(strength: f32) -> Self {
        Self {
            brightness: strength,
            contrast: strength,
            saturation: strength,
        }
    }

    /// Each strength must be finite and not negative.
    pub fn validate(&self) -> Result<(), DataError> {
        for strength in [self.brightness, self.contrast, self.saturation] {
            if !(strength >= 0.0 && strength.is_finite()) {
                return Err(DataError::config(
                    "--color-jitter",
                    strength.to_string(),
                    "a jitter strength must be a finite number >= 0",
                ));
            }
        }
        Ok(())
    }

    pub fn apply(&self, img: &mut Image, rng: &mut impl Rng) {
        let mut adjustments = [
            (Enhance::Brightness, self.brightness),
            (Enhance::Contrast, self.contrast),
            (Enhance::Color, self.saturation),
        ];
        adjustments.shuffle(rng);
        for (enhance, strength) in adjustments {
            if strength > 0.0 {
                let factor = rng.random_range((1.0 - strength).max(0.0)..=1.0 + strength);
                enhance.apply(img, factor);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient() -> Image {
        // Channel values span 40..=200 in distinct patterns per channel.
        let pixels = (0..64u32)
            .flat_map(|i| [40 + (i * 5) as u8, 200 - (i * 2) as u8, 100 + (i % 8) as u8])
            .collect();
        Image::new(8, 8, pixels)
    }

    #[test]
    fn lut_ops_match_their_closed_forms() {
        let img = gradient();
        let mut inverted = img.clone();
        invert(&mut inverted);
        assert!(img
            .pixels
            .iter()
            .zip(&inverted.pixels)
            .all(|(a, b)| a + b == 255));

        let mut solarized = img.clone();
        solarize(&mut solarized, 128);
        for (&a, &b) in img.pixels.iter().zip(&solarized.pixels) {
            assert_eq!(b, if a < 128 { a } else { 255 - a });
        }

        let mut posterized = img.clone();
        posterize(&mut posterized, 2);
        assert!(posterized.pixels.iter().all(|v| v & 0b0011_1111 == 0));

        let mut added = img.clone();
        solarize_add(&mut added, 100, 128);
        for (&a, &b) in img.pixels.iter().zip(&added.pixels) {
            assert_eq!(
                b,
                if a < 128 {
                    (a as u32 + 100).min(255) as u8
                } else {
                    a
                }
            );
        }
    }

    #[test]
    fn autocontrast_spans_the_full_range_per_channel() {
        let mut img = gradient();
        autocontrast(&mut img);
        for c in 0..3 {
            let channel: Vec<u8> = img.pixels.iter().skip(c).step_by(3).copied().collect();
            assert_eq!(channel.iter().min(), Some(&0));
            assert_eq!(channel.iter().max(), Some(&255));
        }
    }

    #[test]
    fn equalize_flattens_a_two_level_image() {
        // 512 pixels at 10 and 512 at 20: step = 512 / 256 = 2, so 10 maps to
        // (2 / 2) / 2 = 0 and 20 to (1 + 512) / 2 = 256, clipped to 255.
        let pixels = (0..1024)
            .flat_map(|i| [if i < 512 { 10 } else { 20 }; 3])
            .collect();
        let mut img = Image::new(32, 32, pixels);
        equalize(&mut img);
        assert!(img.pixels[..1536].iter().all(|&v| v == 0));
        assert!(img.pixels[1536..].iter().all(|&v| v == 255));
    }

    #[test]
    fn enhance_factors_zero_and_one() {
        let img = gradient();
        for enhance in [
            Enhance::Brightness,
            Enhance::Contrast,
            Enhance::Color,
            Enhance::Sharpness,
        ] {
            let mut same = img.clone();
            enhance.apply(&mut same, 1.0);
            assert_eq!(same, img, "{enhance:?} at factor 1");
        }
        let mut black = img.clone();
        Enhance::Brightness.apply(&mut black, 0.0);
        assert!(black.pixels.iter().all(|&v| v == 0));

        let mut gray = img.clone();
        Enhance::Color.apply(&mut gray, 0.0);
        for (p, q) in gray.pixels.chunks_exact(3).zip(img.pixels.chunks_exact(3)) {
            assert_eq!(p, [luma(q); 3]);
        }

        let mut flat = img.clone();
        Enhance::Contrast.apply(&mut flat, 0.0);
        assert!(flat.pixels.iter().all(|&v| v == mean_luma(&img)));
    }

    #[test]
    fn smoothing_keeps_borders_and_weights_the_centre() {
        // A single bright pixel in the middle of a 3x3 black image.
        let mut pixels = vec![0u8; 27];
        pixels[12..15].copy_from_slice(&[130, 13, 26]);
        let smooth = smooth_3x3(&Image::new(3, 3, pixels.clone()));
        let mut want = pixels;
        want[12..15].copy_from_slice(&[50, 5, 10]);
        assert_eq!(smooth.pixels, want);
    }

    #[test]
    fn jitter_with_zero_strength_is_identity() {
        let img = gradient();
        let mut out = img.clone();
        ColorJitter::uniform(0.0).apply(&mut out, &mut crate::random::seeded_rng(&[1]));
        assert_eq!(out, img);
    }
}
