//! The precision@k plot: one panel for broad and one for fine categories, a line per
//! search type, drawn with plotters into a buffer and saved as PNG with `image`.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{EvalReport, KS};

/// DejaVu Sans Mono (Bitstream Vera licence, assets/fonts/LICENSE-DejaVu.txt): plotters
/// needs a font for labels, and the PNG must look the same on every machine.
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");
const FONT_NAME: &str = "vitrina-mono";

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 500;

/// Writes `path` (PNG): precision@k per search type, broad and fine panels.
pub fn plot_precision(report: &EvalReport, path: &Path) -> Result<()> {
    save(path, |buffer| draw(report, buffer))
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// Draws into an RGB buffer of the plot's size and writes it to `path` as PNG.
fn save(path: &Path, draw: impl FnOnce(&mut [u8]) -> Drawn) -> Result<()> {
    plotters::style::register_font(FONT_NAME, FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("the bundled plot font is invalid"))?;
    let mut buffer = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    draw(&mut buffer).map_err(|e| anyhow::anyhow!("drawing the plot: {e}"))?;
    let img = image::RgbImage::from_raw(WIDTH, HEIGHT, buffer).context("plot buffer size")?;
    img.save(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn draw(report: &EvalReport, buffer: &mut [u8]) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(buffer, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let methods: Vec<_> = report
        .methods
        .iter()
        .filter(|m| m.diversify == "none")
        .collect();
    for (panel, fine) in panels.iter().zip([false, true]) {
        let title = format!(
            "{} ({}): precision@k, {} category",
            report.catalog,
            report.split,
            if fine { "fine" } else { "broad" }
        );
        let mut chart = ChartBuilder::on(panel)
            .caption(title, (FONT_NAME, 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..105f64, 0f64..1f64)?;
        chart
            .configure_mesh()
            .x_desc("k")
            .y_desc("precision")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.1}"))
            .label_style((FONT_NAME, 13))
            .draw()?;
        for (i, m) in methods.iter().enumerate() {
            let values = if fine { &m.fine } else { &m.broad };
            let points: Vec<(f64, f64)> = KS.iter().map(|&k| (k as f64, values[&k])).collect();
            draw_line(&mut chart, &points, &m.method, i, 3)?;
        }
        draw_legend(&mut chart)?;
    }
    root.present()?;
    Ok(())
}

/// Writes `path` (PNG): the precision/variety trade-off of `--sweep-diversity`, P@10
/// (broad and fine panels) against top-10 visual distance, one line per method family
/// (k-means is one point), the undiversified ranking marked.
pub fn plot_tradeoff(report: &EvalReport, path: &Path) -> Result<()> {
    save(path, |buffer| draw_tradeoff(report, buffer))
}

fn draw_tradeoff(report: &EvalReport, buffer: &mut [u8]) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(buffer, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let curve = &report.diversity_curve;
    // Method families: "none", "kmeans", "mmr(..)", "dedup(..)", in their order.
    let mut families: Vec<(String, Vec<&crate::eval::MethodFigures>)> = Vec::new();
    for m in curve {
        let family = m.diversify.split('(').next().unwrap_or("").to_string();
        match families.iter_mut().find(|(f, _)| *f == family) {
            Some((_, members)) => members.push(m),
            None => families.push((family, vec![m])),
        }
    }
    let visual = |m: &crate::eval::MethodFigures| m.variety.visual_distance.unwrap_or(0.0);
    let x_max = curve.iter().map(visual).fold(0.0, f64::max) * 1.1 + 0.01;
    let x_min = curve.iter().map(visual).fold(f64::MAX, f64::min) * 0.9;
    let panels = root.split_evenly((1, 2));
    for (panel, fine) in panels.iter().zip([false, true]) {
        let p = |m: &crate::eval::MethodFigures| if fine { m.fine[&10] } else { m.broad[&10] };
        let y_max = (curve.iter().map(p).fold(0.0, f64::max) + 0.02).min(1.0);
        let y_min = (curve.iter().map(p).fold(1.0, f64::min) - 0.02).max(0.0);
        let title = format!(
            "{} ({}): P@10 {} vs variety",
            report.catalog,
            report.split,
            if fine { "fine" } else { "broad" }
        );
        let mut chart = ChartBuilder::on(panel)
            .caption(title, (FONT_NAME, 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(x_min..x_max, y_min..y_max)?;
        chart
            .configure_mesh()
            .x_desc("visual distance of the top 10")
            .y_desc("P@10")
            .x_label_formatter(&|x| format!("{x:.2}"))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .label_style((FONT_NAME, 13))
            .draw()?;
        for (i, (family, members)) in families.iter().enumerate() {
            let mut points: Vec<(f64, f64)> = members.iter().map(|m| (visual(m), p(m))).collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            draw_line(&mut chart, &points, family, i, 4)?;
        }
        draw_legend(&mut chart)?;
    }
    root.present()?;
    Ok(())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One labelled line with its points marked, in the palette's `i`-th colour.
fn draw_line(
    chart: &mut Chart,
    points: &[(f64, f64)],
    label: &str,
    i: usize,
    radius: u32,
) -> Drawn {
    let color = Palette99::pick(i).to_rgba();
    chart
        .draw_series(LineSeries::new(points.to_vec(), color.stroke_width(2)))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    chart.draw_series(
        points
            .iter()
            .map(|&p| Circle::new(p, radius, color.filled())),
    )?;
    Ok(())
}

/// The legend, lower left, as both plots draw it.
fn draw_legend<'b>(chart: &mut Chart<'b, 'b>) -> Drawn {
    chart
        .configure_series_labels()
        .label_font((FONT_NAME, 13))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerLeft)
        .draw()?;
    Ok(())
}
