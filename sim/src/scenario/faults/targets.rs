//! Fault targets: each names something the scenario declares (a broker index below
//! `cluster.brokers`, a topic and partition that exist, at the fault's time when an
//! `add-partitions` creates it, a group member or producer index in range), and is of a kind
//! the action accepts.

use super::*;

/// A fault aimed at a partition that a scripted `add-partitions` creates must come after it.
pub(super) fn not_before_added(
    check: &Check<'_>,
    fault: &ScheduledFault,
    raw: &RawScheduled,
    at: &str,
    scenario: &Scenario,
    schedule: &[ScheduledFault],
) -> R<()> {
    for target in fault.action.targets() {
        let (Target::Leader { topic, partition } | Target::Follower { topic, partition }) = target
        else {
            continue;
        };
        let declared = scenario.topic(topic).map_or(0, |t| t.partitions);
        let added: u32 = schedule
            .iter()
            .filter(|f| f.at < fault.at)
            .filter_map(|f| match &f.action {
                FaultAction::AddPartitions { topic: t, count } if t == topic => Some(*count),
                _ => None,
            })
            .sum();
        if *partition >= declared.saturating_add(added) {
            let value = raw.target.as_ref().unwrap_or(&raw.action);
            return Err(check.err_hint(
                value,
                &format!("{at}.target"),
                format!(
                    "topic \"{topic}\" has no partition {partition} at {}: a later \
                     add-partitions creates it",
                    crate::scenario::format_duration(fault.at)
                ),
                "schedule this fault after the add-partitions that creates the partition",
            ));
        }
    }
    Ok(())
}

/// The action's single target, present, well-formed, of a kind the action accepts, existing.
pub(super) fn target(
    check: &Check<'_>,
    raw: &RawScheduled,
    at: &str,
    kind: FaultKind,
    scenario: &Scenario,
) -> R<Target> {
    let key = format!("{at}.target");
    let Some(value) = &raw.target else {
        let message = format!("\"{kind}\" needs a `target`");
        return Err(check.err_hint(&raw.action, &key, message, TARGET_FORMS));
    };
    let target = parse_target(check, value, &key, scenario)?;
    let fits = match kind {
        FaultKind::PowerLoss | FaultKind::SlowDisk => target.is_broker_side(),
        FaultKind::ConsumerCrash | FaultKind::ConsumerSlowdown => {
            matches!(target, Target::Consumer { .. })
        }
        FaultKind::ProducerCrash | FaultKind::ProducerPartition => {
            matches!(target, Target::Producer(_))
        }
        // A database's commits are durable (see sim/src/database.rs): it takes process
        // faults, pauses, partitions and slow links, not power loss or slow disks.
        _ => true,
    };
    if !fits {
        let wanted = match kind {
            FaultKind::ConsumerCrash | FaultKind::ConsumerSlowdown => "a consumer:GROUP/I target",
            FaultKind::ProducerCrash | FaultKind::ProducerPartition => "a producer:I target",
            _ if matches!(target, Target::Database { .. }) => {
                "a broker or controller target (a database takes crash, restart, pause, resume, partition and slow-link)"
            }
            _ => "a broker or controller target (clients have no disk)",
        };
        return Err(check.err(
            value,
            &key,
            format!("\"{kind}\" needs {wanted}, got \"{target}\""),
        ));
    }
    Ok(target)
}

/// Syntax and existence of one target.
fn parse_target(check: &Check<'_>, value: &S<String>, key: &str, scenario: &Scenario) -> R<Target> {
    let target =
        Target::parse(value.get_ref()).map_err(|m| check.err_hint(value, key, m, TARGET_FORMS))?;
    exists(&target, scenario)
        .map_err(|(message, hint)| check.err_hint(value, key, message, hint))?;
    Ok(target)
}

/// Whether the target names something the scenario declares; else a message and a hint.
fn exists(target: &Target, scenario: &Scenario) -> Result<(), (String, String)> {
    let brokers = scenario.cluster.brokers;
    let broker = |n: u32| {
        if n < brokers {
            Ok(())
        } else {
            Err((
                format!("broker {n} does not exist"),
                format!("brokers are numbered 0 to {}", brokers - 1),
            ))
        }
    };
    match target {
        Target::Broker(n) => broker(*n),
        Target::Brokers(ids) => ids.iter().try_for_each(|n| broker(*n)),
        Target::AllBrokers | Target::Controller => Ok(()),
        Target::Leader { topic, partition } => topic_partition(scenario, topic, *partition, false),
        Target::Follower { topic, partition } => topic_partition(scenario, topic, *partition, true),
        Target::Consumer { group, member } => {
            if !scenario.consumer_groups.iter().any(|g| &g.group == group) {
                let known: Vec<&str> = scenario
                    .consumer_groups
                    .iter()
                    .map(|g| g.group.as_str())
                    .collect();
                return Err((
                    format!("no consumer group \"{group}\" is declared"),
                    unknown_hint(group, &known),
                ));
            }
            // Tables sharing a group name are services in one Kafka group: their members
            // are numbered in file order across the tables.
            let members: u32 = scenario
                .consumer_groups
                .iter()
                .filter(|o| &o.group == group)
                .map(|o| o.members)
                .sum();
            if *member >= members {
                return Err((
                    format!("group \"{group}\" has no member {member}"),
                    format!("members are numbered 0 to {}", members - 1),
                ));
            }
            Ok(())
        }
        Target::Database { group } => {
            if let Some(g) = scenario.consumer_groups.iter().find(|g| &g.group == group) {
                if g.handler.sink.is_none() {
                    return Err((
                        format!("group \"{group}\" has no database: its handler declares no `sink`"),
                        "set `sink = \"plain\"` (or \"dedupe\", \"offsets-in-sink\") in its [consumer_groups.handler]".to_string(),
                    ));
                }
                return Ok(());
            }
            let known: Vec<&str> = scenario
                .consumer_groups
                .iter()
                .map(|g| g.group.as_str())
                .collect();
            Err((
                format!(
                    "no consumer group \"{group}\" is declared (a database belongs to a group)"
                ),
                unknown_hint(group, &known),
            ))
        }
        Target::Producer(i) => {
            let total = scenario.total_producers();
            if *i >= total {
                return Err((
                    format!("producer {i} does not exist ({total} declared)"),
                    "producers are numbered from 0 across every [[producers]] entry's count"
                        .to_string(),
                ));
            }
            Ok(())
        }
    }
}

fn topic_partition(
    scenario: &Scenario,
    topic: &str,
    partition: u32,
    follower: bool,
) -> Result<(), (String, String)> {
    let Some(t) = scenario.topic(topic) else {
        let known: Vec<&str> = scenario.topics.iter().map(|t| t.name.as_str()).collect();
        return Err((
            format!("no topic \"{topic}\" is declared"),
            unknown_hint(topic, &known),
        ));
    };
    if partition >= t.partitions {
        return Err((
            format!("topic \"{topic}\" has no partition {partition}"),
            format!("partitions are numbered 0 to {}", t.partitions - 1),
        ));
    }
    if follower && t.replication_factor < 2 {
        return Err((
            format!("topic \"{topic}\" has replication factor 1: no follower"),
            "raise replication_factor or target the leader".to_string(),
        ));
    }
    Ok(())
}

/// A partition: `groups = [[...], [...]]` or a single `target` (isolated from everyone else).
pub(super) fn partition(
    check: &Check<'_>,
    raw: &RawScheduled,
    at: &str,
    scenario: &Scenario,
) -> R<FaultAction> {
    let one_way = raw.one_way.as_ref().is_some_and(|o| *o.get_ref());
    let groups = match (&raw.groups, &raw.target) {
        (Some(_), Some(t)) => {
            return Err(check.err_hint(
                t,
                &format!("{at}.target"),
                "a partition takes `groups` or `target`, not both",
                "`target` alone isolates that node",
            ))
        }
        (None, Some(t)) => vec![vec![parse_target(
            check,
            t,
            &format!("{at}.target"),
            scenario,
        )?]],
        (None, None) => {
            return Err(check.err_hint(
                &raw.action,
                &format!("{at}.groups"),
                "a partition needs `groups` or a `target`",
                "groups = [[\"broker:0\"], [\"broker:1\", \"broker:2\"]]",
            ))
        }
        (Some(g), None) => partition_groups(check, g, &format!("{at}.groups"), scenario)?,
    };
    Ok(FaultAction::Partition { groups, one_way })
}

fn partition_groups(
    check: &Check<'_>,
    raw: &RawGroups,
    key: &str,
    scenario: &Scenario,
) -> R<Vec<Vec<Target>>> {
    if raw.get_ref().is_empty() {
        return Err(check.err(raw, key, "a partition needs at least one group"));
    }
    let mut seen: Vec<Target> = Vec::new();
    let mut groups = Vec::new();
    for (i, group) in raw.get_ref().iter().enumerate() {
        if group.get_ref().is_empty() {
            return Err(check.err(
                group,
                &format!("{key}[{i}]"),
                "a partition group must name at least one node",
            ));
        }
        let mut targets = Vec::new();
        for (j, value) in group.get_ref().iter().enumerate() {
            let at = format!("{key}[{i}][{j}]");
            let target = parse_target(check, value, &at, scenario)?;
            if seen.contains(&target) {
                return Err(check.err(value, &at, format!("\"{target}\" is in two groups")));
            }
            seen.push(target.clone());
            targets.push(target);
        }
        groups.push(targets);
    }
    Ok(groups)
}
