//! `kafsim assign FILE.json`: prints the consumer-group assignment a client's assignor computes
//! for one case, so that kafsim's assignors can be compared by hand with a real client.
//!
//! FILE holds one case in the form of `shared/oracles/assignors.json`:
//! `{"client", "client_version"?, "strategy", "topics": {topic: partitions},
//!   "members": {member: [topics]}, "previous"?: {member: {topic: [partitions]}}, "generation"?,
//!   "generations"?: {member: generation}}` (the generation attached to previous ownership:
//! one for all, default 1, or per member).
//! Other fields (`id`, `expected`, `source`) are ignored. For `java` the version names the
//! kafka-python port and changes nothing. The assignment goes to stdout as
//! `{member: {topic: [partitions ascending]}}` with keys in sorted order.

use super::{EXIT_BAD_INPUT, EXIT_OK};
use kafsim_engine::assignor::{
    assign_with_generations, supports, AssignInput, Client, Strategy, Version,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct AssignArgs {
    /// JSON file with one assignment case (the form of shared/oracles/assignors.json rows)
    pub file: PathBuf,
}

pub fn main(args: AssignArgs) -> u8 {
    let shown = args.file.display().to_string();
    match run(&args) {
        Ok(json) => {
            // A closed pipe (`| head`) is not an error of the assignment: ignore it rather
            // than panic the way println! does.
            let _ = writeln!(std::io::stdout().lock(), "{json}");
            EXIT_OK
        }
        Err(problem) => {
            eprintln!("kafsim assign: {shown}: {problem}");
            EXIT_BAD_INPUT
        }
    }
}

fn run(args: &AssignArgs) -> Result<String, String> {
    let text = std::fs::read_to_string(&args.file).map_err(|e| format!("cannot read: {e}"))?;
    let case: Value = serde_json::from_str(&text).map_err(|e| format!("bad JSON: {e}"))?;
    let input = parse_case(&case)?;
    let generations = parse_generations(case.get("generations"))?;
    let assignment = assign_with_generations(&input, &generations)?;
    serde_json::to_string(&assignment).map_err(|e| format!("cannot print the assignment: {e}"))
}

/// Builds the assignor input, rejecting anything the assignors would silently ignore.
fn parse_case(case: &Value) -> Result<AssignInput, String> {
    if !case.is_object() {
        return Err("expected one JSON object (a single case)".to_string());
    }
    let client_name = required_str(case, "client")?;
    let client = Client::from_name(client_name).ok_or_else(|| {
        format!("unknown client \"{client_name}\" (java, sarama, kafka-go, librdkafka)")
    })?;
    let strategy_name = required_str(case, "strategy")?;
    let strategy = Strategy::from_name(strategy_name).ok_or_else(|| {
        format!(
            "unknown strategy \"{strategy_name}\" (range, roundrobin, sticky, cooperative-sticky)"
        )
    })?;
    let client_version = parse_version(case.get("client_version"))?;
    if !supports(client, client_version, strategy) {
        let at = client_version.map(|v| format!(" {v}")).unwrap_or_default();
        return Err(format!(
            "client {client_name}{at} has no {strategy_name} assignor"
        ));
    }
    let topics = parse_topics(case.get("topics"))?;
    let members = parse_members(case.get("members"), &topics)?;
    let previous = parse_previous(case.get("previous"))?;
    let generation = parse_generation(case.get("generation"))?;
    Ok(AssignInput {
        client,
        client_version,
        strategy,
        topics,
        members,
        previous,
        generation,
    })
}

fn required_str<'v>(case: &'v Value, field: &str) -> Result<&'v str, String> {
    match case.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("\"{field}\" must be a string, got {other}")),
        None => Err(format!("missing \"{field}\"")),
    }
}

fn parse_version(value: Option<&Value>) -> Result<Option<Version>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Version::parse(s)
            .map(Some)
            .ok_or_else(|| format!("bad \"client_version\" \"{s}\" (expected like 1.43.3)")),
        Some(other) => Err(format!("\"client_version\" must be a string, got {other}")),
    }
}

fn object<'v>(
    value: Option<&'v Value>,
    field: &str,
) -> Result<&'v serde_json::Map<String, Value>, String> {
    match value {
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(format!("\"{field}\" must be an object, got {other}")),
        None => Err(format!("missing \"{field}\"")),
    }
}

fn parse_topics(value: Option<&Value>) -> Result<BTreeMap<String, u32>, String> {
    let mut topics = BTreeMap::new();
    for (topic, count) in object(value, "topics")? {
        let count = count.as_u64().filter(|&n| n <= 1_000_000).ok_or_else(|| {
            format!("topic \"{topic}\": partition count must be 0..=1000000, got {count}")
        })?;
        topics.insert(topic.clone(), count as u32);
    }
    Ok(topics)
}

fn parse_members(
    value: Option<&Value>,
    topics: &BTreeMap<String, u32>,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut members = BTreeMap::new();
    for (member, subscription) in object(value, "members")? {
        let list = subscription
            .as_array()
            .ok_or_else(|| format!("member \"{member}\": subscription must be a list of topics"))?;
        let mut subscribed = Vec::new();
        for topic in list {
            let topic = topic.as_str().ok_or_else(|| {
                format!("member \"{member}\": topic must be a string, got {topic}")
            })?;
            if !topics.contains_key(topic) {
                return Err(format!(
                    "member \"{member}\" subscribes to unknown topic \"{topic}\""
                ));
            }
            subscribed.push(topic.to_string());
        }
        members.insert(member.clone(), subscribed);
    }
    Ok(members)
}

type Owned = BTreeMap<String, BTreeMap<String, Vec<u32>>>;

fn parse_previous(value: Option<&Value>) -> Result<Owned, String> {
    let mut previous = Owned::new();
    if matches!(value, None | Some(Value::Null)) {
        return Ok(previous);
    }
    for (member, owned) in object(value, "previous")? {
        let owned = owned.as_object().ok_or_else(|| {
            format!("previous of \"{member}\" must be an object {{topic: [partitions]}}")
        })?;
        let mut by_topic = BTreeMap::new();
        for (topic, partitions) in owned {
            let bad = || {
                format!(
                    "previous of \"{member}\", topic \"{topic}\": expected a list of partitions"
                )
            };
            let list = partitions.as_array().ok_or_else(bad)?;
            let parsed: Option<Vec<u32>> = list
                .iter()
                .map(|p| p.as_u64().and_then(|p| u32::try_from(p).ok()))
                .collect();
            by_topic.insert(topic.clone(), parsed.ok_or_else(bad)?);
        }
        previous.insert(member.clone(), by_topic);
    }
    Ok(previous)
}

fn parse_generation(value: Option<&Value>) -> Result<i32, String> {
    match value {
        None | Some(Value::Null) => Ok(1),
        Some(v) => v
            .as_i64()
            .and_then(|g| i32::try_from(g).ok())
            .ok_or_else(|| format!("\"generation\" must be a 32-bit integer, got {v}")),
    }
}

fn parse_generations(value: Option<&Value>) -> Result<BTreeMap<String, i32>, String> {
    let mut generations = BTreeMap::new();
    if matches!(value, None | Some(Value::Null)) {
        return Ok(generations);
    }
    for (member, generation) in object(value, "generations")? {
        let generation = generation
            .as_i64()
            .and_then(|g| i32::try_from(g).ok())
            .ok_or_else(|| {
                format!("generation of \"{member}\" must be a 32-bit integer, got {generation}")
            })?;
        generations.insert(member.clone(), generation);
    }
    Ok(generations)
}
