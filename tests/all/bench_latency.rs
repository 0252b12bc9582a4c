//! End-to-end latency on a replicated topic (issue 16 item 1): a consumer's fetch is answered
//! when the high watermark passes a record, not when `fetch.max.wait.ms` runs out, so RF 3
//! with acks=all costs a replication round trip, not half a fetch wait. Reads the same
//! `--json` fields (`end_to_end_latency_ms.p50`) that users read.

use crate::common::json_written_by;
use std::process::Command;

/// "My service": 5k msgs/s of 1 KiB, acks=all, 12 partitions, 3 consumers, i3en.2xlarge,
/// every fetch setting at its default.
fn workload(rf: u32) -> String {
    format!(
        r#"
name = "service-rf{rf}"
duration = "10s"
warmup = "6s"
hardware = "i3en.2xlarge"

[cluster]
brokers = 3

[[topics]]
name = "events"
partitions = 12
replication_factor = {rf}

[[producers]]
client = "java"
topic = "events"
rate = 5000
keys = 1000
message_size = 1024
[producers.config]
acks = "all"

[[consumer_groups]]
group = "readers"
members = 3
client = "java"
topics = ["events"]
[consumer_groups.config]
"auto.offset.reset" = "earliest"
"#
    )
}

/// One consumer owning every partition (two per broker), null keys (the sticky partitioner
/// writes one partition at a time), 1000 records/s, every fetch setting at its default.
const ONE_CONSUMER: &str = r#"
name = "one-consumer"
duration = "10s"
warmup = "6s"
hardware = "i3en.2xlarge"

[cluster]
brokers = 3

[[topics]]
name = "events"
partitions = 6
replication_factor = 3

[[producers]]
client = "java"
topic = "events"
rate = 1000
keys = 0
message_size = 100
[producers.config]
acks = "all"

[[consumer_groups]]
group = "reader"
members = 1
client = "java"
topics = ["events"]
[consumer_groups.config]
"auto.offset.reset" = "earliest"
"#;

/// The e2e p50 (ms) `kafsim bench --json` reports for the workload with replication `rf`.
fn e2e_p50(rf: u32) -> f64 {
    e2e_p50_of(&format!("rf{rf}"), &workload(rf))
}

/// The e2e p50 (ms) `kafsim bench --json` reports for `text`.
fn e2e_p50_of(name: &str, text: &str) -> f64 {
    let dir = std::env::temp_dir().join(format!("kafsim-bench-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join(format!("{name}.toml"));
    let json = dir.join(format!("{name}.json"));
    std::fs::write(&toml, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kafsim"))
        .args([
            "bench",
            toml.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ])
        .output()
        .expect("kafsim runs");
    let v = json_written_by(&out, &json);
    v["end_to_end_latency_ms"]["p50"]
        .as_f64()
        .expect("end_to_end_latency_ms.p50")
}

#[test]
fn replication_adds_milliseconds_not_a_fetch_wait_to_end_to_end_latency() {
    let rf1 = e2e_p50(1);
    let rf3 = e2e_p50(3);
    assert!(rf1 < 10.0, "RF 1 e2e p50 {rf1} ms");
    assert!(
        rf3 <= rf1 + 2.0,
        "RF 3 acks=all e2e p50 {rf3} ms vs RF 1 {rf1} ms: a consumer fetch must complete when \
         the HW passes the record"
    );
}

#[test]
fn a_consumer_refetches_the_partition_it_just_read_without_waiting_for_the_others() {
    // Java's poll() hands out the buffered records before it sends the next fetches, so the
    // partition just read is in the next fetch; were it left out, that fetch would wait up
    // to fetch.max.wait.ms (500 ms) for data on the broker's other partition.
    let p50 = e2e_p50_of("one-consumer", ONE_CONSUMER);
    assert!(p50 < 10.0, "one consumer of 6 partitions: e2e p50 {p50} ms");
}
