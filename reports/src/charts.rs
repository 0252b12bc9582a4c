//! The report's charts as inline SVG strings, drawn with plotters' SVG backend.
//!
//! plotters is built without its `ttf` feature, so it uses its "naive" font metrics and the
//! SVG backend writes `<text font-family="sans-serif">` elements: no font file is read and
//! the browser renders the text, so the charts depend on nothing outside the page.
//!
//! Time charts put simulated seconds on x, shade the warm-up and mark each fault with a
//! dashed vertical line and its label. Latency percentile charts use HDR Histogram's
//! x-axis: -log10(1 - p), so 90, 99, 99.9 and 99.99 are evenly spaced and the tail shows.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::result::{BenchResult, CurvePoint, Sweep};
use crate::write::ReportError;

const CHART_SIZE: (u32, u32) = (960, 380);
const FONT: &str = "sans-serif";
const PUBLISH_COLOR: RGBColor = RGBColor(31, 119, 180);
const CONSUME_COLOR: RGBColor = RGBColor(255, 127, 14);
const BACKLOG_COLOR: RGBColor = RGBColor(44, 160, 44);
const FAULT_COLOR: RGBColor = RGBColor(214, 39, 40);
const WARMUP_COLOR: RGBColor = RGBColor(225, 225, 225);
const GRID_COLOR: RGBColor = RGBColor(238, 238, 238);
/// Fault labels cycle through this many heights so neighbours do not overprint.
const FAULT_LABEL_ROWS: usize = 4;

type Chart<'a, 'b, X = RangedCoordf64> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, RangedCoordf64>>;

/// A linear f64 axis whose ticks are exactly the given values. plotters' own `with_key_points`
/// on f64 has no label formatter, and the percentile and sweep axes need their own labels.
struct TickedAxis {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        assert!(span > 0.0, "reports: empty chart axis {:?}", self.range);
        let fraction = (value - self.range.start) / span;
        limit.0 + (fraction * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// One line of a chart; `None` values leave a gap (a second without samples).
struct Series {
    name: &'static str,
    color: RGBColor,
    points: Vec<(f64, Option<f64>)>,
}

fn chart_error(error: impl std::fmt::Display) -> ReportError {
    ReportError::Chart(error.to_string())
}

/// Publish and consume records per second over simulated time.
pub(crate) fn throughput_chart(result: &BenchResult) -> Result<String, ReportError> {
    let publish = timeline_series(result, "publish (acknowledged)", PUBLISH_COLOR, |p| {
        Some(p.publish_rate)
    });
    let consume = timeline_series(result, "consume (polled)", CONSUME_COLOR, |p| {
        Some(p.consume_rate)
    });
    time_chart(result, "Throughput", "records/s", &[publish, consume])
}

/// Consumer backlog (records) over simulated time.
pub(crate) fn backlog_chart(result: &BenchResult) -> Result<String, ReportError> {
    let backlog = timeline_series(result, "backlog", BACKLOG_COLOR, |p| {
        p.backlog.map(|records| records as f64)
    });
    time_chart(result, "Consumer backlog", "records", &[backlog])
}

/// Publish latency p99 per second over simulated time.
pub(crate) fn p99_chart(result: &BenchResult) -> Result<String, ReportError> {
    let p99 = timeline_series(result, "publish p99", PUBLISH_COLOR, |p| p.p99_ms);
    time_chart(result, "Publish latency p99 per second", "ms", &[p99])
}

fn timeline_series(
    result: &BenchResult,
    name: &'static str,
    color: RGBColor,
    value: impl Fn(&crate::result::TimelinePoint) -> Option<f64>,
) -> Series {
    let points = result
        .timeline
        .iter()
        .map(|point| (point.t_s as f64 + 0.5, value(point)))
        .collect();
    Series {
        name,
        color,
        points,
    }
}

fn time_chart(
    result: &BenchResult,
    title: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<String, ReportError> {
    let x_max = result.duration_s.max(result.timeline.len() as f64).max(1.0);
    let y_max = headroom(series_max(series));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .light_line_style(GRID_COLOR)
            .x_desc("simulated time (s)")
            .y_desc(y_desc)
            .y_label_formatter(&|v| short_number(*v))
            .draw()
            .map_err(chart_error)?;
        draw_warmup(&mut chart, result.warmup_s, y_max)?;
        for line in series {
            draw_line(&mut chart, line)?;
        }
        draw_faults(&mut chart, result, x_max, y_max)?;
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

fn draw_warmup(chart: &mut Chart, warmup_s: f64, y_max: f64) -> Result<(), ReportError> {
    if warmup_s <= 0.0 {
        return Ok(());
    }
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(0.0, 0.0), (warmup_s, y_max)],
            WARMUP_COLOR.mix(0.6).filled(),
        )))
        .map_err(chart_error)?
        .label("warm-up (excluded)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], WARMUP_COLOR.filled()));
    Ok(())
}

/// Draws `series` as connected runs of present values, with its legend entry once.
fn draw_line(chart: &mut Chart, series: &Series) -> Result<(), ReportError> {
    let mut labelled = false;
    for run in present_runs(&series.points) {
        let color = series.color;
        let style = color.stroke_width(2);
        let annotation = if run.len() == 1 {
            chart.draw_series(std::iter::once(Circle::new(run[0], 2, color.filled())))
        } else {
            chart.draw_series(LineSeries::new(run, style))
        }
        .map_err(chart_error)?;
        if !labelled {
            annotation
                .label(series.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            labelled = true;
        }
    }
    Ok(())
}

/// Splits points at `None` values into runs of consecutive present values.
fn present_runs(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for &(x, y) in points {
        match y {
            Some(y) => current.push((x, y)),
            None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

fn draw_faults(
    chart: &mut Chart,
    result: &BenchResult,
    x_max: f64,
    y_max: f64,
) -> Result<(), ReportError> {
    for (index, fault) in result.faults.iter().enumerate() {
        let line = DashedLineSeries::new(
            vec![(fault.t_s, 0.0), (fault.t_s, y_max)],
            6,
            4,
            FAULT_COLOR.stroke_width(1),
        );
        let annotation = chart.draw_series(line).map_err(chart_error)?;
        if index == 0 {
            annotation.label("fault").legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], FAULT_COLOR.stroke_width(1))
            });
        }
        let row = (index % FAULT_LABEL_ROWS) as f64;
        let position = (fault.t_s + x_max * 0.004, y_max * (0.99 - 0.055 * row));
        let style = (FONT, 12).into_font().color(&FAULT_COLOR);
        chart
            .draw_series(std::iter::once(Text::new(
                fault.label.clone(),
                position,
                style,
            )))
            .map_err(chart_error)?;
    }
    Ok(())
}

fn draw_legend<'a, 'b: 'a, X: Ranged<ValueType = f64>>(
    chart: &mut Chart<'a, 'b, X>,
    position: SeriesLabelPosition,
) -> Result<(), ReportError> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(chart_error)
}

/// Publish and end-to-end latency by percentile, HDR Histogram style.
pub(crate) fn latency_chart(result: &BenchResult) -> Result<String, ReportError> {
    let publish = curve_series(
        "publish (send to ack)",
        PUBLISH_COLOR,
        &result.publish_latency_curve_ms,
    );
    let end_to_end = curve_series(
        "end-to-end (send to poll)",
        CONSUME_COLOR,
        &result.end_to_end_latency_curve_ms,
    );
    let series = [publish, end_to_end];
    let x_reach = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(x, _)| *x))
        .fold(0.0, f64::max);
    let x_axis_max = if x_reach > 4.0 + 1e-9 { 5.0 } else { 4.0 };
    let key_points: Vec<f64> = (0..=x_axis_max as u32).map(f64::from).collect();
    let y_max = headroom(series_max(&series));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Latency by percentile", (FONT, 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(
                TickedAxis {
                    range: 0.0..x_axis_max,
                    ticks: key_points,
                },
                0f64..y_max,
            )
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .light_line_style(GRID_COLOR)
            .x_desc("percentile (%)")
            .y_desc("latency (ms)")
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|v| short_number(*v))
            .draw()
            .map_err(chart_error)?;
        for line in &series {
            for run in present_runs(&line.points) {
                let style = line.color.stroke_width(2);
                chart
                    .draw_series(LineSeries::new(run, style))
                    .map_err(chart_error)?
                    .label(line.name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            }
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

fn curve_series(name: &'static str, color: RGBColor, curve: &[CurvePoint]) -> Series {
    let points = curve
        .iter()
        .map(|point| (percentile_x(point.percentile), Some(point.ms)))
        .collect();
    Series {
        name,
        color,
        points,
    }
}

/// HDR Histogram's percentile axis: 0 -> 0, 90 -> 1, 99 -> 2, 99.9 -> 3.
fn percentile_x(percentile: f64) -> f64 {
    assert!(
        (0.0..100.0).contains(&percentile),
        "reports: percentile {percentile} outside [0, 100)"
    );
    -(1.0 - percentile / 100.0).log10()
}

/// The inverse of [`percentile_x`] at whole axis steps: "0", "90", "99", "99.9", "99.99".
fn percentile_label(x: f64) -> String {
    if x <= 0.0 {
        return "0".to_string();
    }
    let decimals = (x.round() as usize).saturating_sub(2);
    format!("{:.*}", decimals, 100.0 * (1.0 - 10f64.powf(-x)))
}

/// Publish and consume throughput against the swept parameter values.
pub(crate) fn sweep_throughput_chart(sweep: &Sweep) -> Result<String, ReportError> {
    let publish = sweep_series(sweep, "publish records/s", PUBLISH_COLOR, |r| {
        r.publish_rate
    });
    let consume = sweep_series(sweep, "consume records/s", CONSUME_COLOR, |r| {
        r.consume_rate
    });
    sweep_chart(
        sweep,
        "Throughput by swept value",
        "records/s",
        &[publish, consume],
    )
}

/// Publish and end-to-end p99 latency against the swept parameter values.
pub(crate) fn sweep_p99_chart(sweep: &Sweep) -> Result<String, ReportError> {
    let publish = sweep_series(sweep, "publish p99", PUBLISH_COLOR, |r| {
        r.publish_latency_ms.p99
    });
    let end_to_end = sweep_series(sweep, "end-to-end p99", CONSUME_COLOR, |r| {
        r.end_to_end_latency_ms.p99
    });
    sweep_chart(
        sweep,
        "p99 latency by swept value",
        "ms",
        &[publish, end_to_end],
    )
}

fn sweep_series(
    sweep: &Sweep,
    name: &'static str,
    color: RGBColor,
    value: impl Fn(&BenchResult) -> f64,
) -> Series {
    let points = sweep
        .points
        .iter()
        .enumerate()
        .map(|(index, point)| (index as f64, Some(value(&point.result))))
        .collect();
    Series {
        name,
        color,
        points,
    }
}

/// Swept points evenly spaced on x (labelled by their values), so numeric and named values
/// (acks=1 / all) chart alike.
fn sweep_chart(
    sweep: &Sweep,
    title: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<String, ReportError> {
    let labels: Vec<String> = sweep
        .points
        .iter()
        .map(|p| sweep_value_label(sweep, p))
        .collect();
    let count = labels.len().max(1);
    let key_points: Vec<f64> = (0..count).map(|i| i as f64).collect();
    let y_max = headroom(series_max(series));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(
                TickedAxis {
                    range: -0.5..count as f64 - 0.5,
                    ticks: key_points,
                },
                0f64..y_max,
            )
            .map_err(chart_error)?;
        let formatter = |x: &f64| {
            let index = x.round();
            if index < 0.0 {
                return String::new();
            }
            labels.get(index as usize).cloned().unwrap_or_default()
        };
        chart
            .configure_mesh()
            .light_line_style(GRID_COLOR)
            .x_desc(sweep.parameters().join(" / "))
            .y_desc(y_desc)
            .x_label_formatter(&formatter)
            .y_label_formatter(&|v| short_number(*v))
            .draw()
            .map_err(chart_error)?;
        for line in series {
            let style = line.color.stroke_width(2);
            let points: Vec<(f64, f64)> = line
                .points
                .iter()
                .filter_map(|&(x, y)| y.map(|y| (x, y)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), style))
                .map_err(chart_error)?
                .label(line.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 4, line.color.filled())),
                )
                .map_err(chart_error)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// The swept values of a point, without parameter names (the axis title has them).
fn sweep_value_label(sweep: &Sweep, point: &crate::result::SweepPoint) -> String {
    let parameters = sweep.parameters();
    let values: Vec<&str> = parameters
        .iter()
        .map(|parameter| point.value_of(parameter))
        .collect();
    values.join(" / ")
}

fn series_max(series: &[Series]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|(_, y)| *y))
        .fold(0.0, f64::max)
}

/// Room above the highest value for the legend and fault labels; at least 1 so an
/// all-zero chart still has an axis.
fn headroom(max: f64) -> f64 {
    if max > 0.0 {
        max * 1.25
    } else {
        1.0
    }
}

/// Axis numbers: 1500000 -> "1.5M", 12000 -> "12k", 0.25 -> "0.25".
fn short_number(value: f64) -> String {
    let magnitude = value.abs();
    let (scaled, suffix) = if magnitude >= 1e9 {
        (value / 1e9, "G")
    } else if magnitude >= 1e6 {
        (value / 1e6, "M")
    } else if magnitude >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis_spaces_nines_evenly() {
        assert_eq!(percentile_x(0.0), 0.0);
        assert!((percentile_x(90.0) - 1.0).abs() < 1e-9);
        assert!((percentile_x(99.0) - 2.0).abs() < 1e-9);
        assert!((percentile_x(99.9) - 3.0).abs() < 1e-9);
        let labels: Vec<String> = (0..=5).map(|x| percentile_label(f64::from(x))).collect();
        assert_eq!(labels, ["0", "90", "99", "99.9", "99.99", "99.999"]);
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short_number(1_500_000.0), "1.5M");
        assert_eq!(short_number(12_000.0), "12k");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(2.0e9), "2G");
    }

    #[test]
    fn gaps_split_a_series_into_runs() {
        let points = [
            (0.0, Some(1.0)),
            (1.0, Some(2.0)),
            (2.0, None),
            (3.0, Some(4.0)),
            (4.0, None),
        ];
        assert_eq!(
            present_runs(&points),
            vec![vec![(0.0, 1.0), (1.0, 2.0)], vec![(3.0, 4.0)]]
        );
    }
}
