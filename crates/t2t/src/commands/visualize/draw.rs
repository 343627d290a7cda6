//! Figures of labelled panels (heat maps over images, tiles of channel
//! maps) under a title, written as PNG.

use std::io::BufWriter;
use std::path::Path;

use anyhow::{anyhow, Result};
use image::imageops::{self, FilterType};
use image::{ImageBuffer, ImageFormat, Luma, Rgb, RgbImage};
use plotters::prelude::*;
use plotters::style::FontDesc;
use t2t_data::Image;
use t2t_models::weights::{replace_with, temp_file_beside};
use t2t_train::report::register_font;

/// A square map of values, row-major: a channel or an attention row over
/// the patch grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub side: usize,
    pub values: Vec<f32>,
}

impl Grid {
    /// The values scaled to [0, 1] by their range (all 0 for a constant map).
    fn unit(&self) -> Vec<f32> {
        let (low, high) = self
            .values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let range = high - low;
        self.values
            .iter()
            .map(|&v| if range > 0.0 { (v - low) / range } else { 0.0 })
            .collect()
    }

    /// The unit-scaled values resized to `size × size`: bilinear when
    /// growing, so that a heat map is smooth over the image.
    fn resized(&self, size: u32) -> Vec<f32> {
        let side = self.side as u32;
        let map: ImageBuffer<Luma<f32>, Vec<f32>> =
            ImageBuffer::from_raw(side, side, self.unit()).expect("side² values");
        imageops::resize(&map, size, size, FilterType::Triangle).into_raw()
    }

    /// The grid in the jet colour map, `size × size`: blocky when growing
    /// (each token stays a visible square), averaged when shrinking.
    fn coloured(&self, size: u32) -> RgbImage {
        let side = self.side as u32;
        let mut image = RgbImage::new(side, side);
        for (pixel, v) in image.pixels_mut().zip(self.unit()) {
            *pixel = Rgb(jet(v));
        }
        let filter = if size >= side {
            FilterType::Nearest
        } else {
            FilterType::Triangle
        };
        imageops::resize(&image, size, size, filter)
    }
}

/// The jet colour map (blue → cyan → yellow → red) of `v` in [0, 1], as
/// OpenCV's `COLORMAP_JET` that vit-explain blends over its images.
fn jet(v: f32) -> [u8; 3] {
    let channel = |centre: f32| ((1.5 - (4.0 * v - centre).abs()).clamp(0.0, 1.0) * 255.0) as u8;
    [channel(3.0), channel(2.0), channel(1.0)]
}

/// The cropped input image at `size × size`.
pub fn photo(image: &Image, size: u32) -> RgbImage {
    let rgb = RgbImage::from_raw(
        image.width as u32,
        image.height as u32,
        image.pixels.clone(),
    )
    .expect("width × height RGB pixels");
    imageops::resize(&rgb, size, size, FilterType::Triangle)
}

/// `map` scaled to its range, upsampled over `image`, coloured and blended
/// half and half with it.
pub fn overlay(image: &Image, map: &Grid, size: u32) -> RgbImage {
    let mut out = photo(image, size);
    for (pixel, v) in out.pixels_mut().zip(map.resized(size)) {
        let heat = jet(v);
        for (c, h) in pixel.0.iter_mut().zip(heat) {
            *c = ((*c as u16 + h as u16) / 2) as u8;
        }
    }
    out
}

/// Channel maps side by side, eight to a row, each `tile × tile` and
/// scaled to its own range, one pixel of grey between them.
pub fn tiles(channels: &[Grid], tile: u32) -> RgbImage {
    const COLUMNS: u32 = 8;
    let rows = (channels.len() as u32).div_ceil(COLUMNS);
    let width = COLUMNS * (tile + 1) - 1;
    let height = (rows * (tile + 1)).max(1) - 1;
    let mut out = RgbImage::from_pixel(width, height, Rgb([128, 128, 128]));
    for (i, channel) in channels.iter().enumerate() {
        let (column, row) = (i as u32 % COLUMNS, i as u32 / COLUMNS);
        imageops::replace(
            &mut out,
            &channel.coloured(tile),
            (column * (tile + 1)) as i64,
            (row * (tile + 1)) as i64,
        );
    }
    out
}

/// A picture with a caption above it.
pub struct Panel {
    pub label: String,
    pub image: RgbImage,
}

/// Rows of captioned panels under a title.
pub struct Figure {
    pub title: String,
    pub rows: Vec<Vec<Panel>>,
}

const MARGIN: u32 = 8;
const TITLE_SIZE: f64 = 17.0;
const LABEL_SIZE: f64 = 13.0;

impl Figure {
    /// Draws the figure to a temporary file that then replaces `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let canvas = self.render()?;
        let temp = temp_file_beside(path)?;
        canvas
            .write_to(&mut BufWriter::new(temp.as_file()), ImageFormat::Png)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        replace_with(temp, path)?;
        Ok(())
    }

    fn render(&self) -> Result<RgbImage> {
        register_font().map_err(|e| anyhow!(e))?;
        let text_size = |text: &str, size: f64| -> Result<(u32, u32)> {
            FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal)
                .box_size(text)
                .map_err(|e| anyhow!("{e:?}"))
        };
        let (title_width, title_height) = text_size(&self.title, TITLE_SIZE)?;
        let label_height = text_size("Hg", LABEL_SIZE)?.1 + 4;
        // Each panel's column is as wide as the wider of its image and caption.
        let mut layout = Vec::new();
        let (mut width, mut y) = (title_width + 2 * MARGIN, title_height + 2 * MARGIN);
        for row in &self.rows {
            let mut x = MARGIN;
            let mut tallest = 0;
            for panel in row {
                let caption = text_size(&panel.label, LABEL_SIZE)?.0;
                layout.push((panel, x, y));
                x += panel.image.width().max(caption) + MARGIN;
                tallest = tallest.max(panel.image.height());
            }
            width = width.max(x);
            y += label_height + tallest + MARGIN;
        }
        let mut canvas = RgbImage::from_pixel(width, y, Rgb([255, 255, 255]));
        for &(panel, x, y) in &layout {
            imageops::replace(
                &mut canvas,
                &panel.image,
                x as i64,
                (y + label_height) as i64,
            );
        }
        let root = BitMapBackend::with_buffer(&mut canvas, (width, y)).into_drawing_area();
        let draw = |text: &str, x: u32, y: u32, size: f64| {
            let style = ("sans-serif", size).into_font().color(&BLACK);
            root.draw(&Text::new(text, (x as i32, y as i32), style))
                .map_err(|e| anyhow!("{e}"))
        };
        draw(&self.title, MARGIN, MARGIN, TITLE_SIZE)?;
        for &(panel, x, y) in &layout {
            draw(&panel.label, x, y, LABEL_SIZE)?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
        drop(root);
        Ok(canvas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_runs_from_blue_to_red() {
        assert_eq!(jet(0.0), [0, 0, 127]);
        assert_eq!(jet(0.5), [127, 255, 127]);
        assert_eq!(jet(1.0), [127, 0, 0]);
    }

    #[test]
    fn grids_scale_to_their_range() {
        let grid = Grid {
            side: 2,
            values: vec![-1.0, 0.0, 1.0, 3.0],
        };
        assert_eq!(grid.unit(), vec![0.0, 0.25, 0.5, 1.0]);
        let flat = Grid {
            side: 1,
            values: vec![5.0],
        };
        assert_eq!(flat.unit(), vec![0.0]);
    }
}
