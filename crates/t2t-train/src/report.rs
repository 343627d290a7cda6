//! `summary.csv` and `curves.png` of a run.

use std::path::Path;

use plotters::prelude::*;
use t2t_models::weights::{replace_with, temp_file_beside};

use crate::metrics::EpochRow;
use crate::TrainError;

/// Rewrites `summary.csv` from the whole history (one row per epoch).
pub fn write_summary(dir: &Path, history: &[EpochRow]) -> Result<(), TrainError> {
    let mut text = String::from(EpochRow::HEADER);
    text.push('\n');
    for row in history {
        text.push_str(&row.csv());
        text.push('\n');
    }
    let path = dir.join("summary.csv");
    t2t_models::weights::write_atomically(&path, text.as_bytes())?;
    Ok(())
}

/// Fonts tried for the plot's text, in order.
const FONT_FILES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers the first font of [`FONT_FILES`] found as plotters'
/// `sans-serif`, once per process.
pub fn register_font() -> Result<(), String> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = FONT_FILES
                .iter()
                .find_map(|f| std::fs::read(f).ok())
                .ok_or_else(|| format!("no font found (tried {})", FONT_FILES.join(", ")))?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| "the font file could not be read".to_string())
        })
        .clone()
}

/// Two panels: losses (train, eval, EMA eval) and top-1/top-5 accuracy per
/// epoch, drawn to a temporary file that then replaces `path`.
pub fn plot_curves(path: &Path, history: &[EpochRow]) -> Result<(), String> {
    let temp = temp_file_beside(path).map_err(|e| e.to_string())?;
    draw_curves(temp.path(), history)?;
    replace_with(temp, path).map_err(|e| e.to_string())
}

fn draw_curves(path: &Path, history: &[EpochRow]) -> Result<(), String> {
    register_font()?;
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(600);
    let epochs = history.len().max(2) as f64;
    let epoch_axis = 0f64..epochs - 1.0;

    let losses = [
        (
            "train loss",
            history.iter().map(|r| r.train_loss).collect::<Vec<_>>(),
            BLUE,
        ),
        (
            "eval loss",
            history.iter().map(|r| r.eval.loss).collect(),
            RED,
        ),
        (
            "EMA eval loss",
            history
                .iter()
                .filter_map(|r| r.ema.map(|e| e.loss))
                .collect(),
            MAGENTA,
        ),
    ];
    let max_loss = losses
        .iter()
        .flat_map(|(_, v, _)| v.iter().copied())
        .fold(0.1f64, f64::max)
        * 1.05;
    draw_panel(&left, "loss", epoch_axis.clone(), 0f64..max_loss, &losses)?;

    let accuracy = [
        (
            "eval top-1",
            history.iter().map(|r| r.eval.top1).collect::<Vec<_>>(),
            RED,
        ),
        (
            "eval top-5",
            history.iter().map(|r| r.eval.top5).collect(),
            GREEN,
        ),
        (
            "EMA top-1",
            history
                .iter()
                .filter_map(|r| r.ema.map(|e| e.top1))
                .collect(),
            MAGENTA,
        ),
    ];
    draw_panel(&right, "accuracy (%)", epoch_axis, 0f64..100.0, &accuracy)?;
    root.present().map_err(|e| e.to_string())
}

type Series<'a> = (&'a str, Vec<f64>, RGBColor);

fn draw_panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    series: &[Series],
) -> Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(x, y)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, values, color) in series {
        if values.is_empty() {
            continue;
        }
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                values.iter().enumerate().map(|(i, v)| (i as f64, *v)),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}
