//! Per-sample transforms on [`Image`] with an explicit random generator,
//! following torchvision and timm: RandomResizedCrop, flips, the CIFAR pad
//! crop, the eval resize and centre crop, RandAugment, colour jitter,
//! normalisation and random erasing.

mod affine;
mod color;
mod randaugment;

use std::str::FromStr;

use fast_image_resize::images::{Image as ResizeTarget, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use rand::Rng;

use crate::random::standard_normal;
use crate::{DataError, Image};

pub use affine::{affine, rotation, AffineMatrix};
pub use color::{
    autocontrast, equalize, invert, posterize, solarize, solarize_add, ColorJitter, Enhance,
};
pub use randaugment::{MagnitudeNoise, RandAugment};

/// A resampling filter. Bicubic is Catmull-Rom (a = -0.5), PIL's bicubic;
/// both filters widen with the scale when shrinking, as PIL does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    Bilinear,
    Bicubic,
}

impl Filter {
    /// timm's name of the filter.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bilinear => "bilinear",
            Self::Bicubic => "bicubic",
        }
    }

    fn kernel(self) -> FilterType {
        match self {
            Self::Bilinear => FilterType::Bilinear,
            Self::Bicubic => FilterType::CatmullRom,
        }
    }
}

impl FromStr for Filter {
    type Err = DataError;

    fn from_str(name: &str) -> Result<Self, DataError> {
        match name {
            "bilinear" => Ok(Self::Bilinear),
            "bicubic" => Ok(Self::Bicubic),
            _ => Err(DataError::config(
                "--interpolation",
                name,
                "expected bilinear or bicubic",
            )),
        }
    }
}

/// A filter, or timm's `random`: bilinear or bicubic with equal odds, drawn
/// anew for every use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    Fixed(Filter),
    Random,
}

impl Interpolation {
    pub fn pick(self, rng: &mut impl Rng) -> Filter {
        match self {
            Self::Fixed(filter) => filter,
            Self::Random if rng.random_bool(0.5) => Filter::Bilinear,
            Self::Random => Filter::Bicubic,
        }
    }
}

impl FromStr for Interpolation {
    type Err = DataError;

    fn from_str(name: &str) -> Result<Self, DataError> {
        match name {
            "random" => Ok(Self::Random),
            _ => name.parse().map(Self::Fixed).map_err(|_| {
                DataError::config(
                    "--train-interpolation",
                    name,
                    "expected bilinear, bicubic or random",
                )
            }),
        }
    }
}

/// A rectangle of an image, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

/// Resamples `region` of `img` to `width` x `height`; a region of the target
/// size is copied as is.
fn resize_region(
    img: &Image,
    region: CropBox,
    width: usize,
    height: usize,
    filter: Filter,
) -> Image {
    if (region.width, region.height) == (width, height) {
        return crop(
            img,
            region.left as isize,
            region.top as isize,
            width,
            height,
        );
    }
    let region = [region.left, region.top, region.width, region.height].map(|v| v as f64);
    resample(img, region, width, height, filter)
}

/// Resamples the box `[left, top, width, height]` of `img`, in fractional
/// pixels, to `width` x `height`. Filter taps reach past the box into the
/// rest of the image, as PIL's resize with a box does.
fn resample(
    img: &Image,
    [left, top, region_width, region_height]: [f64; 4],
    width: usize,
    height: usize,
    filter: Filter,
) -> Image {
    let src = ImageRef::new(
        img.width as u32,
        img.height as u32,
        &img.pixels,
        PixelType::U8x3,
    )
    .expect("an Image holds width * height RGB pixels");
    let mut dst = ResizeTarget::new(width as u32, height as u32, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(filter.kernel()))
        .crop(left, top, region_width, region_height);
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .expect("source and target are both U8x3");
    Image::new(width, height, dst.into_vec())
}

pub fn resize(img: &Image, width: usize, height: usize, filter: Filter) -> Image {
    let full = CropBox {
        top: 0,
        left: 0,
        height: img.height,
        width: img.width,
    };
    resize_region(img, full, width, height, filter)
}

/// The `width` x `height` window at (`left`, `top`), which may extend past
/// the image; outside pixels are black (zero padding).
fn crop(img: &Image, left: isize, top: isize, width: usize, height: usize) -> Image {
    let mut out = Image::zeros(width, height);
    // Columns of the window that overlap the image.
    let x0 = (-left).clamp(0, width as isize) as usize;
    let x1 = (img.width as isize - left).clamp(0, width as isize) as usize;
    if x0 >= x1 {
        return out;
    }
    for y in 0..height {
        let src_y = top + y as isize;
        if !(0..img.height as isize).contains(&src_y) {
            continue;
        }
        let src = (src_y as usize * img.width + (left + x0 as isize) as usize) * 3;
        let dst = (y * width + x0) * 3;
        let len = (x1 - x0) * 3;
        out.pixels[dst..dst + len].copy_from_slice(&img.pixels[src..src + len]);
    }
    out
}

/// torchvision's `RandomResizedCrop.get_params`: up to ten tries at a box
/// with area fraction in `scale` and aspect ratio (w/h) log-uniform in
/// `ratio` that fits the image; otherwise a centre crop clamped to `ratio`.
pub fn rrc_box(
    width: usize,
    height: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut impl Rng,
) -> CropBox {
    let area = (width * height) as f64;
    let log_ratio = ratio.0.ln()..=ratio.1.ln();
    for _ in 0..10 {
        let target_area = area * rng.random_range(scale.0..=scale.1);
        let aspect = rng.random_range(log_ratio.clone()).exp();
        let w = (target_area * aspect).sqrt().round_ties_even() as usize;
        let h = (target_area / aspect).sqrt().round_ties_even() as usize;
        if (1..=width).contains(&w) && (1..=height).contains(&h) {
            return CropBox {
                top: rng.random_range(0..=height - h),
                left: rng.random_range(0..=width - w),
                height: h,
                width: w,
            };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < ratio.0 {
        (width, (width as f64 / ratio.0).round_ties_even() as usize)
    } else if in_ratio > ratio.1 {
        ((height as f64 * ratio.1).round_ties_even() as usize, height)
    } else {
        (width, height)
    };
    CropBox {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

/// timm's `RandomResizedCropAndInterpolation`: an [`rrc_box`] resized to
/// `size` x `size`.
pub fn random_resized_crop(
    img: &Image,
    size: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    interpolation: Interpolation,
    rng: &mut impl Rng,
) -> Image {
    let region = rrc_box(img.width, img.height, scale, ratio, rng);
    let filter = interpolation.pick(rng);
    resize_region(img, region, size, size, filter)
}

/// Mirrors left and right.
pub fn hflip(img: &mut Image) {
    for row in img.pixels.chunks_exact_mut(img.width * 3) {
        row.reverse();
        // Reversing the bytes reversed each pixel's channels too: undo that.
        for pixel in row.chunks_exact_mut(3) {
            pixel.swap(0, 2);
        }
    }
}

/// torchvision's `RandomCrop(size, padding=pad)`: zero-pad every side by
/// `pad`, then take a random `size` x `size` window.
pub fn pad_random_crop(img: &Image, size: usize, pad: usize, rng: &mut impl Rng) -> Image {
    let (padded_w, padded_h) = (img.width + 2 * pad, img.height + 2 * pad);
    assert!(
        padded_w >= size && padded_h >= size,
        "a {}x{} image padded by {pad} is smaller than the {size} crop",
        img.width,
        img.height
    );
    let top = rng.random_range(0..=padded_h - size) as isize - pad as isize;
    let left = rng.random_range(0..=padded_w - size) as isize - pad as isize;
    crop(img, left, top, size, size)
}

/// torchvision's `Resize(size)`: the shorter side becomes `size`, the longer
/// keeps the aspect ratio (truncated). Unchanged when already there.
pub fn resize_shorter(img: &Image, size: usize, filter: Filter) -> Image {
    let (short, long) = (img.width.min(img.height), img.width.max(img.height));
    if short == size {
        return img.clone();
    }
    let new_long = size * long / short;
    if img.width <= img.height {
        resize(img, size, new_long, filter)
    } else {
        resize(img, new_long, size, filter)
    }
}

/// torchvision's `CenterCrop(size)`, offsets rounded half to even as Python
/// does; a side smaller than `size` is zero-padded.
pub fn center_crop(img: &Image, size: usize) -> Image {
    let offset = |len: usize| ((len as f64 - size as f64) / 2.0).round_ties_even() as isize;
    crop(img, offset(img.width), offset(img.height), size, size)
}

/// timm's eval transform: resize the shorter side to
/// `floor(img_size / crop_pct)` (248 for 224 at 0.9), then centre crop
/// `img_size`. Only the kept centre is resampled, from the source box that
/// the full resize would map onto it, so time and memory follow the output
/// whatever the image's shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalTransform {
    crop_pct: f64,
    filter: Filter,
}

impl EvalTransform {
    /// The smallest `crop_pct`: the centre kept is then a thousandth of the
    /// resized shorter side, far below any published evaluation setting.
    pub const MIN_CROP_PCT: f64 = 1e-3;

    pub fn new(crop_pct: f64, filter: Filter) -> Result<Self, DataError> {
        if !(Self::MIN_CROP_PCT..=1.0).contains(&crop_pct) {
            return Err(DataError::config(
                "--crop-pct",
                crop_pct.to_string(),
                format!(
                    "the kept fraction of the resized image must be in [{}, 1]",
                    Self::MIN_CROP_PCT
                ),
            ));
        }
        Ok(Self { crop_pct, filter })
    }

    /// The `img_size` x `img_size` centre of `img` resized as timm does.
    pub fn apply(&self, img: &Image, img_size: usize) -> Image {
        let scale_size = (img_size as f64 / self.crop_pct).floor() as u128;
        let (width, height) = (img.width as u128, img.height as u128);
        // torchvision's Resize(int): the longer side keeps the aspect ratio,
        // truncated.
        let longer = scale_size * width.max(height) / width.min(height);
        let (new_width, new_height) = if width <= height {
            (scale_size, longer)
        } else {
            (longer, scale_size)
        };
        // torchvision's CenterCrop offsets, rounded half to even as Python
        // does; both resized sides are at least `img_size`.
        let offset = |len: u128| ((len - img_size as u128) as f64 / 2.0).round_ties_even();
        let (left, top) = (offset(new_width), offset(new_height));
        if (new_width, new_height) == (width, height) {
            return crop(img, left as isize, top as isize, img_size, img_size);
        }
        let (x_scale, y_scale) = (
            width as f64 / new_width as f64,
            height as f64 / new_height as f64,
        );
        let (x0, y0, side) = (left * x_scale, top * y_scale, img_size as f64);
        // Rounding must not push the box past the image's far edges.
        let region = [
            x0,
            y0,
            (side * x_scale).min(width as f64 - x0),
            (side * y_scale).min(height as f64 - y0),
        ];
        resample(img, region, img_size, img_size, self.filter)
    }
}

/// torchvision's `ToTensor` + `Normalize`: CHW `f32`,
/// `(v / 255 - mean) / std`.
pub fn normalize(img: &Image, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let plane = img.width * img.height;
    let mut chw = vec![0.0; 3 * plane];
    for (i, pixel) in img.pixels.chunks_exact(3).enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = (f32::from(pixel[c]) / 255.0 - mean[c]) / std[c];
        }
    }
    chw
}

/// The box of timm's `RandomErasing` (one region): up to ten tries at an area
/// fraction in [0.02, 1/3] with log-uniform aspect ratio (h/w) in
/// [0.3, 1/0.3] that fits strictly inside; `None` when all fail.
pub fn erase_box(height: usize, width: usize, rng: &mut impl Rng) -> Option<CropBox> {
    const AREA: (f64, f64) = (0.02, 1.0 / 3.0);
    const MIN_ASPECT: f64 = 0.3;
    let area = (height * width) as f64;
    let log_aspect = MIN_ASPECT.ln()..=(1.0 / MIN_ASPECT).ln();
    for _ in 0..10 {
        let target_area = area * rng.random_range(AREA.0..=AREA.1);
        let aspect = rng.random_range(log_aspect.clone()).exp();
        let h = (target_area * aspect).sqrt().round_ties_even() as usize;
        let w = (target_area / aspect).sqrt().round_ties_even() as usize;
        if w < width && h < height {
            return Some(CropBox {
                top: rng.random_range(0..=height - h),
                left: rng.random_range(0..=width - w),
                height: h,
                width: w,
            });
        }
    }
    None
}

/// timm's `RandomErasing(prob, mode='pixel')` on a normalised CHW image:
/// with probability `prob`, one [`erase_box`] across all channels is
/// replaced by standard normal noise.
pub fn random_erasing(
    chw: &mut [f32],
    channels: usize,
    height: usize,
    width: usize,
    prob: f64,
    rng: &mut impl Rng,
) {
    assert_eq!(chw.len(), channels * height * width);
    if rng.random::<f64>() > prob {
        return;
    }
    let Some(region) = erase_box(height, width, rng) else {
        return;
    };
    for c in 0..channels {
        for y in region.top..region.top + region.height {
            let row = (c * height + y) * width;
            for v in &mut chw[row + region.left..row + region.left + region.width] {
                *v = standard_normal(rng) as f32;
            }
        }
    }
}

/// timm's ImageNet training transform: RandomResizedCrop, horizontal flip,
/// then RandAugment or (only without it) colour jitter. Random erasing,
/// which works on the normalised tensor, is applied by the loader with
/// `reprob`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainTransform {
    pub scale: (f64, f64),
    pub ratio: (f64, f64),
    pub interpolation: Interpolation,
    /// Probability of a horizontal flip.
    pub hflip: f64,
    pub rand_augment: Option<RandAugment>,
    /// Ignored while `rand_augment` is set, as in timm.
    pub color_jitter: Option<ColorJitter>,
    /// Random erasing probability.
    pub reprob: f64,
}

impl Default for TrainTransform {
    /// The T2T-ViT ImageNet recipe: scale 0.08-1, ratio 3/4-4/3, random
    /// interpolation, flip 0.5, `rand-m9-mstd0.5-inc1` filling with the
    /// ImageNet mean, erasing 0.25.
    fn default() -> Self {
        let rand_augment = RandAugment::parse("rand-m9-mstd0.5-inc1")
            .expect("the recipe's spec parses")
            .with_mean(crate::stats::single(crate::stats::IMAGENET_MEAN));
        Self {
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            interpolation: Interpolation::Random,
            hflip: 0.5,
            rand_augment: Some(rand_augment),
            color_jitter: None,
            reprob: 0.25,
        }
    }
}

impl TrainTransform {
    /// Checks the settings [`apply`](Self::apply) relies on: scale and ratio
    /// ranges positive, finite and ordered, probabilities in [0, 1], jitter
    /// strengths finite and not negative. Errors name the flag.
    pub fn validate(&self) -> Result<(), DataError> {
        check_positive_range("--scale", self.scale)?;
        check_positive_range("--ratio", self.ratio)?;
        check_probability("--hflip", self.hflip)?;
        check_probability("--reprob", self.reprob)?;
        match &self.color_jitter {
            Some(jitter) => jitter.validate(),
            None => Ok(()),
        }
    }

    /// The image part of the transform: a `size` x `size` result.
    pub fn apply(&self, img: &Image, size: usize, rng: &mut impl Rng) -> Image {
        let mut out =
            random_resized_crop(img, size, self.scale, self.ratio, self.interpolation, rng);
        if rng.random::<f64>() < self.hflip {
            hflip(&mut out);
        }
        match (&self.rand_augment, &self.color_jitter) {
            (Some(ra), _) => ra.apply(out, rng),
            (None, Some(jitter)) => {
                jitter.apply(&mut out, rng);
                out
            }
            (None, None) => out,
        }
    }
}

/// A `(min, max)` range with `0 < min <= max`, both finite.
pub fn check_positive_range(flag: &'static str, (min, max): (f64, f64)) -> Result<(), DataError> {
    if min > 0.0 && min <= max && max.is_finite() {
        return Ok(());
    }
    Err(DataError::config(
        flag,
        format!("{min} {max}"),
        "needs two finite numbers with 0 < min <= max",
    ))
}

/// A probability: a number in [0, 1].
pub fn check_probability(flag: &'static str, value: f64) -> Result<(), DataError> {
    if (0.0..=1.0).contains(&value) {
        return Ok(());
    }
    Err(DataError::config(
        flag,
        value.to_string(),
        "a probability must be in [0, 1]",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::seeded_rng;

    /// Every pixel distinct in its first two channels.
    fn numbered(width: usize, height: usize) -> Image {
        let pixels = (0..width * height)
            .flat_map(|i| [(i % 256) as u8, (i / 256) as u8, 7])
            .collect();
        Image::new(width, height, pixels)
    }

    #[test]
    fn rrc_boxes_fit_with_area_and_ratio_in_range() {
        let mut rng = seeded_rng(&[1]);
        let (scale, ratio) = ((0.08, 1.0), (3.0 / 4.0, 4.0 / 3.0));
        for (width, height) in [(500, 375), (375, 500), (224, 224), (32, 32), (640, 480)] {
            let area = (width * height) as f64;
            let mut area_sum = 0.0;
            for _ in 0..2000 {
                let b = rrc_box(width, height, scale, ratio, &mut rng);
                assert!(b.width >= 1 && b.height >= 1);
                assert!(
                    b.left + b.width <= width && b.top + b.height <= height,
                    "{b:?}"
                );
                let fraction = (b.width * b.height) as f64 / area;
                // Rounding each side to whole pixels moves the area and ratio
                // by up to half a pixel per side.
                let slack_w = 0.5 / b.width as f64;
                let slack_h = 0.5 / b.height as f64;
                let slack = slack_w + slack_h + slack_w * slack_h;
                assert!(
                    fraction >= scale.0 * (1.0 - slack) && fraction <= 1.0,
                    "{fraction}"
                );
                let r = b.width as f64 / b.height as f64;
                assert!(
                    r >= ratio.0 * (1.0 - slack) && r <= ratio.1 * (1.0 + slack),
                    "{r}"
                );
                area_sum += fraction;
            }
            // Accepted areas are uniform in [0.08, 1] less the large boxes
            // that do not fit, so their mean lies below 0.54.
            let mean = area_sum / 2000.0;
            assert!(
                (0.35..0.54).contains(&mean),
                "{width}x{height}: mean area {mean}"
            );
        }
    }

    #[test]
    fn rrc_falls_back_to_a_ratio_clamped_centre_crop() {
        // A scale above 1 never fits, so all ten tries fail.
        let mut rng = seeded_rng(&[2]);
        let wide = rrc_box(400, 100, (1.5, 2.0), (0.75, 4.0 / 3.0), &mut rng);
        assert_eq!(
            wide,
            CropBox {
                top: 0,
                left: 133,
                height: 100,
                width: 133
            }
        );
        let tall = rrc_box(100, 400, (1.5, 2.0), (0.75, 4.0 / 3.0), &mut rng);
        assert_eq!(
            tall,
            CropBox {
                top: 133,
                left: 0,
                height: 133,
                width: 100
            }
        );
        let square = rrc_box(50, 50, (1.5, 2.0), (0.75, 4.0 / 3.0), &mut rng);
        assert_eq!(
            square,
            CropBox {
                top: 0,
                left: 0,
                height: 50,
                width: 50
            }
        );
    }

    #[test]
    fn rrc_output_has_the_requested_size() {
        let img = numbered(50, 40);
        let mut rng = seeded_rng(&[3]);
        for _ in 0..20 {
            let out = random_resized_crop(
                &img,
                24,
                (0.08, 1.0),
                (0.75, 4.0 / 3.0),
                Interpolation::Random,
                &mut rng,
            );
            assert_eq!(
                (out.width, out.height, out.pixels.len()),
                (24, 24, 24 * 24 * 3)
            );
        }
    }

    #[test]
    fn resizing_a_constant_image_keeps_the_constant() {
        let img = Image::new(37, 23, [10, 200, 90].repeat(37 * 23));
        for filter in [Filter::Bilinear, Filter::Bicubic] {
            for (w, h) in [(224, 224), (8, 5)] {
                let out = resize(&img, w, h, filter);
                assert!(out.pixels.chunks_exact(3).all(|p| p == [10, 200, 90]));
            }
        }
    }

    #[test]
    fn flipping_twice_is_the_identity() {
        let img = numbered(7, 3);
        let mut flipped = img.clone();
        hflip(&mut flipped);
        assert_ne!(flipped, img);
        assert_eq!(flipped.pixel(0, 1), img.pixel(6, 1));
        hflip(&mut flipped);
        assert_eq!(flipped, img);
    }

    #[test]
    fn pad_crop_is_a_zero_filled_shift_of_at_most_pad() {
        let img = numbered(32, 32);
        let mut rng = seeded_rng(&[4]);
        let mut shifts = std::collections::HashSet::new();
        for _ in 0..400 {
            let out = pad_random_crop(&img, 32, 4, &mut rng);
            // Locate the shift from a pixel that is always inside the image.
            let [lo, hi, _] = out.pixel(16, 16);
            let source = usize::from(lo) + 256 * usize::from(hi);
            let dx = (source % 32) as isize - 16;
            let dy = (source / 32) as isize - 16;
            assert!(dx.abs() <= 4 && dy.abs() <= 4);
            shifts.insert((dx, dy));
            for y in 0..32isize {
                for x in 0..32isize {
                    let (sx, sy) = (x + dx, y + dy);
                    let want = if (0..32).contains(&sx) && (0..32).contains(&sy) {
                        img.pixel(sx as usize, sy as usize)
                    } else {
                        [0; 3]
                    };
                    assert_eq!(out.pixel(x as usize, y as usize), want);
                }
            }
        }
        assert_eq!(shifts.len(), 81, "every shift in [-4, 4]^2 occurs");
    }

    #[test]
    fn eval_resizes_to_248_then_crops_224() {
        let img = numbered(500, 375);
        let resized = resize_shorter(&img, (224.0 / 0.9f64).floor() as usize, Filter::Bicubic);
        // 375 -> 248 and 500 -> int(248 * 500 / 375) = 330.
        assert_eq!((resized.width, resized.height), (330, 248));
        let eval = EvalTransform::new(0.9, Filter::Bicubic).unwrap();
        let out = eval.apply(&img, 224);
        assert_eq!((out.width, out.height), (224, 224));
        // The crop starts at round((330 - 224) / 2) = 53 and (248 - 224) / 2 = 12.
        assert_eq!(out, center_crop(&resized, 224));
        assert_eq!(out.pixel(0, 0), resized.pixel(53, 12));
    }

    /// Resampling only the kept centre gives what resizing the whole image
    /// and cropping it gives, for any shape and filter.
    #[test]
    fn eval_resamples_only_the_kept_centre() {
        let mut rng = seeded_rng(&[8]);
        let shapes = [
            (300, 600),
            (224, 224),
            (248, 300),
            (1000, 37),
            (97, 101),
            (5, 3),
        ];
        for (width, height) in shapes {
            let pixels = (0..width * height * 3)
                .map(|_| rng.random::<u8>())
                .collect();
            let img = Image::new(width, height, pixels);
            for (crop_pct, filter) in [
                (0.875, Filter::Bilinear),
                (0.9, Filter::Bicubic),
                (1.0, Filter::Bicubic),
                (0.05, Filter::Bilinear),
            ] {
                let scale_size = (64.0f64 / crop_pct).floor() as usize;
                let full = center_crop(&resize_shorter(&img, scale_size, filter), 64);
                let out = EvalTransform::new(crop_pct, filter)
                    .unwrap()
                    .apply(&img, 64);
                // The filter weights differ in their last bits, which may
                // round a value the other way.
                let pairs = || full.pixels.iter().zip(&out.pixels);
                let differing = pairs().filter(|(a, b)| a != b).count();
                assert!(
                    pairs().all(|(a, b)| a.abs_diff(*b) <= 1) && differing < out.pixels.len() / 50,
                    "{width}x{height} at {crop_pct}: {differing} values differ"
                );
            }
        }
    }

    #[test]
    fn eval_of_a_sliver_stays_small() {
        // Resizing all of a 1x60000 image first would take 11 GB.
        let sliver = Image::new(1, 60_000, [9, 99, 199].repeat(60_000));
        let out = EvalTransform::new(0.9, Filter::Bicubic)
            .unwrap()
            .apply(&sliver, 224);
        assert_eq!((out.width, out.height), (224, 224));
        assert!(out.pixels.chunks_exact(3).all(|p| p == [9, 99, 199]));
    }

    #[test]
    fn eval_refuses_a_crop_pct_outside_its_range() {
        for crop_pct in [0.0, -1.0, 1e-4, 1.5, f64::NAN, f64::INFINITY] {
            let error = EvalTransform::new(crop_pct, Filter::Bicubic).unwrap_err();
            let message = error.to_string();
            assert!(
                message.starts_with("--crop-pct") && message.contains("[0.001, 1]"),
                "{message}"
            );
        }
        assert!(EvalTransform::new(0.001, Filter::Bicubic).is_ok());
    }

    #[test]
    fn train_transform_settings_are_checked() {
        assert!(TrainTransform::default().validate().is_ok());
        let refused = |transform: TrainTransform, flag: &str| {
            let message = transform.validate().unwrap_err().to_string();
            assert!(message.starts_with(flag), "{message}");
        };
        let base = TrainTransform::default;
        refused(
            TrainTransform {
                ratio: (0.0, 0.0),
                ..base()
            },
            "--ratio",
        );
        refused(
            TrainTransform {
                ratio: (4.0 / 3.0, 0.75),
                ..base()
            },
            "--ratio",
        );
        refused(
            TrainTransform {
                scale: (1.0, 0.0),
                ..base()
            },
            "--scale",
        );
        refused(
            TrainTransform {
                scale: (0.08, f64::INFINITY),
                ..base()
            },
            "--scale",
        );
        refused(
            TrainTransform {
                scale: (f64::NAN, 1.0),
                ..base()
            },
            "--scale",
        );
        refused(
            TrainTransform {
                hflip: 2.0,
                ..base()
            },
            "--hflip",
        );
        refused(
            TrainTransform {
                reprob: -0.1,
                ..base()
            },
            "--reprob",
        );
        let jitter = Some(ColorJitter::uniform(f32::NAN));
        refused(
            TrainTransform {
                color_jitter: jitter,
                ..base()
            },
            "--color-jitter",
        );
    }

    #[test]
    fn normalize_is_chw_with_the_closed_form() {
        let img = Image::new(2, 1, vec![255, 0, 51, 0, 255, 102]);
        let (mean, std) = ([0.5, 0.25, 0.1], [0.5, 0.25, 0.2]);
        let chw = normalize(&img, mean, std);
        let want = [1.0, -1.0, -1.0, 3.0, 0.5, 1.5];
        for (got, want) in chw.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{chw:?}");
        }
    }

    #[test]
    fn erasing_fills_one_box_with_unit_normal_noise() {
        let (c, h, w) = (3, 40, 60);
        let mut rng = seeded_rng(&[5]);
        let (mut sum, mut sum_sq, mut count) = (0.0f64, 0.0f64, 0usize);
        for _ in 0..300 {
            let mut chw = vec![0.0f32; c * h * w];
            random_erasing(&mut chw, c, h, w, 1.0, &mut rng);
            let touched: Vec<(usize, usize)> = (0..h * w)
                .filter(|&i| chw[i] != 0.0)
                .map(|i| (i / w, i % w))
                .collect();
            if touched.is_empty() {
                continue; // all ten tries failed, which is rare but allowed
            }
            let top = touched.iter().map(|t| t.0).min().unwrap();
            let bottom = touched.iter().map(|t| t.0).max().unwrap() + 1;
            let left = touched.iter().map(|t| t.1).min().unwrap();
            let right = touched.iter().map(|t| t.1).max().unwrap() + 1;
            let (bh, bw) = (bottom - top, right - left);
            // A full rectangle, identical in every channel's footprint.
            assert_eq!(touched.len(), bh * bw);
            for plane in chw.chunks_exact(h * w) {
                for (i, &v) in plane.iter().enumerate() {
                    let inside =
                        (top..bottom).contains(&(i / w)) && (left..right).contains(&(i % w));
                    assert_eq!(v != 0.0, inside);
                }
            }
            let fraction = (bh * bw) as f64 / (h * w) as f64;
            assert!(
                (0.015..=0.36).contains(&fraction),
                "area fraction {fraction}"
            );
            let aspect = bh as f64 / bw as f64;
            assert!((0.25..=4.0).contains(&aspect), "aspect {aspect}");
            for &v in &chw {
                sum += f64::from(v);
                sum_sq += f64::from(v) * f64::from(v);
            }
            count += c * bh * bw;
        }
        let mean = sum / count as f64;
        let var = sum_sq / count as f64 - mean * mean;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "mean {mean} var {var}"
        );
    }

    #[test]
    fn erasing_happens_with_the_given_probability() {
        let mut rng = seeded_rng(&[6]);
        let erased = (0..4000)
            .filter(|_| {
                let mut chw = vec![0.0f32; 3 * 16 * 16];
                random_erasing(&mut chw, 3, 16, 16, 0.25, &mut rng);
                chw.iter().any(|&v| v != 0.0)
            })
            .count();
        assert!((900..1100).contains(&erased), "{erased} of 4000 erased");
    }

    #[test]
    fn interpolation_names_parse() {
        assert_eq!(
            "random".parse::<Interpolation>().unwrap(),
            Interpolation::Random
        );
        assert_eq!(
            "bicubic".parse::<Interpolation>().unwrap(),
            Interpolation::Fixed(Filter::Bicubic)
        );
        let error = "nearest".parse::<Interpolation>().unwrap_err().to_string();
        assert!(
            error.starts_with("--train-interpolation \"nearest\""),
            "{error}"
        );
    }

    #[test]
    fn default_train_transform_gives_square_output() {
        let transform = TrainTransform::default();
        let img = numbered(120, 90);
        let mut rng = seeded_rng(&[7]);
        for _ in 0..20 {
            let out = transform.apply(&img, 64, &mut rng);
            assert_eq!((out.width, out.height), (64, 64));
        }
    }
}
