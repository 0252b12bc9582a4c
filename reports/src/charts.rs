//! The report's charts as inline SVG strings, drawn with plotters' SVG backend.
//!
//! plotters is built without its `ttf` feature, so it uses its "naive" font metrics and the
//! SVG backend writes `<text font-family="sans-serif">` elements: no font file is read and
//! the browser renders the text, so the charts depend on nothing outside the page.
//!
//! Time charts put simulated seconds on x, shade the warm-up and mark each fault with a
//! dashed vertical line and its label. Latency percentile charts use HDR Histogram's
//! x-axis: -log10(1 - p), so 90, 99, 99.9 and 99.99 are evenly spaced and the tail shows.
//! Legends are drawn in a strip under the plot, so they never hide data or fault labels.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::result::{BenchResult, CurvePoint, Sweep, SweepPoint, TimelinePoint};
use crate::write::ReportError;

const CHART_SIZE: (u32, u32) = (960, 400);
/// Height of the legend strip under the plot.
const LEGEND_HEIGHT: u32 = 30;
/// Where the legend starts, about where the plot area does.
const LEGEND_LEFT: i32 = 84;
const FONT: &str = "sans-serif";
const PUBLISH_COLOR: RGBColor = RGBColor(31, 119, 180);
const CONSUME_COLOR: RGBColor = RGBColor(255, 127, 14);
const BACKLOG_COLOR: RGBColor = RGBColor(44, 160, 44);
const FAULT_COLOR: RGBColor = RGBColor(214, 39, 40);
const WARMUP_COLOR: RGBColor = RGBColor(228, 228, 228);
const GRID_COLOR: RGBColor = RGBColor(225, 225, 225);
const TEXT_COLOR: RGBColor = RGBColor(34, 34, 34);
/// Fault labels cycle through this many heights so neighbours do not overprint.
const FAULT_LABEL_ROWS: usize = 4;
/// At most this many ticks on a time axis.
const TIME_TICKS_MAX: f64 = 12.0;

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<TickedAxis, RangedCoordf64>>;

/// A linear f64 axis whose ticks are exactly the given values, so each chart chooses its
/// own (percentiles, swept values, round seconds). plotters' `with_key_points` on f64 has no
/// label formatter, hence this small coordinate type.
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

    /// The ticks for labels and grid lines; no light (minor) grid lines.
    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            return Vec::new();
        }
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

#[derive(Clone, Copy)]
enum Swatch {
    Line,
    Dashed,
    Box,
}

struct LegendEntry {
    name: String,
    color: RGBColor,
    swatch: Swatch,
}

impl LegendEntry {
    fn line(series: &Series) -> Self {
        LegendEntry {
            name: series.name.to_string(),
            color: series.color,
            swatch: Swatch::Line,
        }
    }
}

/// What every chart has: title, axes and their labels.
struct Frame<'f> {
    title: &'f str,
    x_axis: TickedAxis,
    x_desc: String,
    x_label: &'f dyn Fn(&f64) -> String,
    y_desc: &'f str,
    y_max: f64,
}

fn chart_error(error: impl std::fmt::Display) -> ReportError {
    ReportError::Chart(error.to_string())
}

/// Draws `frame`, lets `draw` fill the plot, and puts the legend entries it returns under it.
fn render(
    frame: Frame,
    draw: impl FnOnce(&mut Chart) -> Result<Vec<LegendEntry>, ReportError>,
) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let (upper, strip) = root.split_vertically(CHART_SIZE.1 - LEGEND_HEIGHT);
        let mut chart = ChartBuilder::on(&upper)
            .caption(frame.title, (FONT, 22).into_font().color(&TEXT_COLOR))
            .margin_top(8)
            .margin_left(12)
            .margin_right(40)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(frame.x_axis, 0f64..frame.y_max)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .bold_line_style(GRID_COLOR)
            .max_light_lines(0)
            .label_style((FONT, 15).into_font().color(&TEXT_COLOR))
            .axis_desc_style((FONT, 16).into_font().color(&TEXT_COLOR))
            .x_desc(frame.x_desc)
            .y_desc(frame.y_desc)
            .x_label_formatter(frame.x_label)
            .y_label_formatter(&|v| short_number(*v))
            .draw()
            .map_err(chart_error)?;
        let legend = draw(&mut chart)?;
        draw_legend(&strip, &legend)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// The legend as a row of swatches and names.
fn draw_legend(
    strip: &DrawingArea<SVGBackend, Shift>,
    entries: &[LegendEntry],
) -> Result<(), ReportError> {
    let middle = LEGEND_HEIGHT as i32 / 2;
    let mut x = LEGEND_LEFT;
    for entry in entries {
        let stroke = entry.color.stroke_width(2);
        match entry.swatch {
            Swatch::Line => strip.draw(&PathElement::new(
                vec![(x, middle), (x + 24, middle)],
                stroke,
            )),
            Swatch::Dashed => (0..3).try_for_each(|dash| {
                let start = x + dash * 9;
                strip.draw(&PathElement::new(
                    vec![(start, middle), (start + 5, middle)],
                    stroke,
                ))
            }),
            Swatch::Box => strip.draw(&Rectangle::new(
                [(x, middle - 6), (x + 24, middle + 6)],
                entry.color.filled(),
            )),
        }
        .map_err(chart_error)?;
        let style = TextStyle::from((FONT, 16).into_font())
            .color(&TEXT_COLOR)
            .pos(Pos::new(HPos::Left, VPos::Center));
        strip
            .draw(&Text::new(entry.name.clone(), (x + 30, middle), style))
            .map_err(chart_error)?;
        x += 30 + estimated_text_width(&entry.name) + 28;
    }
    Ok(())
}

/// Width in pixels of `text` at the legend's 13 px: browsers lay out the text, this only
/// spaces the entries.
fn estimated_text_width(text: &str) -> i32 {
    (text.chars().count() as f64 * 7.2).ceil() as i32
}

/// Publish and consume records per second over simulated time.
pub(crate) fn throughput_chart(result: &BenchResult) -> Result<String, ReportError> {
    let publish = timeline_series(result, "publish (acknowledged)", PUBLISH_COLOR, |p| {
        Some(p.publish_rate)
    });
    if !result.has_consumers() {
        return time_chart(result, "Throughput", "records/s", &[publish]);
    }
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
    let p99 = timeline_series(
        result,
        "publish p99 of the acks in each second",
        PUBLISH_COLOR,
        |p| p.p99_ms,
    );
    time_chart(result, "Publish latency p99 per second", "ms", &[p99])
}

/// A series with one point per timeline second, at the middle of the second, up to the end
/// of the run (the drain after it is not part of the measurement, and drawing it would show
/// a ramp-down that never happened under load).
fn timeline_series(
    result: &BenchResult,
    name: &'static str,
    color: RGBColor,
    value: impl Fn(&TimelinePoint) -> Option<f64>,
) -> Series {
    let points = result
        .timeline
        .iter()
        .filter(|point| (point.t_s as f64) < result.duration_s)
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
    let x_max = result.duration_s.max(1.0);
    let y_max = headroom(series_max(series));
    let frame = Frame {
        title,
        x_axis: TickedAxis {
            range: 0.0..x_max,
            ticks: round_ticks(x_max),
        },
        x_desc: "simulated time (s)".to_string(),
        x_label: &|x| short_number(*x),
        y_desc,
        y_max,
    };
    render(frame, |chart| {
        let mut legend = Vec::new();
        if result.warmup_s > 0.0 {
            draw_warmup(chart, result.warmup_s, y_max)?;
            legend.push(LegendEntry {
                name: if result.load_start_s.is_some() {
                    "readiness phase and warm-up (excluded)"
                } else {
                    "warm-up (excluded)"
                }
                .to_string(),
                color: WARMUP_COLOR,
                swatch: Swatch::Box,
            });
        }
        for line in series {
            draw_line(chart, line)?;
            legend.push(LegendEntry::line(line));
        }
        draw_faults(chart, result, x_max, y_max)?;
        if !result.faults.is_empty() {
            legend.push(LegendEntry {
                name: "fault".to_string(),
                color: FAULT_COLOR,
                swatch: Swatch::Dashed,
            });
        }
        Ok(legend)
    })
}

/// Ticks at a round step (1, 2 or 5 times a power of ten) from 0 to `x_max`.
fn round_ticks(x_max: f64) -> Vec<f64> {
    assert!(x_max > 0.0, "reports: time axis ends at {x_max}");
    let raw_step = x_max / TIME_TICKS_MAX;
    let power = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|factor| factor * power)
        .find(|step| *step >= raw_step)
        .expect("10 times the power of ten is at least the raw step");
    let count = (x_max / step + 1e-9).floor() as u32;
    (0..=count).map(|i| f64::from(i) * step).collect()
}

fn draw_warmup(chart: &mut Chart, warmup_s: f64, y_max: f64) -> Result<(), ReportError> {
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(0.0, 0.0), (warmup_s, y_max)],
            WARMUP_COLOR.mix(0.7).filled(),
        )))
        .map_err(chart_error)?;
    Ok(())
}

/// Draws `series` as connected runs of present values; a lone value is a dot.
fn draw_line(chart: &mut Chart, series: &Series) -> Result<(), ReportError> {
    for run in present_runs(&series.points) {
        let color = series.color;
        if run.len() == 1 {
            chart.draw_series(std::iter::once(Circle::new(run[0], 2, color.filled())))
        } else {
            chart.draw_series(LineSeries::new(run, color.stroke_width(2)))
        }
        .map_err(chart_error)?;
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

/// A dashed vertical line per fault, labelled near the top of the plot.
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
        chart.draw_series(line).map_err(chart_error)?;
        let row = (index % FAULT_LABEL_ROWS) as f64;
        let y = y_max * (0.985 - 0.05 * row);
        // Labels of late faults go left of their line so they stay inside the chart.
        let (x, anchor) = if fault.t_s > x_max * 0.7 {
            (fault.t_s - x_max * 0.004, HPos::Right)
        } else {
            (fault.t_s + x_max * 0.004, HPos::Left)
        };
        let style = TextStyle::from((FONT, 15).into_font())
            .color(&FAULT_COLOR)
            .pos(Pos::new(anchor, VPos::Top));
        let position = (x, y);
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

/// Publish latency by percentile, HDR Histogram style.
pub(crate) fn publish_latency_chart(result: &BenchResult) -> Result<String, ReportError> {
    let publish = curve_series(
        "publish (send to ack)",
        PUBLISH_COLOR,
        &result.publish_latency_curve_ms,
    );
    percentile_chart("Publish latency by percentile", publish)
}

/// End-to-end latency by percentile, in a panel of its own (it is often orders of magnitude
/// above publish latency, which one shared axis would flatten).
pub(crate) fn end_to_end_latency_chart(result: &BenchResult) -> Result<String, ReportError> {
    let end_to_end = curve_series(
        "end-to-end (send to poll)",
        CONSUME_COLOR,
        &result.end_to_end_latency_curve_ms,
    );
    percentile_chart("End-to-end latency by percentile", end_to_end)
}

fn percentile_chart(title: &str, line: Series) -> Result<String, ReportError> {
    let series = [line];
    let x_reach = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(x, _)| *x))
        .fold(0.0, f64::max);
    let x_axis_max = if x_reach > 4.0 + 1e-9 { 5.0 } else { 4.0 };
    let frame = Frame {
        title,
        x_axis: TickedAxis {
            range: 0.0..x_axis_max,
            ticks: (0..=x_axis_max as u32).map(f64::from).collect(),
        },
        x_desc: "percentile (%)".to_string(),
        x_label: &|x| percentile_label(*x),
        y_desc: "latency (ms)",
        y_max: headroom(series_max(&series)),
    };
    render(frame, |chart| {
        for line in &series {
            draw_line(chart, line)?;
        }
        Ok(series.iter().map(LegendEntry::line).collect())
    })
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
    let mut series = vec![publish];
    if sweep.has_consumers() {
        series.push(sweep_series(
            sweep,
            "consume records/s",
            CONSUME_COLOR,
            |r| r.consume_rate,
        ));
    }
    sweep_chart(sweep, "Throughput by swept value", "records/s", &series)
}

/// Publish p99 latency against the swept parameter values.
pub(crate) fn sweep_publish_p99_chart(sweep: &Sweep) -> Result<String, ReportError> {
    let publish = sweep_series(sweep, "publish p99", PUBLISH_COLOR, |r| {
        r.publish_latency_ms.p99
    });
    sweep_chart(
        sweep,
        "Publish p99 latency by swept value",
        "ms",
        &[publish],
    )
}

/// End-to-end p99 latency against the swept parameter values (a panel of its own).
pub(crate) fn sweep_end_to_end_p99_chart(sweep: &Sweep) -> Result<String, ReportError> {
    let end_to_end = sweep_series(sweep, "end-to-end p99", CONSUME_COLOR, |r| {
        r.end_to_end_latency_ms.p99
    });
    sweep_chart(
        sweep,
        "End-to-end p99 latency by swept value",
        "ms",
        &[end_to_end],
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
/// (acks=1 / all) chart alike. Later series are drawn thinner so equal values stay visible.
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
    let x_label = |x: &f64| {
        let index = x.round();
        if index < 0.0 {
            return String::new();
        }
        labels.get(index as usize).cloned().unwrap_or_default()
    };
    let frame = Frame {
        title,
        x_axis: TickedAxis {
            range: -0.5..count as f64 - 0.5,
            ticks: (0..count).map(|i| i as f64).collect(),
        },
        x_desc: sweep.parameters().join(" / "),
        x_label: &x_label,
        y_desc,
        y_max: headroom(series_max(series)),
    };
    render(frame, |chart| {
        for (index, line) in series.iter().enumerate() {
            let width = if index == 0 { 4 } else { 2 };
            let points: Vec<(f64, f64)> = line
                .points
                .iter()
                .filter_map(|&(x, y)| y.map(|y| (x, y)))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    points.clone(),
                    line.color.stroke_width(width),
                ))
                .map_err(chart_error)?;
            let radius = if index == 0 { 6 } else { 4 };
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, radius, line.color.filled())),
                )
                .map_err(chart_error)?;
        }
        Ok(series.iter().map(LegendEntry::line).collect())
    })
}

/// The swept values of a point, without parameter names (the axis title has them).
fn sweep_value_label(sweep: &Sweep, point: &SweepPoint) -> String {
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

/// Room above the highest value for fault labels; at least 1 so an all-zero chart still has
/// an axis.
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
    fn time_ticks_are_round_and_cover_the_axis() {
        assert_eq!(
            round_ticks(60.0),
            [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0]
        );
        assert_eq!(round_ticks(3.5), [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]);
        assert_eq!(round_ticks(1000.0).len(), 11);
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
