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
//! ```
//! use std::time::Duration;
//! use kafsim_reports::{render_text, Recorder};
//!
//! let mut recorder = Recorder::new(Duration::from_secs(1)); // warm-up
//! let ms = 1_000_000; // simulated nanoseconds
//! for i in 0..3_000u64 {
//!     let sent = i * ms;
//!     recorder.on_publish(sent, sent + 2 * ms, 100); // sent, acknowledged, bytes
//!     recorder.on_consume(sent, sent + 5 * ms, 100); // sent, polled, bytes
//! }
//! recorder.on_backlog(1_500 * ms, 3);
//! recorder.on_fault(2_000 * ms, "crash broker-1");
//! let result = recorder.finish("my-workload", "default", Duration::from_secs(3));
//! assert_eq!(result.records_sent, 2_000); // sent after the warm-up
//! assert!(render_text(&result).starts_with("2000 records sent, 1000.0 records/sec"));
//! ```
//!
//! Architecture invariant: this crate knows nothing of the engine or the simulator; it
//! takes numbers and strings, so it can be tested on distributions it builds itself.

mod charts;
mod html;
mod json;
mod markdown;
mod metrics;
mod omb;
mod result;
mod table;
mod text;
mod timeline;
mod write;

pub use html::render_html;
pub use json::{render_json, render_results_json};
pub use markdown::render_markdown;
pub use metrics::{Recorder, LATENCY_MAX_US, LATENCY_SIGNIFICANT_DIGITS, MAX_FAULTS};
pub use omb::{render_omb, OmbShape};
pub use result::{
    BenchResult, CurvePoint, DiskBound, FaultMark, LatencySummary, Sweep, SweepPoint,
    TimelinePoint, ViolationNote,
};
pub use text::render_text;
pub use timeline::MAX_TIMELINE_SECONDS;
pub use write::{write_atomically, write_bench_report, write_report, ReportError, REPORT_MARKER};
