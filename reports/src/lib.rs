//! kafsim-reports: turns what a benchmark run measured into numbers and reports.
//!
//! The simulator feeds a [`Recorder`] plain numbers in simulated nanoseconds (when a record
//! was sent, acknowledged, polled; the consumer backlog; fault events). The recorder keeps
//! only HDR histograms and per-second buckets, so its memory does not grow with the number
//! of records. [`Recorder::finish`] gives a [`BenchResult`], which renders as
//! kafka-producer-perf-test style text ([`render_text`]), the `--json` document
//! ([`render_json`]), or a whole report directory ([`write_report`]: `index.html` with
//! inline SVG charts, `results.json`, `summary.md`), written atomically.
//!
//! Architecture invariant: this crate knows nothing of the engine or the simulator; it
//! takes numbers and strings, so it can be tested on distributions it builds itself.

mod charts;
mod html;
mod json;
mod markdown;
mod metrics;
mod result;
mod text;
mod timeline;
mod write;

pub use html::render_html;
pub use json::{render_json, render_results_json};
pub use markdown::render_markdown;
pub use metrics::{Recorder, LATENCY_MAX_US, LATENCY_SIGNIFICANT_DIGITS, MAX_FAULTS};
pub use result::{
    BenchResult, CurvePoint, FaultMark, LatencySummary, Sweep, SweepPoint, TimelinePoint,
};
pub use text::render_text;
pub use timeline::MAX_TIMELINE_SECONDS;
pub use write::{write_report, ReportError, REPORT_MARKER};
