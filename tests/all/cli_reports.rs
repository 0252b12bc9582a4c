//! Issue 16's report and compression contract, end to end through the CLI, reading what users
//! read: `kafsim bench` text, `--json`, the report directory (`omb.json`, `summary.md`) and
//! `kafsim run --report` (per-seed table, failures-per-kind chart, fault mix).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kafsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kafsim"))
        .args(args)
        .output()
        .expect("kafsim runs")
}

fn scratch(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("kafsim-cli-reports-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write workload");
    path.display().to_string()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn bad(out: &Output, says: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(says), "stderr {stderr:?} lacks {says:?}");
}

/// Three brokers, RF 3, one Java producer of 1 KiB JSON logs at 5000 records/s, one group.
const LOGS: &str = r#"
name = "logs"
duration = "2s"
warmup = "500ms"
hardware = "i3en.2xlarge"

[cluster]
brokers = 3

[[topics]]
name = "logs"
partitions = 3
replication_factor = 3

[[producers]]
topic = "logs"
rate = 5000
message_size = 1024
message_profile = "json-logs"
[producers.config]
acks = "all"

[[consumer_groups]]
group = "g"
topics = ["logs"]
[consumer_groups.config]
"auto.offset.reset" = "earliest"
"#;

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file written")).expect("JSON")
}

#[test]
fn a_compression_sweep_shrinks_the_disk_bytes_and_writes_omb_files() {
    let dir = scratch("sweep");
    let workload = write(&dir, "logs.toml", LOGS);
    let report = dir.join("report");
    let out = kafsim(&[
        "bench",
        &workload,
        "--sweep",
        "compression.type=none,lz4,zstd",
        "--report",
        report.to_str().unwrap(),
    ]);
    ok(&out);
    let results = json(&report.join("results.json"));
    let points = results["sweep"]["points"].as_array().expect("points");
    let ratios: Vec<f64> = points
        .iter()
        .map(|p| p["result"]["disk"]["compression_ratio"].as_f64().unwrap())
        .collect();
    assert_eq!(ratios, vec![1.0, 0.326, 0.201]);
    let bounds: Vec<f64> = points
        .iter()
        .map(|p| p["result"]["disk"]["bound_mib_per_sec"].as_f64().unwrap())
        .collect();
    assert!(bounds[0] < bounds[1] && bounds[1] < bounds[2], "{bounds:?}");
    // Every point delivered its 5000 records/s.
    for p in points {
        let rate = p["result"]["publish_rate"].as_f64().unwrap();
        assert!((rate - 5000.0).abs() < 250.0, "{rate}");
    }
    // One OMB file per point, each naming its point as the driver.
    for (file, label) in [
        ("omb.json", "compression.type=none"),
        ("omb-2.json", "compression.type=lz4"),
        ("omb-3.json", "compression.type=zstd"),
    ] {
        let omb = json(&report.join(file));
        assert!(
            omb["driver"].as_str().unwrap().contains(label),
            "{file}: {}",
            omb["driver"]
        );
        assert_eq!(omb["messageSize"], 1024);
        assert!(
            omb["aggregatedEndToEndLatencyQuantiles"]
                .as_object()
                .unwrap()
                .len()
                > 10
        );
        assert!(omb["publishRate"].as_array().unwrap().len() == 1);
    }
    let summary = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(summary.contains("compressed size 0.20"), "{summary}");
}

#[test]
fn compression_keys_are_checked_per_client() {
    let dir = scratch("bad");
    for (from, to) in [
        (
            "acks = \"all\"",
            "acks = \"all\"\n\"compression.type\" = \"brotli\"",
        ),
        (
            "acks = \"all\"",
            "acks = \"all\"\n\"compression.level\" = 3",
        ),
        (
            "acks = \"all\"",
            "acks = \"all\"\n\"compression.codec\" = \"lz4\"",
        ),
        ("message_profile = \"json-logs\"", "message_profile = 1.5"),
        (
            "message_profile = \"json-logs\"",
            "message_profile = \"xml\"",
        ),
    ] {
        let text = LOGS.replacen(from, to, 1);
        let path = write(&dir, "bad.toml", &text);
        let out = kafsim(&["bench", &path]);
        let key = if to.contains("message_profile") {
            "producers[0].message_profile"
        } else {
            "producers[0].config"
        };
        bad(&out, key);
        bad(&out, says_word(to));
    }
}

/// The word an error about `line` must mention.
fn says_word(line: &str) -> &'static str {
    if line.contains("brotli") {
        "brotli"
    } else if line.contains("compression.level") {
        "compression.zstd.level"
    } else if line.contains("compression.codec") {
        "librdkafka"
    } else if line.contains("1.5") {
        "at most 1"
    } else {
        "unknown message profile"
    }
}

#[test]
fn a_producer_only_workload_shows_no_consumer_sections_and_the_disk_arithmetic() {
    let dir = scratch("producer-only");
    let text = LOGS
        .split("[[consumer_groups]]")
        .next()
        .unwrap()
        .to_string();
    let workload = write(&dir, "p.toml", &text);
    let report = dir.join("report");
    let stdout = ok(&kafsim(&[
        "bench",
        &workload,
        "--report",
        report.to_str().unwrap(),
    ]));
    assert!(stdout.contains("records sent"), "{stdout}");
    assert!(!stdout.contains("records consumed"), "{stdout}");
    assert!(!stdout.contains("end-to-end"), "{stdout}");
    assert!(
        stdout.contains("Disk bound: 655 MB/s per broker × 3 brokers / replication factor 3"),
        "{stdout}"
    );
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(!html.contains("Consumer backlog"));
    assert!(!html.contains("End-to-end latency by percentile"));
    assert!(html.contains("Publish latency by percentile"));
}

#[test]
fn violations_are_summarised_once_with_their_meaning() {
    let dir = scratch("newest");
    // sarama starts at the newest offset; without commits, its member restarted after a
    // crash starts at the newest offset again and misses what was written meanwhile (the
    // bench's readiness phase makes sure the group's first start misses nothing).
    let text = LOGS
        .replace("duration = \"2s\"", "duration = \"6s\"")
        .replace(
            "[[consumer_groups]]\ngroup = \"g\"",
            "[[consumer_groups]]\ngroup = \"g\"\nclient = \"sarama\"",
        )
        .replace(
            "\"auto.offset.reset\" = \"earliest\"",
            "\"auto.offset.reset\" = \"latest\"\n\"enable.auto.commit\" = false",
        )
        + "\n[faults]\nrandom = false\n[[faults.schedule]]\nat = \"2s\"\naction = \"crash\"\n\
           target = \"consumer:g/0\"\nduration = \"1s\"\n";
    let workload = write(&dir, "n.toml", &text);
    let json_path = dir.join("r.json");
    // Without --check a bench streams its history and runs no checker: no notes.
    let out = kafsim(&["bench", &workload, "--json", json_path.to_str().unwrap()]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("violations during the bench"), "{stderr}");
    assert_eq!(json(&json_path)["violations"].as_array().unwrap().len(), 0);
    let out = kafsim(&[
        "bench",
        &workload,
        "--check",
        "--json",
        json_path.to_str().unwrap(),
    ]);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = stderr
        .lines()
        .filter(|l| l.contains("violations during the bench"))
        .count();
    let result = json(&json_path);
    let notes = result["violations"].as_array().unwrap();
    assert_eq!(lines, notes.len(), "one line per note: {stderr}");
    assert!(notes.len() <= 3, "{stderr}");
    assert!(
        stderr.contains("Consumer.Offsets.Initial = OffsetNewest"),
        "{stderr}"
    );
    let unseen = notes
        .iter()
        .find(|n| n["kind"] == "unseen")
        .expect("an unseen note");
    assert_eq!(unseen["group"], "g");
    assert!(unseen["count"].as_u64().unwrap() > 1);
    let summary = render_summary(&result);
    assert!(summary.contains("OffsetNewest"));
}

/// The stored notes as the report shows them (the `meaning` field carries the cause).
fn render_summary(result: &Value) -> String {
    result["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["meaning"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_run_report_has_a_seed_table_a_kind_chart_and_the_fault_mix() {
    let dir = scratch("run-report");
    let scenario = format!(
        "{}/scenarios/acks1-leader-crash.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let report = dir.join("report");
    let out = kafsim(&[
        "run",
        &scenario,
        "--seeds",
        "6",
        "--no-progress",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(matches!(out.status.code(), Some(0 | 1)));
    let results = json(&report.join("results.json"));
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("<h2>Seeds</h2>"));
    assert!(html.contains("<h2>Fault mix</h2>"));
    let mix = results["fault_mix"].as_object().unwrap();
    assert!(!mix.is_empty(), "the scenario crashes leaders");
    for action in mix.keys() {
        assert!(html.contains(&format!("<td>{action}</td>")), "{action}");
    }
    for row in results["seed_verdicts"].as_array().unwrap() {
        assert!(html.contains(row["repro"].as_str().unwrap()));
    }
    if !results["failed_seeds"].as_array().unwrap().is_empty() {
        assert!(html.contains("aria-label=\"failures per kind\""));
    }
    let clean = kafsim(&[
        "run",
        &format!("{}/tests/fixtures/tiny.toml", env!("CARGO_MANIFEST_DIR")),
        "--seeds",
        "1",
        "--no-progress",
        "--report",
        dir.join("clean").to_str().unwrap(),
    ]);
    assert!(matches!(clean.status.code(), Some(0 | 1)));
}
