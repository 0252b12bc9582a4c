//! JSON output: the `--json FILE` document of one run, and `results.json` of a report.
//!
//! `results.json` wraps the runs so one schema serves a single run and a sweep:
//! `{"kafsim_report": 1, "runs": [BenchResult..], "sweep": null | {"parameters": [..],
//! "points": [{"assignments": {name: value}, "result": BenchResult}]}}`.

use serde_json::{json, Map, Value};

use crate::result::{BenchResult, Sweep};

/// Version of the `results.json` layout; bump it when a field changes meaning.
const REPORT_FORMAT_VERSION: u64 = 1;

/// The `--json FILE` document of one run (pretty-printed, ending in a newline).
pub fn render_json(result: &BenchResult) -> String {
    let mut text = serde_json::to_string_pretty(result).expect("a BenchResult always serializes");
    text.push('\n');
    text
}

/// The `results.json` of a report: the runs shown one by one, and the sweep if there is one.
pub fn render_results_json(results: &[BenchResult], sweep: Option<&Sweep>) -> String {
    let document = json!({
        "kafsim_report": REPORT_FORMAT_VERSION,
        "runs": results,
        "sweep": sweep.map(sweep_value),
    });
    let mut text = serde_json::to_string_pretty(&document).expect("a report always serializes");
    text.push('\n');
    text
}

fn sweep_value(sweep: &Sweep) -> Value {
    let points: Vec<Value> = sweep
        .points
        .iter()
        .map(|point| {
            let assignments: Map<String, Value> = point
                .assignments
                .iter()
                .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                .collect();
            json!({ "assignments": assignments, "result": point.result })
        })
        .collect();
    json!({ "parameters": sweep.parameters(), "points": points })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;
    use crate::metrics::Recorder;

    fn sample_result() -> BenchResult {
        let mut recorder = Recorder::new(Duration::from_millis(500));
        // Sends every ms until 1.99 s, so every poll is within the 2 s run.
        for i in 0..1_990u64 {
            let sent = i * 1_000_000;
            recorder.on_publish(sent, sent + 2_000_000, 100);
            recorder.on_consume(sent, sent + 5_000_000, 100);
        }
        recorder.on_backlog(1_000_000_000, 12);
        recorder.on_fault(1_200_000_000, "crash broker-1");
        recorder.finish("acks-all", "default", Duration::from_secs(2))
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn json_has_the_issue_field_names() {
        let value: Value = serde_json::from_str(&render_json(&sample_result())).unwrap();
        let top = keys(&value);
        for name in [
            "workload",
            "hardware",
            "publish_rate",
            "publish_mib_per_sec",
            "consume_rate",
            "publish_latency_ms",
            "end_to_end_latency_ms",
            "timeline",
        ] {
            assert!(top.contains(name), "missing {name}");
        }
        assert_eq!(value["workload"], "acks-all");
        assert_eq!(value["hardware"], "default");
        assert!(value["publish_rate"].is_f64());
        let latency = set(&["p50", "p95", "p99", "p999", "max"]);
        assert_eq!(keys(&value["publish_latency_ms"]), latency);
        assert_eq!(keys(&value["end_to_end_latency_ms"]), latency);
        let timeline = value["timeline"].as_array().unwrap();
        assert_eq!(timeline.len(), 2);
        for point in timeline {
            assert_eq!(
                keys(point),
                set(&["t_s", "publish_rate", "consume_rate", "backlog", "p99_ms"])
            );
        }
        assert_eq!(timeline[1]["backlog"], 12);
    }

    #[test]
    fn json_round_trips() {
        let result = sample_result();
        let text = render_json(&result);
        let back: BenchResult = serde_json::from_str(&text).unwrap();
        // serde_json parses floats to within one ulp, so compare what the same parser made
        // of the text with what the typed value holds.
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), parsed);
        assert_eq!(back.timeline, result.timeline);
    }

    #[test]
    fn results_json_holds_runs_and_sweep() {
        let mut sweep = Sweep::default();
        sweep.push(vec![("linger.ms".into(), "0".into())], sample_result());
        sweep.push(vec![("linger.ms".into(), "5".into())], sample_result());
        let value: Value =
            serde_json::from_str(&render_results_json(&[sample_result()], Some(&sweep))).unwrap();
        assert_eq!(keys(&value), set(&["kafsim_report", "runs", "sweep"]));
        assert_eq!(value["runs"].as_array().unwrap().len(), 1);
        assert_eq!(value["sweep"]["parameters"], json!(["linger.ms"]));
        assert_eq!(value["sweep"]["points"][1]["assignments"]["linger.ms"], "5");
        assert_eq!(
            value["sweep"]["points"][0]["result"]["workload"],
            "acks-all"
        );
        let without: Value = serde_json::from_str(&render_results_json(&[], None)).unwrap();
        assert!(without["sweep"].is_null());
    }
}
