//! Line and scatter charts as SVG files (plotters).

use crate::ReportError;
use plotters::prelude::*;
use std::path::Path;

/// One named line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points in x order.
    pub points: Vec<(f64, f64)>,
}

/// Ten distinguishable colours (matplotlib's tab10), for classes and series.
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Colour `i` of the palette (cycling), as a plotters colour.
pub fn colour(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// Colour `i` as CSS `rgb(...)`.
pub fn css_colour(i: usize) -> String {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    format!("rgb({r},{g},{b})")
}

fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi {
        return None;
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    Some((lo - pad, hi + pad))
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Draw {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Writes a line chart of `series` to `path`; false (and no file) when there is nothing to draw.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<bool, ReportError> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (Some(xr), Some(yr)) = (range(all().map(|p| p.0)), range(all().map(|p| p.1))) else {
        return Ok(false);
    };
    let root = SVGBackend::new(path, (640, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
        .map_err(|e| draw_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| draw_err(path, e))?;
    for (i, s) in series.iter().enumerate() {
        let c = colour(i);
        let style = ShapeStyle::from(&c).stroke_width(2);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))
            .map_err(|e| draw_err(path, e))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
        if s.points.len() <= 60 {
            chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&p| Circle::new(p, 3, ShapeStyle::from(&c).filled())),
                )
                .map_err(|e| draw_err(path, e))?;
        }
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| draw_err(path, e))?;
    }
    root.present().map_err(|e| draw_err(path, e))?;
    Ok(true)
}

/// Writes a scatter plot of 2-D `points`, each coloured by its `group` (palette index).
pub fn scatter(
    path: &Path,
    title: &str,
    points: &[(f64, f64)],
    group: &[usize],
) -> Result<bool, ReportError> {
    let (Some(xr), Some(yr)) = (
        range(points.iter().map(|p| p.0)),
        range(points.iter().map(|p| p.1)),
    ) else {
        return Ok(false);
    };
    let root = SVGBackend::new(path, (640, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
        .map_err(|e| draw_err(path, e))?;
    chart
        .draw_series(
            points
                .iter()
                .zip(group)
                .map(|(&p, &g)| Circle::new(p, 2, ShapeStyle::from(&colour(g)).filled())),
        )
        .map_err(|e| draw_err(path, e))?;
    root.present().map_err(|e| draw_err(path, e))?;
    Ok(true)
}
