//! `kafsim partition` end to end: the binary prints the partitions the real clients chose
//! (rows of shared/oracles/partitioners.json), agrees with the engine for every hashing kind,
//! and rejects bad input with exit status 2.

use kafsim_engine::partitioner::{keyed_partition, PartitionerKind};
use std::process::{Command, Output};

fn kafsim_partition(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kafsim"))
        .arg("partition")
        .args(args)
        .output()
        .expect("kafsim runs")
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn assert_bad_input(args: &[&str], stderr_says: &str) {
    let output = kafsim_partition(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{args:?} printed partitions");
    assert!(stderr.contains(stderr_says), "{args:?}: stderr {stderr:?}");
}

#[test]
fn prints_the_oracle_partitions_in_key_order() {
    // Rows of partitioners.json: "kafka", "" and 0xff under 7 partitions.
    let cases = [
        ("java-murmur2", ["3", "2", "5"]),
        ("sarama-hash", ["4", "2", "0"]),
        ("sarama-reference-hash", ["4", "0", "0"]),
        ("librdkafka-consistent", ["6", "0", "3"]),
    ];
    for (partitioner, expected) in cases {
        let args = [
            "--partitioner",
            partitioner,
            "--partitions",
            "7",
            "--key-hex",
            "6b61666b61",
            "--key-hex",
            "",
            "--key-hex",
            "ff",
        ];
        let output = kafsim_partition(&args);
        assert_eq!(output.status.code(), Some(0), "{partitioner}");
        assert_eq!(stdout_lines(&output), expected, "{partitioner}");
    }
}

#[test]
fn agrees_with_the_engine_for_every_hashing_kind() {
    let keys = ["6b61666b61", "31", "00ff10", "0123456789abcdef"];
    for kind in PartitionerKind::ALL.into_iter().filter(|k| k.hashes_keys()) {
        let mut args = vec!["--partitioner", kind.name(), "--partitions", "31"];
        for key in keys {
            args.extend(["--key-hex", key]);
        }
        let output = kafsim_partition(&args);
        let expected: Vec<String> = keys
            .iter()
            .map(|hex| {
                let bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                keyed_partition(kind, &bytes, 31).unwrap().to_string()
            })
            .collect();
        assert_eq!(stdout_lines(&output), expected, "{kind}");
    }
}

#[test]
fn rejects_bad_input_with_exit_2() {
    for (partitioner, partitions, key, words) in [
        ("java-murmur3", "3", "00", "sarama-reference-hash"),
        (
            "sarama-random",
            "3",
            "00",
            "does not place keys deterministically",
        ),
        (
            "kafka-go-least-bytes",
            "3",
            "00",
            "does not place keys deterministically",
        ),
        ("java-murmur2", "3", "0g", "not a hex digit"),
        ("java-murmur2", "3", "abc", "odd number"),
        ("java-murmur2", "0", "00", "--partitions"),
        ("java-murmur2", "-1", "00", "--partitions"),
        ("librdkafka-consistent-random", "3", "", "empty key"),
    ] {
        let args = [
            "--partitioner",
            partitioner,
            "--partitions",
            partitions,
            "--key-hex",
            key,
        ];
        assert_bad_input(&args, words);
    }
}
