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
    plotters::style::register_font(FONT_NAME, FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("the bundled plot font is invalid"))?;
    let mut buffer = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    draw(report, &mut buffer).map_err(|e| anyhow::anyhow!("drawing the plot: {e}"))?;
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
            let color = Palette99::pick(i).to_rgba();
            let values = if fine { &m.fine } else { &m.broad };
            let points: Vec<(f64, f64)> = KS.iter().map(|&k| (k as f64, values[&k])).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(m.method.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .label_font((FONT_NAME, 13))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerLeft)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
