//! `omb.json`: a run in the shape of OpenMessaging Benchmark's result file, so OMB's chart
//! scripts (`bin/create_charts.py`) and dashboards built on OMB results read kafsim runs.
//!
//! Field names and units follow OMB's `TestResult` (openmessaging/benchmark,
//! `benchmark-framework/.../TestResult.java`) as its `WorkloadGenerator` fills them:
//! - `publishRate`, `consumeRate` (messages/s), `backlog` (messages) and the per-window
//!   latency lists are one entry per stats window. OMB's windows are 10 s; kafsim's runs are
//!   seconds long, so a window here is **one second** of simulated time inside the measured
//!   window (warm-up and the partial last second left out). Per-window latencies come from
//!   the per-second timeline where it has them (`publishLatency99pct`); the other per-window
//!   latency lists hold one entry, the whole measured window.
//! - Latencies are milliseconds (`double`), as OMB converts its microsecond histograms.
//! - `aggregated*` fields cover the measured window; `aggregated*Quantiles` map a percentile
//!   (a JSON key such as `"99.9"`) to milliseconds, read off kafsim's percentile curve.
//!   The 75th, 99.99th and 99.999th percentiles are read off the same curve (its nearest point
//!   at or above the percentile, steps of 0.05 on the -log10(1 - p) axis).
//! - OMB's `publishDelayLatency*` and `aggregatedPublishDelayLatency*` are how late each send
//!   was handed to the client against the rate's schedule (`MessageProducer.sendMessage`:
//!   `sendTime - intendedSendTime` from `UniformRateLimiter.acquire`, recorded for successful
//!   sends in `WorkerStats.recordProducerSuccess`). OMB keeps them in **microseconds** (whole
//!   numbers, not converted as its other latencies are), and so does this file. They are
//!   left out when no producer has a rate (`rate = "max"` has no schedule).

use serde_json::{json, Map, Value};

use crate::result::{BenchResult, CurvePoint, LatencySummary};

/// The workload's shape, as OMB names it (`TestResult.messageSize`, `topics`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OmbShape {
    /// OMB's `driver`: here the client library (and the sweep point, if any).
    pub driver: String,
    pub message_size: u64,
    pub topics: u32,
    pub partitions: u32,
    pub producers_per_topic: u32,
    pub consumers_per_topic: u32,
}

/// The `omb.json` document of one run (pretty-printed, ending in a newline).
pub fn render_omb(result: &BenchResult, shape: &OmbShape) -> String {
    let window: Vec<_> = result
        .timeline
        .iter()
        .filter(|p| p.t_s as f64 >= result.warmup_s && (p.t_s + 1) as f64 <= result.duration_s)
        .collect();
    let publish_rate: Vec<f64> = window.iter().map(|p| p.publish_rate).collect();
    let consume_rate: Vec<f64> = window.iter().map(|p| p.consume_rate).collect();
    let backlog: Vec<u64> = window.iter().map(|p| p.backlog.unwrap_or(0)).collect();
    let publish_p99: Vec<f64> = window.iter().map(|p| p.p99_ms.unwrap_or(0.0)).collect();
    let pub_lat = &result.publish_latency_ms;
    let e2e = &result.end_to_end_latency_ms;
    let pub_curve = &result.publish_latency_curve_ms;
    let e2e_curve = &result.end_to_end_latency_curve_ms;
    let mut doc = Map::new();
    let mut put = |k: &str, v: Value| {
        doc.insert(k.to_string(), v);
    };
    put("workload", json!(result.workload));
    put("driver", json!(shape.driver));
    put("messageSize", json!(shape.message_size));
    put("topics", json!(shape.topics));
    put("partitions", json!(shape.partitions));
    put("producersPerTopic", json!(shape.producers_per_topic));
    put("consumersPerTopic", json!(shape.consumers_per_topic));
    put("publishRate", json!(publish_rate));
    put("publishErrorRate", json!(vec![0.0; publish_rate.len()]));
    put("consumeRate", json!(consume_rate));
    put("backlog", json!(backlog));
    put("publishLatencyAvg", json!([result.publish_latency_avg_ms]));
    put("publishLatency50pct", json!([pub_lat.p50]));
    put("publishLatency75pct", json!([at(pub_curve, 75.0)]));
    put("publishLatency95pct", json!([pub_lat.p95]));
    put("publishLatency99pct", json!(publish_p99));
    put("publishLatency999pct", json!([pub_lat.p999]));
    put("publishLatency9999pct", json!([at(pub_curve, 99.99)]));
    put("publishLatency99999pct", json!([at(pub_curve, 99.999)]));
    put("publishLatencyMax", json!([pub_lat.max]));
    aggregated(
        &mut put,
        "Publish",
        result.publish_latency_avg_ms,
        pub_lat,
        pub_curve,
    );
    if let Some(delay) = &result.publish_delay_ms {
        publish_delay(
            &mut put,
            result.publish_delay_avg_ms,
            delay,
            &result.publish_delay_curve_ms,
        );
    }
    put(
        "endToEndLatencyAvg",
        json!([result.end_to_end_latency_avg_ms]),
    );
    put("endToEndLatency50pct", json!([e2e.p50]));
    put("endToEndLatency75pct", json!([at(e2e_curve, 75.0)]));
    put("endToEndLatency95pct", json!([e2e.p95]));
    put("endToEndLatency99pct", json!([e2e.p99]));
    put("endToEndLatency999pct", json!([e2e.p999]));
    put("endToEndLatency9999pct", json!([at(e2e_curve, 99.99)]));
    put("endToEndLatency99999pct", json!([at(e2e_curve, 99.999)]));
    put("endToEndLatencyMax", json!([e2e.max]));
    aggregated(
        &mut put,
        "EndToEnd",
        result.end_to_end_latency_avg_ms,
        e2e,
        e2e_curve,
    );
    let mut text =
        serde_json::to_string_pretty(&Value::Object(doc)).expect("an OMB document serializes");
    text.push('\n');
    text
}

/// `aggregated{kind}Latency{Avg,50pct,...,Max}` and `aggregated{kind}LatencyQuantiles`.
fn aggregated(
    put: &mut impl FnMut(&str, Value),
    kind: &str,
    avg: f64,
    summary: &LatencySummary,
    curve: &[CurvePoint],
) {
    let name = |suffix: &str| format!("aggregated{kind}Latency{suffix}");
    put(&name("Avg"), json!(avg));
    put(&name("50pct"), json!(summary.p50));
    put(&name("75pct"), json!(at(curve, 75.0)));
    put(&name("95pct"), json!(summary.p95));
    put(&name("99pct"), json!(summary.p99));
    put(&name("999pct"), json!(summary.p999));
    put(&name("9999pct"), json!(at(curve, 99.99)));
    put(&name("99999pct"), json!(at(curve, 99.999)));
    put(&name("Max"), json!(summary.max));
    let quantiles: Map<String, Value> = curve
        .iter()
        .map(|p| (format!("{:?}", p.percentile), json!(p.ms)))
        .collect();
    put(&name("Quantiles"), Value::Object(quantiles));
}

/// `publishDelayLatency{Avg,50pct,...,Max}` (one window) and
/// `aggregatedPublishDelayLatency{...,Quantiles}`, in whole microseconds as OMB writes them
/// (`TestResult`: `List<Long>` / `long`; the average a `double`).
fn publish_delay(
    put: &mut impl FnMut(&str, Value),
    avg_ms: f64,
    summary: &LatencySummary,
    curve: &[CurvePoint],
) {
    let us = |ms: f64| (ms * 1000.0).round() as u64;
    let fields = [
        ("50pct", us(summary.p50)),
        ("75pct", us(at(curve, 75.0))),
        ("95pct", us(summary.p95)),
        ("99pct", us(summary.p99)),
        ("999pct", us(summary.p999)),
        ("9999pct", us(at(curve, 99.99))),
        ("Max", us(summary.max)),
    ];
    put("publishDelayLatencyAvg", json!([avg_ms * 1000.0]));
    put("aggregatedPublishDelayLatencyAvg", json!(avg_ms * 1000.0));
    for (suffix, value) in fields {
        put(&format!("publishDelayLatency{suffix}"), json!([value]));
        put(
            &format!("aggregatedPublishDelayLatency{suffix}"),
            json!(value),
        );
    }
    let quantiles: Map<String, Value> = curve
        .iter()
        .map(|p| (format!("{:?}", p.percentile), json!(us(p.ms))))
        .collect();
    put(
        "aggregatedPublishDelayLatencyQuantiles",
        Value::Object(quantiles),
    );
}

/// The latency at `percentile` read off a curve: its first point at or above it (the last
/// point when the curve stops short; 0 for an empty curve).
fn at(curve: &[CurvePoint], percentile: f64) -> f64 {
    curve
        .iter()
        .find(|p| p.percentile >= percentile - 1e-9)
        .or(curve.last())
        .map_or(0.0, |p| p.ms)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::Recorder;

    fn shape() -> OmbShape {
        OmbShape {
            driver: "kafsim java".into(),
            message_size: 100,
            topics: 1,
            partitions: 6,
            producers_per_topic: 1,
            consumers_per_topic: 1,
        }
    }

    /// 1000 records/s for 3 s, latency 2 ms publish and 5 ms end to end, warm-up 1 s.
    fn run() -> BenchResult {
        let mut recorder = Recorder::new(Duration::from_secs(1));
        for i in 0..2_990u64 {
            let sent = i * 1_000_000;
            recorder.on_publish(sent, sent + 2_000_000, 100);
            recorder.on_consume(sent, sent + 5_000_000, 100);
        }
        recorder.finish("w", "default", Duration::from_secs(3))
    }

    #[test]
    fn fields_and_units_are_omb_s() {
        let doc: Value = serde_json::from_str(&render_omb(&run(), &shape())).unwrap();
        // Seconds 1 and 2 are measured (second 0 is warm-up).
        assert_eq!(doc["publishRate"].as_array().unwrap().len(), 2);
        assert!((doc["publishRate"][0].as_f64().unwrap() - 1000.0).abs() < 1.0);
        assert!((doc["aggregatedPublishLatency50pct"].as_f64().unwrap() - 2.0).abs() < 0.01);
        assert!((doc["aggregatedEndToEndLatency99pct"].as_f64().unwrap() - 5.0).abs() < 0.01);
        assert!((doc["aggregatedEndToEndLatency75pct"].as_f64().unwrap() - 5.0).abs() < 0.01);
        let quantiles = doc["aggregatedPublishLatencyQuantiles"]
            .as_object()
            .unwrap();
        let percentiles: Vec<f64> = quantiles
            .keys()
            .map(|k| k.parse::<f64>().expect("quantile keys are numbers"))
            .collect();
        assert!(percentiles.len() > 10);
        assert!(percentiles.iter().any(|p| *p >= 99.9 && *p < 100.0));
        assert_eq!(doc["messageSize"], 100);
        assert_eq!(doc["driver"], "kafsim java");
        // No producer had a rate: no schedule, no publish delay fields.
        assert!(doc.get("publishDelayLatency99pct").is_none());
    }

    #[test]
    fn publish_delay_is_in_whole_microseconds_as_omb_writes_it() {
        let mut recorder = Recorder::new(Duration::from_secs(1));
        for i in 0..2_990u64 {
            let sent = i * 1_000_000;
            // Every send leaves 250 us behind its schedule.
            recorder.on_publish_delay(sent - sent.min(250_000), sent);
            recorder.on_publish(sent, sent + 2_000_000, 100);
        }
        let result = recorder.finish("w", "default", Duration::from_secs(3));
        let doc: Value = serde_json::from_str(&render_omb(&result, &shape())).unwrap();
        assert_eq!(doc["aggregatedPublishDelayLatency50pct"], 250);
        assert_eq!(doc["aggregatedPublishDelayLatencyMax"], 250);
        assert_eq!(doc["publishDelayLatency99pct"], json!([250]));
        assert!((doc["aggregatedPublishDelayLatencyAvg"].as_f64().unwrap() - 250.0).abs() < 1.0);
        let quantiles = doc["aggregatedPublishDelayLatencyQuantiles"]
            .as_object()
            .unwrap();
        assert!(quantiles.values().all(|v| v == 250));
        // The publish latency stays in milliseconds.
        assert!((doc["aggregatedPublishLatency50pct"].as_f64().unwrap() - 2.0).abs() < 0.01);
    }

    #[test]
    fn an_empty_run_still_renders() {
        let recorder = Recorder::new(Duration::ZERO);
        let result = recorder.finish("w", "default", Duration::from_secs(1));
        let doc: Value = serde_json::from_str(&render_omb(&result, &shape())).unwrap();
        assert_eq!(doc["aggregatedEndToEndLatencyMax"], 0.0);
    }
}
