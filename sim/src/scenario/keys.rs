//! Every key the scenario parser accepts, read from the parser itself.
//!
//! The raw structs (`raw.rs`) refuse unknown keys, and serde's refusal names the keys the
//! struct does accept ("unknown field `x`, expected one of `a`, `b`"). Probing each table with
//! a key no struct has therefore lists its keys, and probing each of those as a table (and as
//! an array of tables) finds the nested ones. A key added to a raw struct shows up here with
//! no list to update, which is what lets `tests/all/scenario_docs.rs` insist that
//! docs/scenarios.md documents every key. Kafka property tables (`config`) take any property
//! name and are leaves here; their names are the engine configs' `known_keys`.

use super::raw::RawScenario;

/// A key no raw struct has.
const PROBE: &str = "kafsim_probe_key";

/// Where a table sits: its dotted path and whether it is an array of tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableKeys {
    /// The table's dotted path ("" for the top level, "consumer_groups.handler").
    pub path: String,
    /// `[[path]]` rather than `[path]`.
    pub array: bool,
    /// The keys it accepts, in the struct's order.
    pub keys: Vec<String>,
}

impl TableKeys {
    /// The header as a file writes it: `[cluster]`, `[[topics]]` (empty for the top level).
    pub fn header(&self) -> String {
        match (self.path.is_empty(), self.array) {
            (true, _) => String::new(),
            (false, true) => format!("[[{}]]", self.path),
            (false, false) => format!("[{}]", self.path),
        }
    }
}

/// One step of a probe path: a table key, or a key holding an array of tables.
#[derive(Clone, Copy)]
enum Step<'a> {
    Table(&'a str),
    Array(&'a str),
}

/// The probe document: `leaf` nested under `path`.
fn nest(path: &[Step], leaf: toml::Value) -> toml::Value {
    path.iter().rev().fold(leaf, |inner, step| {
        let mut t = toml::Table::new();
        match step {
            Step::Table(k) => t.insert((*k).to_string(), inner),
            Step::Array(k) => t.insert((*k).to_string(), toml::Value::Array(vec![inner])),
        };
        toml::Value::Table(t)
    })
}

/// The keys of the struct at `path`, if it is a struct that refuses unknown keys.
fn keys_at(path: &[Step]) -> Option<Vec<String>> {
    let mut probe = toml::Table::new();
    probe.insert(PROBE.to_string(), toml::Value::Integer(1));
    let text = toml::to_string(&nest(path, toml::Value::Table(probe))).ok()?;
    let err = toml::from_str::<RawScenario>(&text).err()?;
    let message = err.message().to_string();
    let rest = message
        .split_once(&format!("unknown field `{PROBE}`, expected"))?
        .1;
    Some(
        rest.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

fn as_steps(v: &[(String, bool)]) -> Vec<Step<'_>> {
    v.iter()
        .map(|(k, a)| if *a { Step::Array(k) } else { Step::Table(k) })
        .collect()
}

/// Every table the parser knows and its keys, top level first, depth first in struct order.
pub fn accepted_keys() -> Vec<TableKeys> {
    let mut out = Vec::new();
    walk(&mut Vec::new(), &mut Vec::new(), false, &mut out);
    out
}

fn walk(path: &mut Vec<String>, arrays: &mut Vec<bool>, array: bool, out: &mut Vec<TableKeys>) {
    let steps = |path: &[String], arrays: &[bool]| -> Vec<(String, bool)> {
        path.iter().cloned().zip(arrays.iter().copied()).collect()
    };
    let owned = steps(path, arrays);
    let Some(keys) = keys_at(&as_steps(&owned)) else {
        return;
    };
    out.push(TableKeys {
        path: path.join("."),
        array,
        keys: keys.clone(),
    });
    // Depth bounded by the file format; a probe deeper than this is a bug here.
    if path.len() >= 4 {
        return;
    }
    for key in keys {
        for nested_array in [false, true] {
            let mut probe = owned.clone();
            probe.push((key.clone(), nested_array));
            if keys_at(&as_steps(&probe)).is_some() {
                path.push(key.clone());
                arrays.push(nested_array);
                walk(path, arrays, nested_array, out);
                path.pop();
                arrays.pop();
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_finds_the_known_tables_and_keys() {
        let tables = accepted_keys();
        let find = |path: &str| tables.iter().find(|t| t.path == path);
        let top = find("").expect("top level");
        assert!(top.keys.contains(&"name".to_string()));
        assert!(top.keys.contains(&"cluster".to_string()));
        assert!(find("cluster")
            .unwrap()
            .keys
            .contains(&"brokers".to_string()));
        let topics = find("topics").unwrap();
        assert!(topics.array && topics.keys.contains(&"replication_factor".to_string()));
        assert_eq!(topics.header(), "[[topics]]");
        let handler = find("consumer_groups.handler").unwrap();
        assert!(!handler.array && handler.keys.contains(&"sink".to_string()));
        let schedule = find("faults.schedule").unwrap();
        assert!(schedule.array && schedule.keys.contains(&"one_way".to_string()));
        // Property tables take any name: leaves, not tables.
        assert!(find("cluster.config").is_none());
    }
}
