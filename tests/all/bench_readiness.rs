//! `kafsim bench`'s readiness phase and publish delay (issue 16), read from the printed lines,
//! `--json` and `omb.json` users read: the load of a workload with consumer groups starts
//! once every group has its partitions and has read a probe record (OpenMessaging
//! Benchmark's `ensureTopicsAreReady`), so a three-member Java group's join (the broker's
//! `group.initial.rebalance.delay.ms`) is not measured; the publish delay is a send's lag
//! behind its rate's schedule (OMB's `publishDelayLatency`, microseconds in `omb.json`).

use std::path::PathBuf;
use std::process::Command;

/// 2000 records/s of 1 KiB, acks=all, 12 partitions RF 3, a group of three Java consumers.
const SERVICE: &str = r#"
name = "service"
duration = "3s"
warmup = "1s"
hardware = "i3en.2xlarge"

[cluster]
brokers = 3

[[topics]]
name = "events"
partitions = 12
replication_factor = 3

[[producers]]
client = "java"
topic = "events"
rate = RATE
keys = 1000
message_size = 1024
[producers.config]
acks = "all"
"#;

const GROUP: &str = r#"
[[consumer_groups]]
group = "readers"
members = 3
client = "java"
topics = ["events"]
[consumer_groups.config]
"auto.offset.reset" = "earliest"
"#;

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kafsim-readiness-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Bench `text`: its standard output, `--json` and the report's `omb.json`.
fn bench(test: &str, text: &str) -> (String, serde_json::Value, serde_json::Value) {
    let dir = scratch(test);
    let toml = dir.join("w.toml");
    let json = dir.join("w.json");
    let report = dir.join("report");
    std::fs::write(&toml, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kafsim"))
        .args(["bench", toml.to_str().unwrap(), "--json"])
        .arg(&json)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("kafsim runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    (
        String::from_utf8(out.stdout).unwrap(),
        read(json),
        read(report.join("omb.json")),
    )
}

fn f(v: &serde_json::Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_f64()
        .unwrap_or_else(|| panic!("{path:?} in {v}"))
}

/// The number after `prefix` in the line that contains it.
fn printed(stdout: &str, prefix: &str) -> f64 {
    let rest = stdout
        .split_once(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} not in {stdout}"))
        .1;
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number.parse().unwrap()
}

#[test]
fn the_load_starts_once_every_group_has_read_a_probe() {
    let text = format!("{}{GROUP}", SERVICE.replace("RATE", "2000"));
    let (stdout, v, _) = bench("group", &text);
    let start = f(&v, &["load_start_s"]);
    // The broker holds a new group's first join for group.initial.rebalance.delay.ms (3 s).
    assert!(start > 3.0, "load started at {start} s");
    assert_eq!(
        format!("{start:.2}"),
        format!("{:.2}", printed(&stdout, "load started at ")),
        "{stdout}"
    );
    assert!((f(&v, &["warmup_s"]) - (start + 1.0)).abs() < 1e-6);
    assert!((f(&v, &["duration_s"]) - (start + 3.0)).abs() < 1e-6);
    assert!(v["unready_groups"].as_array().unwrap().is_empty());
    // No catch-up in the window: the group reads what is written, as fast as it is written.
    let (publish, consume) = (f(&v, &["publish_rate"]), f(&v, &["consume_rate"]));
    assert!(
        (consume - publish).abs() <= publish * 0.02,
        "consume {consume}/s vs publish {publish}/s"
    );
    let p99 = f(&v, &["end_to_end_latency_ms", "p99"]);
    assert!(p99 < 20.0, "e2e p99 {p99} ms");
}

#[test]
fn a_producer_only_workload_starts_its_load_at_once() {
    let (stdout, v, _) = bench("producers", &SERVICE.replace("RATE", "2000"));
    assert!(v["load_start_s"].is_null());
    assert!(!stdout.contains("load started"), "{stdout}");
    assert_eq!(f(&v, &["warmup_s"]), 1.0);
}

#[test]
fn publish_delay_is_printed_and_in_omb_microseconds() {
    let (stdout, v, omb) = bench("delay", &SERVICE.replace("RATE", "2000"));
    let p50 = f(&v, &["publish_delay_ms", "p50"]);
    let max = f(&v, &["publish_delay_ms", "max"]);
    // 2000 records/s: sends fall due every 500 us and the application wakes once per ms.
    assert!(max > 0.0 && max < 1.0, "publish delay max {max} ms");
    assert_eq!(
        format!("{p50:.3}"),
        format!("{:.3}", printed(&stdout, "ms avg, ")),
        "{stdout}"
    );
    assert_eq!(
        omb["aggregatedPublishDelayLatency50pct"].as_u64(),
        Some((p50 * 1000.0).round() as u64)
    );
    assert_eq!(
        omb["publishDelayLatencyMax"][0].as_u64(),
        Some((max * 1000.0).round() as u64)
    );
    // No rate, no schedule: no delay anywhere.
    let (stdout, v, omb) = bench("max", &SERVICE.replace("RATE", "\"max\""));
    assert!(v["publish_delay_ms"].is_null());
    assert!(omb.get("aggregatedPublishDelayLatency50pct").is_none());
    assert!(!stdout.contains("publish delay"), "{stdout}");
}

#[test]
fn a_group_that_cannot_read_is_named_and_the_load_starts_after_60_s() {
    // auto.offset.reset = none and no committed offset: the members never get a position,
    // so the readiness phase gives up after OMB's 60 s and says which group and why.
    let text = format!("{}{GROUP}", SERVICE.replace("RATE", "1000"))
        .replace("duration = \"3s\"", "duration = \"2s\"")
        .replace("\"earliest\"", "\"none\"");
    let (stdout, v, _) = bench("unready", &text);
    let start = f(&v, &["load_start_s"]);
    assert!(start >= 60.0, "load started at {start} s");
    let unready = v["unready_groups"].as_array().unwrap();
    assert_eq!(unready.len(), 1, "{unready:?}");
    assert!(
        unready[0].as_str().unwrap().starts_with("readers: "),
        "{unready:?}"
    );
    assert!(
        stdout.contains("without waiting longer for: readers: "),
        "{stdout}"
    );
}
