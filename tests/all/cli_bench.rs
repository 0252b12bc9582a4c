//! `kafsim bench` end to end: a small workload gives perf-test text, `--json` and a report
//! directory; a sweep gives one row per grid point; bad input is exit status 2 with the file,
//! line and key, and `--report` into someone's non-empty directory is refused before running.

use crate::common::json_written_by;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kafsim_bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kafsim"))
        .arg("bench")
        .args(args)
        .output()
        .expect("kafsim runs")
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kafsim-cli-bench-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A tiny workload: 3 brokers, RF 3, one producer at 2000 records/s for 2 s, one consumer.
const SMALL: &str = r#"
name = "small"
duration = "2s"
drain = "5s"
warmup = "500ms"
hardware = "default"

[cluster]
brokers = 3

[[topics]]
name = "t"
partitions = 3
replication_factor = 3

[[producers]]
topic = "t"
rate = 2000
message_size = 100
[producers.config]
acks = "all"

[[consumer_groups]]
group = "g"
topics = ["t"]
[consumer_groups.config]
"auto.offset.reset" = "earliest"
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write workload");
    path.display().to_string()
}

fn assert_bad_input(out: &Output, stderr_says: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(stderr_says),
        "stderr {stderr:?} lacks {stderr_says:?}"
    );
}

#[test]
fn a_run_prints_perf_test_text_and_writes_json_and_a_report() {
    let dir = scratch("run");
    let workload = write(&dir, "small.toml", SMALL);
    let json = dir.join("out.json");
    let report = dir.join("report");
    let out = kafsim_bench(&[
        &workload,
        "--json",
        json.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let v = json_written_by(&out, &json);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("records sent,"), "{stdout}");
    let rate = v["publish_rate"].as_f64().unwrap();
    assert!((rate - 2000.0).abs() < 100.0, "publish rate {rate}");
    assert!(v["end_to_end_latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(report.join("index.html").is_file());
    // Deterministic: the same workload gives the same JSON.
    let again = dir.join("again.json");
    kafsim_bench(&[&workload, "--json", again.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(&json).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

#[test]
fn faults_are_marked_and_a_faultless_run_marks_none() {
    let dir = scratch("faults");
    let faults = r#"
[faults]
random = false
[[faults.schedule]]
at = "1s"
action = "crash"
target = "leader:t/0"
"#;
    for (name, text, want) in [
        ("calm.toml", SMALL.to_string(), vec![]),
        (
            "crash.toml",
            format!("{SMALL}{faults}"),
            vec!["crash", "heal"],
        ),
    ] {
        let workload = write(&dir, name, &text);
        let json = dir.join(format!("{name}.json"));
        let out = kafsim_bench(&[&workload, "--json", json.to_str().unwrap()]);
        let v = json_written_by(&out, &json);
        let labels: Vec<String> = v["faults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                f["label"]
                    .as_str()
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .trim_end_matches(':')
                    .to_string()
            })
            .collect();
        assert_eq!(labels, want, "{name}");
    }
}

#[test]
fn a_sweep_prints_one_row_per_point() {
    let dir = scratch("sweep");
    let workload = write(&dir, "small.toml", SMALL);
    let out = kafsim_bench(&[&workload, "--sweep", "linger.ms=0,20"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].contains("linger.ms") && lines[0].contains("records/s"));
}

/// Per sweep point of `kafsim bench --sweep ... --json`: (value, the result's `field.p50`).
fn swept_p50(workload: &str, sweep: &str, field: &str) -> Vec<(String, f64)> {
    let json = format!("{workload}.{}.json", sweep.replace(['=', ','], "_"));
    let out = kafsim_bench(&[workload, "--sweep", sweep, "--json", &json]);
    let v = json_written_by(&out, &json);
    let name = sweep.split('=').next().unwrap();
    v["sweep"]["points"]
        .as_array()
        .expect("sweep points")
        .iter()
        .map(|p| {
            let value = p["assignments"][name]
                .as_str()
                .expect("assignment")
                .to_string();
            (value, p["result"][field]["p50"].as_f64().expect("p50"))
        })
        .collect()
}

#[test]
fn a_sweep_sets_broker_consumer_topic_and_producer_keys() {
    let dir = scratch("families");
    let small = write(&dir, "small.toml", SMALL);
    // Consumer: a fetch that waits for 100 MB waits out fetch.max.wait.ms (500 ms) each time,
    // so a record written at a random moment of that wait waits about 250 ms (the median).
    let p = swept_p50(
        &small,
        "fetch.min.bytes=1,100000000",
        "end_to_end_latency_ms",
    );
    assert!(p[1].1 >= p[0].1 + 200.0, "fetch.min.bytes: {p:?}");
    // Broker: a flush after every message waits for the kreps2014 disks' 8 ms fsync.
    let kreps = write(
        &dir,
        "kreps.toml",
        &SMALL.replace("\"default\"", "\"kreps2014\""),
    );
    let p = swept_p50(
        &kreps,
        "log.flush.interval.messages=1,1000000",
        "publish_latency_ms",
    );
    assert!(p[0].1 >= p[1].1 + 8.0, "log.flush.interval.messages: {p:?}");
    // Producer: batches wait up to linger.ms for more records.
    let p = swept_p50(&small, "linger.ms=0,100", "publish_latency_ms");
    assert!(p[1].1 >= p[0].1 + 20.0, "linger.ms: {p:?}");
    // Topic: acks=all waits for two followers only with replication_factor 3.
    let p = swept_p50(&small, "topic.replication_factor=1,3", "publish_latency_ms");
    assert!(p[1].1 > p[0].1, "replication_factor: {p:?}");
}

#[test]
fn bad_input_is_exit_2_with_file_line_and_key() {
    let dir = scratch("bad");
    let typo = write(
        &dir,
        "typo.toml",
        &SMALL.replace("rate = 2000", "rat = 2000"),
    );
    let out = kafsim_bench(&[&typo]);
    assert_bad_input(&out, "typo.toml:");
    assert_bad_input(&out, "rat");
    let missing = dir.join("missing.toml");
    assert_bad_input(&kafsim_bench(&[missing.to_str().unwrap()]), "missing.toml");
    let workload = write(&dir, "small.toml", SMALL);
    for (sweep, words) in [
        ("linger.ms", "--sweep"),
        ("lingr.ms=1,2", "lingr.ms"),
        ("replication_factor=1,4", "only 3 brokers"),
        ("retry.backoff.ms=10,100", "consumer.retry.backoff.ms"),
        ("min.insync.replicas=1,x", "min.insync.replicas"),
    ] {
        assert_bad_input(&kafsim_bench(&[&workload, "--sweep", sweep]), words);
    }
}

#[test]
fn a_report_into_a_foreign_directory_is_refused_before_running() {
    let dir = scratch("foreign");
    let workload = write(&dir, "small.toml", SMALL);
    let foreign = dir.join("src");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("main.rs"), "fn main() {}").unwrap();
    let out = kafsim_bench(&[&workload, "--report", foreign.to_str().unwrap()]);
    assert_bad_input(&out, "refusing");
    assert!(out.stdout.is_empty(), "it ran before refusing");
    assert!(foreign.join("main.rs").is_file());
}
