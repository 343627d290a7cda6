//! timm's RandAugment (`rand_augment_transform`), ops on `u8` RGB images.

use rand::Rng;

use super::affine::{affine, rotation, AffineMatrix};
use super::color::{autocontrast, equalize, invert, posterize, solarize, solarize_add, Enhance};
use super::Interpolation;
use crate::random::standard_normal;
use crate::{DataError, Image};

/// Magnitudes are on a 0..10 scale; an op's argument is linear in
/// `magnitude / LEVEL_DENOM`.
const LEVEL_DENOM: f64 = 10.0;
/// Every chosen op still runs with this probability.
const OP_PROB: f64 = 0.5;
/// `translate_pct`: the largest translation, as a fraction of the side.
const TRANSLATE_PCT: f64 = 0.45;

/// The ops in timm's `_RAND_TRANSFORMS` order. The `inc` set swaps in the
/// "increasing" variants of posterize, solarize and the enhancements at the
/// same positions, which [`RandAugment::increasing`] selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    AutoContrast,
    Equalize,
    Invert,
    Rotate,
    Posterize,
    Solarize,
    SolarizeAdd,
    Enhance(Enhance),
    ShearX,
    ShearY,
    TranslateXRel,
    TranslateYRel,
}

const OPS: [Op; 15] = [
    Op::AutoContrast,
    Op::Equalize,
    Op::Invert,
    Op::Rotate,
    Op::Posterize,
    Op::Solarize,
    Op::SolarizeAdd,
    Op::Enhance(Enhance::Color),
    Op::Enhance(Enhance::Contrast),
    Op::Enhance(Enhance::Brightness),
    Op::Enhance(Enhance::Sharpness),
    Op::ShearX,
    Op::ShearY,
    Op::TranslateXRel,
    Op::TranslateYRel,
];

/// timm's `_RAND_CHOICE_WEIGHTS_0`, in `OPS` order (`w0` in the spec).
const CHOICE_WEIGHTS_0: [f64; 15] = [
    0.025, 0.005, 0.0, 0.3, 0.0, 0.005, 0.005, 0.025, 0.005, 0.005, 0.025, 0.2, 0.2, 0.1, 0.1,
];

/// How the magnitude of each op application is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MagnitudeNoise {
    None,
    /// Normal around the magnitude with this standard deviation (`mstd`).
    Normal(f64),
    /// Uniform in `[0, magnitude]` (`mstd` above 100).
    Uniform,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RandAugment {
    pub magnitude: f64,
    pub noise: MagnitudeNoise,
    /// The clamp on noisy magnitudes (`mmax`, default 10).
    pub magnitude_max: f64,
    /// Ops applied per image (`n`, default 2).
    pub num_layers: usize,
    /// Severity grows with magnitude for every op (`inc1`).
    pub increasing: bool,
    /// Choose ops by timm's weight set 0 (`w0`), without replacement as
    /// numpy does, instead of uniformly with replacement.
    pub weighted: bool,
    /// Colour for areas that geometric ops uncover: timm uses the dataset
    /// mean (see [`RandAugment::with_mean`]), else grey 128.
    pub fill: [u8; 3],
    /// Resampling for the geometric ops; timm passes the train
    /// interpolation unless it is `random`.
    pub interpolation: Interpolation,
}

impl RandAugment {
    /// Parses a timm spec such as `rand-m9-mstd0.5-inc1`: dash-separated
    /// sections after `rand`, each a key followed by a number (`m`, `n`,
    /// `mstd`, `mmax`, `inc`, `w`). Sections without a number are ignored,
    /// as in timm. Unlike timm, `inc0` turns the increasing set off (timm's
    /// `bool("0")` is true).
    pub fn parse(spec: &str) -> Result<Self, DataError> {
        // Every operation costs a pass over the image, and recipes use 1 to 4.
        const MAX_LAYERS: usize = 16;
        let error = |reason: String| DataError::config("--aa", spec, reason);
        let mut sections = spec.split('-');
        if sections.next() != Some("rand") {
            return Err(error("a RandAugment spec starts with 'rand'".into()));
        }
        let mut ra = Self {
            magnitude: LEVEL_DENOM,
            noise: MagnitudeNoise::None,
            magnitude_max: LEVEL_DENOM,
            num_layers: 2,
            increasing: false,
            weighted: false,
            fill: [128; 3],
            interpolation: Interpolation::Random,
        };
        for section in sections {
            let Some(split) = section.find(|c: char| c.is_ascii_digit()) else {
                continue;
            };
            let (key, value) = section.split_at(split);
            let int = || {
                value
                    .parse::<usize>()
                    .map_err(|_| error(format!("'{section}' needs an integer")))
            };
            match key {
                "m" => ra.magnitude = int()? as f64,
                "n" => {
                    ra.num_layers = int()?;
                    if ra.num_layers > MAX_LAYERS {
                        return Err(error(format!(
                            "'{section}': at most {MAX_LAYERS} operations per image"
                        )));
                    }
                }
                "mmax" => ra.magnitude_max = int()? as f64,
                "inc" => ra.increasing = int()? != 0,
                "w" if int()? == 0 => ra.weighted = true,
                "w" => return Err(error(format!("'{section}': only weight set w0 exists"))),
                "mstd" => {
                    let std: f64 = value
                        .parse()
                        .map_err(|_| error(format!("'{section}' needs a number")))?;
                    ra.noise = match std {
                        s if s > 100.0 => MagnitudeNoise::Uniform,
                        s if s > 0.0 => MagnitudeNoise::Normal(s),
                        _ => MagnitudeNoise::None,
                    };
                }
                _ => return Err(error(format!("unknown section '{section}'"))),
            }
        }
        Ok(ra)
    }

    /// Fills uncovered areas with the dataset mean, `round(255 * mean)`, as
    /// timm's training transform does.
    pub fn with_mean(mut self, mean: [f32; 3]) -> Self {
        self.fill = mean.map(|m| (255.0 * f64::from(m)).round_ties_even().clamp(0.0, 255.0) as u8);
        self
    }

    pub fn apply(&self, img: Image, rng: &mut impl Rng) -> Image {
        self.choose_ops(rng)
            .into_iter()
            .fold(img, |img, op| self.apply_op(op, img, rng))
    }

    fn choose_ops(&self, rng: &mut impl Rng) -> Vec<Op> {
        if !self.weighted {
            return (0..self.num_layers)
                .map(|_| OPS[rng.random_range(0..OPS.len())])
                .collect();
        }
        let mut remaining = CHOICE_WEIGHTS_0;
        let mut chosen = Vec::with_capacity(self.num_layers);
        for _ in 0..self.num_layers.min(OPS.len()) {
            let total: f64 = remaining.iter().sum();
            if total <= 0.0 {
                break;
            }
            let mut target = rng.random::<f64>() * total;
            let pick = remaining
                .iter()
                .position(|&w| {
                    target -= w;
                    w > 0.0 && target < 0.0
                })
                .unwrap_or_else(|| remaining.iter().rposition(|&w| w > 0.0).unwrap());
            remaining[pick] = 0.0;
            chosen.push(OPS[pick]);
        }
        chosen
    }

    /// The op's level in `[0, magnitude_max / 10]`.
    fn sample_level(&self, rng: &mut impl Rng) -> f64 {
        let magnitude = match self.noise {
            MagnitudeNoise::None => self.magnitude,
            MagnitudeNoise::Normal(std) => self.magnitude + std * standard_normal(rng),
            MagnitudeNoise::Uniform => rng.random_range(0.0..=self.magnitude),
        };
        magnitude.clamp(0.0, self.magnitude_max) / LEVEL_DENOM
    }

    fn apply_op(&self, op: Op, mut img: Image, rng: &mut impl Rng) -> Image {
        if rng.random::<f64>() > OP_PROB {
            return img;
        }
        let level = self.sample_level(rng);
        let mut signed = |v: f64| if rng.random::<f64>() > 0.5 { -v } else { v };
        // Integer arguments truncate, as Python's int() does; the increasing
        // variants saturate at zero when `mmax` lifts the level above 1.
        let quarter_bits = (level * 4.0) as u32;
        let threshold = (level * 256.0) as u32;
        let (w, h) = (img.width, img.height);
        let matrix: AffineMatrix = match op {
            Op::AutoContrast => return in_place(img, autocontrast),
            Op::Equalize => return in_place(img, equalize),
            Op::Invert => return in_place(img, invert),
            Op::Posterize => {
                let bits = if self.increasing {
                    4u32.saturating_sub(quarter_bits)
                } else {
                    quarter_bits
                };
                posterize(&mut img, bits);
                return img;
            }
            Op::Solarize => {
                let threshold = if self.increasing {
                    256u32.saturating_sub(threshold)
                } else {
                    threshold
                };
                solarize(&mut img, threshold);
                return img;
            }
            Op::SolarizeAdd => {
                solarize_add(&mut img, (level * 110.0) as u32, 128);
                return img;
            }
            Op::Enhance(enhance) => {
                let factor = if self.increasing {
                    (1.0 + signed(level * 0.9)).max(0.1)
                } else {
                    level * 1.8 + 0.1
                };
                enhance.apply(&mut img, factor as f32);
                return img;
            }
            Op::Rotate => rotation(w, h, signed(level * 30.0)),
            Op::ShearX => [1.0, signed(level * 0.3), 0.0, 0.0, 1.0, 0.0],
            Op::ShearY => [1.0, 0.0, 0.0, signed(level * 0.3), 1.0, 0.0],
            Op::TranslateXRel => [
                1.0,
                0.0,
                signed(level * TRANSLATE_PCT) * w as f64,
                0.0,
                1.0,
                0.0,
            ],
            Op::TranslateYRel => [
                1.0,
                0.0,
                0.0,
                0.0,
                1.0,
                signed(level * TRANSLATE_PCT) * h as f64,
            ],
        };
        affine(&img, matrix, self.interpolation.pick(rng), self.fill)
    }
}

fn in_place(mut img: Image, op: fn(&mut Image)) -> Image {
    op(&mut img);
    img
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::seeded_rng;

    #[test]
    fn parses_the_t2t_recipe() {
        let ra = RandAugment::parse("rand-m9-mstd0.5-inc1").unwrap();
        assert_eq!(ra.magnitude, 9.0);
        assert_eq!(ra.noise, MagnitudeNoise::Normal(0.5));
        assert_eq!(ra.magnitude_max, 10.0);
        assert_eq!(ra.num_layers, 2);
        assert!(ra.increasing);
        assert!(!ra.weighted);
        assert_eq!(ra.fill, [128; 3]);

        let ra = RandAugment::parse("rand-n3-mstd101-w0-mmax15").unwrap();
        assert_eq!(
            (ra.magnitude, ra.num_layers, ra.magnitude_max),
            (10.0, 3, 15.0)
        );
        assert_eq!(ra.noise, MagnitudeNoise::Uniform);
        assert!(ra.weighted);
        assert!(!ra.increasing);
        assert_eq!(RandAugment::parse("rand-n16").unwrap().num_layers, 16);
    }

    #[test]
    fn bad_specs_name_the_flag_on_one_line() {
        let many = "rand-n1000000-m9";
        for spec in [
            "rnd-m9",
            "rand-q3",
            "rand-m9.5",
            "rand-w1",
            "rand-mstd0.x",
            many,
        ] {
            let message = RandAugment::parse(spec).unwrap_err().to_string();
            assert!(message.starts_with("--aa"), "{message}");
            assert!(message.contains(spec), "{message}");
            assert!(!message.contains('\n'));
        }
        // timm skips sections without a digit.
        assert!(RandAugment::parse("rand-m9-x").is_ok());
    }

    #[test]
    fn imagenet_mean_fill_matches_timm() {
        let ra = RandAugment::parse("rand-m9")
            .unwrap()
            .with_mean(crate::stats::single(crate::stats::IMAGENET_MEAN));
        assert_eq!(ra.fill, [124, 116, 104]);
    }

    #[test]
    fn noisy_levels_stay_in_range() {
        let ra = RandAugment::parse("rand-m9-mstd0.5").unwrap();
        let mut rng = seeded_rng(&[3]);
        let levels: Vec<f64> = (0..10_000).map(|_| ra.sample_level(&mut rng)).collect();
        assert!(levels.iter().all(|l| (0.0..=1.0).contains(l)));
        let mean = levels.iter().sum::<f64>() / levels.len() as f64;
        assert!((mean - 0.9).abs() < 0.01, "mean level {mean}");
    }

    #[test]
    fn weighted_choice_skips_zero_weights_without_repeats() {
        let mut ra = RandAugment::parse("rand-m9-n5-w0").unwrap();
        let mut rng = seeded_rng(&[5]);
        for _ in 0..200 {
            let ops = ra.choose_ops(&mut rng);
            assert_eq!(ops.len(), 5);
            assert!(!ops.contains(&Op::Invert) && !ops.contains(&Op::Posterize));
            for (i, op) in ops.iter().enumerate() {
                assert!(!ops[i + 1..].contains(op), "repeated {op:?}");
            }
        }
        ra.weighted = false;
        assert_eq!(ra.choose_ops(&mut rng).len(), 5);
    }

    #[test]
    fn augmented_images_keep_their_size() {
        let img = Image::new(20, 12, (0..20 * 12 * 3).map(|i| (i % 251) as u8).collect());
        let mut rng = seeded_rng(&[9]);
        // mmax above 10 pushes the increasing ops past their range ends.
        for spec in [
            "rand-m9-mstd0.5-inc1",
            "rand-m20-mmax30-n4-inc1",
            "rand-m20-mmax30-n4",
        ] {
            let ra = RandAugment::parse(spec).unwrap();
            for _ in 0..100 {
                let out = ra.apply(img.clone(), &mut rng);
                assert_eq!((out.width, out.height), (20, 12));
            }
        }
    }
}
