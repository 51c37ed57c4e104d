//! The chart of a report: one-way p50 latency and throughput against message size, one line per
//! transport, both axes logarithmic, as an SVG document (plotters' SVG backend).

use plotters::prelude::*;

use super::results::{format_ns, format_rate, format_size, Measurement, Pattern, Report};
use ipckit::Object;

use crate::error::{Error, Result};

/// Line colours, in order of first appearance: saturated and far apart (Tableau's 10, then
/// darker ones), so that every line reads on white and next to its neighbours.
const COLOURS: [(u8, u8, u8); 16] = [
    (0x1f, 0x77, 0xb4),
    (0xff, 0x7f, 0x0e),
    (0x2c, 0xa0, 0x2c),
    (0xd6, 0x27, 0x28),
    (0x94, 0x67, 0xbd),
    (0x8c, 0x56, 0x4b),
    (0xe3, 0x77, 0xc2),
    (0x7f, 0x7f, 0x7f),
    (0xbc, 0xbd, 0x22),
    (0x17, 0xbe, 0xcf),
    (0x39, 0x3b, 0x79),
    (0xc5, 0x1b, 0x8a),
    (0x00, 0x00, 0x00),
    (0x63, 0x79, 0x39),
    (0xe6, 0x55, 0x0d),
    (0x31, 0x82, 0xbd),
];

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 620;

fn chart_error(e: impl std::fmt::Display) -> Error {
    Error::invalid(
        "render chart",
        Object::Other("SVG chart".into()),
        e.to_string(),
    )
}

/// One line: a transport's points, x = log2(size), y = the value.
struct Line {
    transport: String,
    points: Vec<(f64, f64)>,
}

fn lines(report: &Report, pattern: Pattern) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    for transport in report.transports() {
        let mut points: Vec<(f64, f64)> = report
            .results
            .iter()
            .filter(|m| m.transport() == transport && m.pattern() == pattern)
            .map(|m| {
                let x = (m.size().max(1) as f64).log2();
                let y = match m {
                    Measurement::Latency(l) => l.p50_ns.max(1) as f64,
                    Measurement::Throughput(t) => t.bytes_per_sec.max(1.0),
                };
                (x, y)
            })
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !points.is_empty() {
            out.push(Line { transport, points });
        }
    }
    out
}

/// Renders the report as an SVG document: latency (p50, log scale) on the left, throughput
/// (bytes/s, log scale) on the right, message size (log scale) across; every transport a
/// coloured line with markers, named in the legend of each panel.
pub fn render_svg(report: &Report) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let title = format!(
            "ipckit bench — {} ({} CPUs), Linux {}",
            report.machine.cpu_model, report.machine.cpus, report.machine.kernel
        );
        let root = root
            .titled(&title, ("sans-serif", 20))
            .map_err(chart_error)?;
        let (left, right) = root.split_horizontally(WIDTH / 2);
        // Colours by transport, the same in both panels.
        let names = report.transports();
        let colour = |t: &str| {
            let i = names.iter().position(|n| n == t).unwrap_or(0);
            let (r, g, b) = COLOURS[i % COLOURS.len()];
            RGBColor(r, g, b).to_rgba()
        };
        panel(
            &left,
            &lines(report, Pattern::Latency),
            &floors(report),
            "One-way latency, p50 (lower is better)",
            "p50 latency",
            &|y| format_ns(y),
            &colour,
        )?;
        panel(
            &right,
            &lines(report, Pattern::Throughput),
            &Floors::default(),
            "Throughput (higher is better)",
            "bytes per second",
            &|y| format_rate(y),
            &colour,
        )?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// The floor lines of a latency panel: their p50s, and the legend that names them.
#[derive(Debug, Default)]
struct Floors {
    p50s: Vec<f64>,
    label: String,
}

/// The floors the report's latency cells compare with: the run's own, or, in a merge of runs
/// measured apart, each run's (a line per distinct floor: one run's floor says nothing about
/// another run's cells).
fn floors(report: &Report) -> Floors {
    let Some(b) = report.baseline.as_ref() else {
        return Floors::default();
    };
    let mut p50s = report.floors_compared();
    p50s.sort_unstable();
    let label = match p50s.as_slice() {
        [] => return Floors::default(),
        [_] => format!("{} (floor, 8 B)", b.transport),
        many => format!(
            "{} (floor, 8 B) of each run: {}",
            b.transport,
            many.iter()
                .map(|&ns| format_ns(ns as f64))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Floors {
        p50s: p50s.into_iter().map(|ns| ns.max(1) as f64).collect(),
        label,
    }
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    lines: &[Line],
    floors: &Floors,
    caption: &str,
    y_desc: &str,
    y_format: &dyn Fn(f64) -> String,
    colour: &dyn Fn(&str) -> RGBAColor,
) -> Result<()> {
    if lines.is_empty() {
        area.draw(&Text::new(
            format!("{caption}: nothing measured"),
            (40, 80),
            ("sans-serif", 16),
        ))
        .map_err(chart_error)?;
        return Ok(());
    }
    let all = lines.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    for &y in &floors.p50s {
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    // Room around the points: half a power of two across, a factor of 2 up and down.
    let (x0, x1) = (x0 - 0.5, x1 + 0.5);
    let (y0, y1) = (y0 / 2.0, y1 * 2.0);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(86)
        .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_desc("message size")
        .y_desc(y_desc)
        .x_labels(12)
        .x_label_formatter(&|x| {
            let rounded = x.round();
            if (x - rounded).abs() < 1e-6 && (0.0..63.0).contains(&rounded) {
                format_size(1u64 << rounded as u32)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| y_format(*y))
        .draw()
        .map_err(chart_error)?;
    for line in lines {
        let c = colour(&line.transport);
        let style = ShapeStyle::from(c).stroke_width(2);
        chart
            .draw_series(LineSeries::new(line.points.iter().copied(), style))
            .map_err(chart_error)?
            .label(line.transport.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart
            .draw_series(line.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(chart_error)?;
    }
    // Each floor across the whole size range: a grey line, the first named in the legend.
    let style = ShapeStyle::from(BLACK.mix(0.45)).stroke_width(1);
    for (i, &y) in floors.p50s.iter().enumerate() {
        let series = chart
            .draw_series(LineSeries::new([(x0, y), (x1, y)], style))
            .map_err(chart_error)?;
        if i == 0 {
            series
                .label(floors.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(chart_error)?;
    Ok(())
}
