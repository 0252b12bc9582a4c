//! docs/scenarios.md is the user's reference for the scenario format (DESIGN §8), and this
//! test keeps it true: every key the parser accepts, as the parser itself reports them
//! (`kafsim_sim::scenario::accepted_keys`, probed from the raw structs), has a row in the
//! section of its table, and every Kafka property the engine's configs accept is named in the
//! section of its `[*.config]` table. A key added without documentation fails here, with the
//! section and the row to add.

use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::config::Configurable;
use kafsim_engine::consumer::config::ConsumerConfig;
use kafsim_engine::producer::config::ProducerConfig;
use kafsim_sim::scenario::{accepted_keys, TableKeys};

fn docs() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/scenarios.md")).unwrap()
}

/// The text of the section whose heading contains `needle`: from that heading to the next
/// heading of the same or a higher level (its subsections included).
fn section<'a>(md: &'a str, needle: &str) -> Option<&'a str> {
    let level = |l: &str| l.chars().take_while(|c| *c == '#').count();
    let is_heading = |l: &str| level(l) > 0 && l[level(l)..].starts_with(' ');
    // (byte offset, line) of every line.
    let mut lines = Vec::new();
    let mut offset = 0;
    for line in md.split_inclusive('\n') {
        lines.push((offset, line.trim_end_matches('\n')));
        offset += line.len();
    }
    let start = lines
        .iter()
        .position(|(_, l)| is_heading(l) && l.contains(needle))?;
    let own = level(lines[start].1);
    let end = lines[start + 1..]
        .iter()
        .find(|(_, l)| is_heading(l) && level(l) <= own)
        .map_or(md.len(), |(o, _)| *o);
    Some(&md[lines[start].0..end])
}

/// What docs `md` leaves out of `tables`: one line per key, saying where to add it.
fn undocumented(md: &str, tables: &[TableKeys]) -> Vec<String> {
    let mut missing = Vec::new();
    for t in tables {
        let (needle, title) = if t.path.is_empty() {
            ("Top level".to_string(), "## Top level".to_string())
        } else {
            (format!("`{}`", t.header()), format!("## `{}`", t.header()))
        };
        let Some(body) = section(md, &needle) else {
            missing.push(format!(
                "no section for {}: add a heading `{title}` with a table of its keys",
                if t.path.is_empty() {
                    "the top level"
                } else {
                    &needle
                }
            ));
            continue;
        };
        for key in &t.keys {
            // A key that is a table of its own (`cluster`, `[[topics]]`) has its own section.
            let own_path = if t.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", t.path)
            };
            if tables.iter().any(|o| o.path == own_path) {
                continue;
            }
            let row = format!("| `{key}` |");
            if !body.lines().any(|l| l.starts_with(&row)) {
                missing.push(format!(
                    "{}{key}: add a row `{row} type | default | meaning |` under {title}",
                    if t.path.is_empty() {
                        String::new()
                    } else {
                        format!("{}.", t.path)
                    }
                ));
            }
        }
    }
    missing
}

#[test]
fn every_key_the_parser_accepts_is_documented() {
    let tables = accepted_keys();
    assert!(tables.len() >= 8, "the probe found only {tables:?}");
    let missing = undocumented(&docs(), &tables);
    assert!(
        missing.is_empty(),
        "docs/scenarios.md does not document these keys:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn a_key_without_a_row_is_reported() {
    let tables = vec![
        TableKeys {
            path: String::new(),
            array: false,
            keys: vec!["name".into(), "seeds".into()],
        },
        TableKeys {
            path: "faults.schedule".into(),
            array: true,
            keys: vec!["at".into(), "tear".into()],
        },
    ];
    let md = "# x\n## Top level\n| `name` | string |\n## `[faults]`\n| `at` | x |\n### `[[faults.schedule]]`\n| `at` | duration |\n## Next\n| `tear` | elsewhere |\n| `seeds` | elsewhere |\n";
    assert_eq!(
        undocumented(md, &tables),
        vec![
            "seeds: add a row `| `seeds` | type | default | meaning |` under ## Top level",
            "faults.schedule.tear: add a row `| `tear` | type | default | meaning |` under ## `[[faults.schedule]]`",
        ]
    );
    let without_section = "## Top level\n| `name` |\n| `seeds` |\n";
    assert_eq!(undocumented(without_section, &tables).len(), 1);
}

#[test]
fn every_property_the_engine_accepts_is_named_in_its_section() {
    let md = docs();
    let producer = ProducerConfig::for_client("java", None).unwrap();
    let consumer = ConsumerConfig::for_client("java", None).unwrap();
    let broker = BrokerConfig::default();
    let mut missing = Vec::new();
    for (heading, keys) in [
        ("`[cluster.config]`", broker.known_keys()),
        ("`[producers.config]`", producer.known_keys()),
        ("`[consumer_groups.config]`", consumer.known_keys()),
    ] {
        let body = section(&md, heading).unwrap_or_else(|| panic!("no section {heading}"));
        for key in keys {
            if !body.contains(&format!("`{key}`")) && !body.contains(&format!("`\"{key}\"`")) {
                missing.push(format!("{key} (in the section {heading})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/scenarios.md does not name these properties:\n  {}",
        missing.join("\n  ")
    );
}
