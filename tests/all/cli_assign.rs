//! `kafsim assign FILE.json`: oracle-form cases in, the assignment as JSON out; bad input gives
//! exit status 2 and a message naming the file.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output};

/// A scratch file unique to this test process and `name`.
fn write_case(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kafsim-cli-assign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write case");
    path
}

fn kafsim_assign(path: &PathBuf) -> Output {
    let bin = env!("CARGO_BIN_EXE_kafsim");
    Command::new(bin)
        .arg("assign")
        .arg(path)
        .output()
        .expect("run kafsim")
}

fn assign_ok(name: &str, case: &Value) -> Value {
    let path = write_case(name, &case.to_string());
    let out = kafsim_assign(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{name}: stderr {stderr}");
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn assign_fails(name: &str, content: &str, says: &str) {
    let path = write_case(name, content);
    let out = kafsim_assign(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{name}: expected exit 2, stderr {stderr}"
    );
    assert!(out.stdout.is_empty(), "{name}: nothing on stdout on error");
    assert!(
        stderr.contains(name),
        "{name}: message must name the file: {stderr}"
    );
    assert!(
        stderr.contains(says),
        "{name}: message must say {says:?}: {stderr}"
    );
}

#[test]
fn kafka_go_range_gives_extras_to_later_members() {
    // Oracle case public-fewer-members-5p-2c-kafka-go-range (extra fields are ignored).
    let case = json!({"id": "x", "client": "kafka-go", "client_version": "0.2.1", "strategy": "range",
        "topics": {"t": 5}, "members": {"C0": ["t"], "C1": ["t"]},
        "expected": {"C0": {"t": [0, 1]}}, "source": "kafka-go 0.2.1"});
    let got = assign_ok("kafka-go-range.json", &case);
    assert_eq!(got, json!({"C0": {"t": [0, 1]}, "C1": {"t": [2, 3, 4]}}));
}

#[test]
fn sarama_roundrobin_sorts_partitions_as_strings() {
    // Oracle case public-eleven-partitions-2c-sarama-1.43.3-roundrobin.
    let case = json!({"client": "sarama", "client_version": "1.43.3", "strategy": "roundrobin",
        "topics": {"t": 11}, "members": {"C0": ["t"], "C1": ["t"]}});
    let got = assign_ok("sarama-rr.json", &case);
    assert_eq!(
        got,
        json!({"C0": {"t": [0, 3, 5, 7, 9, 10]}, "C1": {"t": [1, 2, 4, 6, 8]}})
    );
}

#[test]
fn cooperative_sticky_withholds_moving_partitions() {
    // Oracle case public-coop-join-leave-6p-1-C2-joins-round1-java-cooperative-sticky.
    let case = json!({"client": "java", "client_version": "3.0.12", "strategy": "cooperative-sticky",
        "topics": {"t": 6}, "members": {"C0": ["t"], "C1": ["t"], "C2": ["t"]},
        "previous": {"C0": {"t": [0, 2, 4]}, "C1": {"t": [1, 3, 5]}}});
    let got = assign_ok("coop.json", &case);
    assert_eq!(
        got,
        json!({"C0": {"t": [0, 2]}, "C1": {"t": [1, 3]}, "C2": {}})
    );
}

#[test]
fn output_keys_are_sorted_and_every_member_is_present() {
    let case = json!({"client": "java", "strategy": "range",
        "topics": {"b": 1, "a": 1}, "members": {"z": ["b", "a"], "C10": ["a"], "C2": ["a"]}});
    let path = write_case("order.json", &case.to_string());
    let out = kafsim_assign(&path);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(text.trim(), r#"{"C10":{"a":[0]},"C2":{},"z":{"b":[0]}}"#);
}

#[test]
fn bad_input_exits_2_naming_file_and_problem() {
    let missing = std::env::temp_dir().join("kafsim-cli-assign-no-such-file.json");
    let out = kafsim_assign(&missing);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kafsim-cli-assign-no-such-file.json"));

    let base = |client: &str, strategy: &str, version: &str| {
        format!(
            r#"{{"client": "{client}", "client_version": "{version}", "strategy": "{strategy}",
               "topics": {{"t": 2}}, "members": {{"C0": ["t"]}}}}"#
        )
    };
    assign_fails("bad-json.json", "{\"client\": ", "bad JSON");
    assign_fails(
        "unknown-client.json",
        &base("kafka-rust", "range", "1.0"),
        "unknown client",
    );
    assign_fails(
        "unknown-strategy.json",
        &base("java", "fair", "3.0.12"),
        "unknown strategy",
    );
    assign_fails(
        "old-sarama-sticky.json",
        &base("sarama", "sticky", "1.22.1"),
        "has no sticky",
    );
    assign_fails(
        "kafka-go-sticky.json",
        &base("kafka-go", "cooperative-sticky", "0.4.50"),
        "has no",
    );
    assign_fails(
        "bad-version.json",
        &base("sarama", "range", "one.two"),
        "client_version",
    );
    let unknown_topic = r#"{"client": "java", "strategy": "range", "topics": {"t": 2},
        "members": {"C0": ["t", "nope"]}}"#;
    assign_fails(
        "unknown-topic.json",
        unknown_topic,
        "unknown topic \"nope\"",
    );
    assign_fails(
        "no-members.json",
        r#"{"client": "java", "strategy": "range", "topics": {}}"#,
        "members",
    );
}
