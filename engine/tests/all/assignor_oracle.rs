//! Golden test: every case of `shared/oracles/assignors.json` (assignments computed by the real
//! kafka-python, sarama and kafka-go libraries) must come out of `kafsim_engine::assignor`
//! exactly, after the README's normalisation (every member present, empty topics dropped,
//! partitions ascending). The oracle file is required: a missing file fails the test.

use kafsim_engine::assignor::{assign, AssignInput, Assignment, Client, Strategy, Version};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `$CARGO_MANIFEST_DIR/../../shared/oracles/assignors.json`, else `$KAFSIM_SHARED/oracles/..`.
fn oracle_path() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut tried = vec![manifest.join("../../shared/oracles/assignors.json")];
    if let Some(shared) = std::env::var_os("KAFSIM_SHARED") {
        tried.push(PathBuf::from(shared).join("oracles/assignors.json"));
    }
    if let Some(found) = tried.iter().find(|p| p.is_file()) {
        return found.clone();
    }
    panic!(
        "assignor oracle not found; tried {:?} (set KAFSIM_SHARED to the shared/ folder)",
        tried
    );
}

fn load_cases() -> Vec<Value> {
    let path = oracle_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    cases
        .as_array()
        .expect("oracle: top level must be an array")
        .clone()
}

fn string_map<T>(value: &Value, each: impl Fn(&Value) -> T) -> BTreeMap<String, T> {
    let object = value.as_object().expect("oracle: expected an object");
    object.iter().map(|(k, v)| (k.clone(), each(v))).collect()
}

fn partitions(value: &Value) -> Vec<u32> {
    let list = value.as_array().expect("oracle: expected a partition list");
    list.iter()
        .map(|p| p.as_u64().expect("oracle: partition") as u32)
        .collect()
}

fn topics_of(value: &Value) -> Vec<String> {
    let list = value.as_array().expect("oracle: expected a topic list");
    list.iter()
        .map(|t| t.as_str().expect("oracle: topic").to_string())
        .collect()
}

fn input_of(case: &Value) -> AssignInput {
    let client = Client::from_name(case["client"].as_str().unwrap()).expect("oracle: client");
    let strategy =
        Strategy::from_name(case["strategy"].as_str().unwrap()).expect("oracle: strategy");
    let previous = match case.get("previous") {
        Some(prev) => string_map(prev, |owned| string_map(owned, partitions)),
        None => BTreeMap::new(),
    };
    AssignInput {
        client,
        client_version: case["client_version"].as_str().and_then(Version::parse),
        strategy,
        topics: string_map(&case["topics"], |n| {
            n.as_u64().expect("oracle: count") as u32
        }),
        members: string_map(&case["members"], topics_of),
        previous,
        generation: 1,
    }
}

fn expected_of(case: &Value) -> Assignment {
    string_map(&case["expected"], |topics| string_map(topics, partitions))
}

#[test]
fn every_oracle_case_matches_exactly() {
    let cases = load_cases();
    assert_eq!(cases.len(), 68, "the public assignor oracle has 68 cases");
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap_or("?");
        let input = input_of(case);
        match assign(&input) {
            Ok(got) if got == expected_of(case) => {}
            Ok(got) => failures.push(format!(
                "{id}: got {got:?}, expected {:?}",
                expected_of(case)
            )),
            Err(e) => failures.push(format!("{id}: error {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_client_and_strategy_of_the_oracle_is_covered() {
    let mut seen = BTreeMap::new();
    for case in load_cases() {
        let key = (
            case["client"].as_str().unwrap().to_string(),
            case["strategy"].as_str().unwrap().to_string(),
        );
        *seen.entry(key).or_insert(0) += 1;
    }
    for (client, strategy) in [
        ("java", "range"),
        ("java", "roundrobin"),
        ("java", "sticky"),
        ("java", "cooperative-sticky"),
        ("sarama", "range"),
        ("sarama", "roundrobin"),
        ("sarama", "sticky"),
        ("kafka-go", "range"),
        ("kafka-go", "roundrobin"),
    ] {
        assert!(
            seen.contains_key(&(client.to_string(), strategy.to_string())),
            "no {client} {strategy} case"
        );
    }
}
