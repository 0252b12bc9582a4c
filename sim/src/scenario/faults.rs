//! The `[faults]` section: the random nemesis (kinds, mean interval) and the scripted schedule.
//! Each scheduled action takes exactly its own parameters (`latency` only for slow-link, ...),
//! and every target must name something the scenario declares: a broker index below
//! `cluster.brokers`, a topic and partition that exist, a group member or producer index in
//! range.

use super::duration::{parse_duration, DURATION_HINT};
use super::raw::{RawFaults, RawGroups, RawScheduled, S};
use super::target::{FaultKind, Target, TARGET_FORMS};
use super::validate::{Check, R};
use super::{FaultAction, FaultSpec, Scenario, ScheduledFault, DEFAULT_RANDOM_KINDS};
use crate::scenario::error::unknown_hint;
use std::time::Duration;
use targets::{not_before_added, partition, target};

mod targets;

/// Largest slowdown factor (slow disk, slow consumer).
pub const MAX_FACTOR: f64 = 1_000_000.0;

pub fn faults(check: &Check<'_>, raw: &RawFaults, scenario: &Scenario) -> R<FaultSpec> {
    let random = raw.random.as_ref().is_some_and(|r| *r.get_ref());
    let kinds = random_kinds(check, raw, random, scenario)?;
    let mean_interval = check.duration_or(
        &raw.mean_interval,
        "faults.mean_interval",
        Duration::from_secs(5),
    )?;
    if let (Some(v), true) = (&raw.mean_interval, mean_interval.is_zero()) {
        return Err(check.err(v, "faults.mean_interval", "must be longer than 0s"));
    }
    let undo_after = match &raw.undo_after {
        Some(v) => Some(undo_after(check, v, random)?),
        None => None,
    };
    // A partition a scripted `add-partitions` creates may be the target of a later fault: the
    // targets are checked against each topic's size once every addition is made, then against
    // its size at the fault's own time.
    let mut grown = scenario.clone();
    for s in raw
        .schedule
        .iter()
        .filter(|s| s.action.get_ref() == "add-partitions")
    {
        let (Some(topic), Some(count)) = (&s.topic, &s.count) else {
            continue;
        };
        if let Some(t) = grown.topics.iter_mut().find(|t| t.name == *topic.get_ref()) {
            let count = u32::try_from(*count.get_ref()).unwrap_or(0);
            t.partitions = t.partitions.saturating_add(count);
        }
    }
    let schedule = raw
        .schedule
        .iter()
        .enumerate()
        .map(|(i, s)| scheduled(check, s, &format!("faults.schedule[{i}]"), scenario, &grown))
        .collect::<R<Vec<_>>>()?;
    for (i, (fault, raw)) in schedule.iter().zip(&raw.schedule).enumerate() {
        not_before_added(
            check,
            fault,
            raw,
            &format!("faults.schedule[{i}]"),
            scenario,
            &schedule,
        )?;
    }
    Ok(FaultSpec {
        random,
        kinds,
        mean_interval,
        undo_after,
        schedule,
    })
}

/// Largest `undo_after` bound: a fault longer than a day is a different scenario.
const MAX_UNDO_AFTER: Duration = Duration::from_secs(86_400);

/// `undo_after = "20s..90s"`: how long each random fault lasts, in place of its kind's range.
fn undo_after(check: &Check<'_>, value: &S<toml::Value>, random: bool) -> R<(Duration, Duration)> {
    let key = "faults.undo_after";
    let hint = format!("a range such as \"20s..90s\" (both bounds included); {DURATION_HINT}");
    if !random {
        return Err(check.err_hint(
            value,
            key,
            "applies to random faults only, and `random` is not true",
            "set `random = true`, or give each scripted fault its own `duration`",
        ));
    }
    let toml::Value::String(text) = value.get_ref() else {
        return Err(check.err_hint(value, key, "expected a string", hint));
    };
    let Some((low, high)) = text.split_once("..") else {
        return Err(check.err_hint(value, key, format!("\"{text}\" is not a range"), hint));
    };
    let bound =
        |s: &str| parse_duration(s).map_err(|m| check.err_hint(value, key, m, hint.clone()));
    let (min, max) = (bound(low)?, bound(high)?);
    if min.is_zero() || min > max || max > MAX_UNDO_AFTER {
        return Err(check.err_hint(
            value,
            key,
            format!("range \"{text}\" must go from more than 0s up to at most 1 day, smaller bound first"),
            hint,
        ));
    }
    Ok((min, max))
}

fn random_kinds(
    check: &Check<'_>,
    raw: &RawFaults,
    random: bool,
    scenario: &Scenario,
) -> R<Vec<FaultKind>> {
    let Some(list) = &raw.kinds else {
        return Ok(if random {
            DEFAULT_RANDOM_KINDS.to_vec()
        } else {
            Vec::new()
        });
    };
    if random && list.get_ref().is_empty() {
        return Err(check.err_hint(
            list,
            "faults.kinds",
            "random = true needs at least one kind",
            "leave `kinds` out for the default crash, power-loss, pause, partition",
        ));
    }
    let mut kinds: Vec<FaultKind> = Vec::new();
    for (i, value) in list.get_ref().iter().enumerate() {
        let key = format!("faults.kinds[{i}]");
        let kind = fault_kind(check, value, &key)?;
        if kind.is_undo() {
            return Err(check.err_hint(
                value,
                &key,
                format!("\"{kind}\" undoes a fault and is not a random kind"),
                "the random nemesis restarts, resumes and heals by itself",
            ));
        }
        if kind.is_operation() {
            return Err(check.err_hint(
                value,
                &key,
                format!("\"{kind}\" is an operator's action, not a random fault"),
                "schedule it in a [[faults.schedule]] entry with `topic` and `count`",
            ));
        }
        if kinds.contains(&kind) {
            return Err(check.err(value, &key, format!("\"{kind}\" is listed twice")));
        }
        needs_clients(check, value, &key, kind, scenario)?;
        kinds.push(kind);
    }
    Ok(kinds)
}

fn fault_kind(check: &Check<'_>, value: &S<String>, key: &str) -> R<FaultKind> {
    FaultKind::parse(value.get_ref()).ok_or_else(|| {
        let hint = unknown_hint(value.get_ref(), &FaultKind::names());
        check.err_hint(
            value,
            key,
            format!("unknown fault \"{}\"", value.get_ref()),
            hint,
        )
    })
}

/// Client faults need clients to hit.
fn needs_clients(
    check: &Check<'_>,
    value: &S<String>,
    key: &str,
    kind: FaultKind,
    scenario: &Scenario,
) -> R<()> {
    let consumer = matches!(kind, FaultKind::ConsumerCrash | FaultKind::ConsumerSlowdown);
    if consumer && scenario.consumer_groups.is_empty() {
        return Err(check.err(
            value,
            key,
            format!("\"{kind}\" needs a consumer group, and none is declared"),
        ));
    }
    let producer = matches!(
        kind,
        FaultKind::ProducerCrash | FaultKind::ProducerPartition
    );
    if producer && scenario.producers.is_empty() {
        return Err(check.err(
            value,
            key,
            format!("\"{kind}\" needs a producer, and none is declared"),
        ));
    }
    Ok(())
}

fn scheduled(
    check: &Check<'_>,
    raw: &RawScheduled,
    at: &str,
    scenario: &Scenario,
    targets: &Scenario,
) -> R<ScheduledFault> {
    let key = |name: &str| format!("{at}.{name}");
    let time = check.duration(&raw.at, &key("at"))?;
    if time >= scenario.duration {
        let message = format!(
            "fault at {} is not within the {} safety phase",
            super::format_duration(time),
            super::format_duration(scenario.duration)
        );
        return Err(check.err_hint(
            &raw.at,
            &key("at"),
            message,
            "faults happen during `duration`; the heal phase follows it",
        ));
    }
    let kind = fault_kind(check, &raw.action, &key("action"))?;
    reject_foreign_parameters(check, raw, at, kind)?;
    let undo_after = match &raw.duration {
        Some(v) => Some(positive_duration(check, v, &key("duration"))?),
        None => None,
    };
    let action = action(check, raw, at, kind, scenario, targets)?;
    let (line, _) = super::error::line_column(check.loc.text, raw.action.span().start);
    Ok(ScheduledFault {
        at: time,
        action,
        undo_after,
        line,
    })
}

fn positive_duration(check: &Check<'_>, value: &S<toml::Value>, key: &str) -> R<Duration> {
    let d = check.duration(value, key)?;
    if d.is_zero() {
        return Err(check.err(value, key, "must be longer than 0s"));
    }
    Ok(d)
}

/// A parameter the action does not take is an error (it would silently do nothing).
fn reject_foreign_parameters(
    check: &Check<'_>,
    raw: &RawScheduled,
    at: &str,
    kind: FaultKind,
) -> R<()> {
    use FaultKind::*;
    let spans: [(&str, Option<std::ops::Range<usize>>, bool); 8] = [
        (
            "duration",
            raw.duration.as_ref().map(S::span),
            !kind.is_undo() && !kind.is_operation(),
        ),
        (
            "topic",
            raw.topic.as_ref().map(S::span),
            kind == AddPartitions,
        ),
        (
            "count",
            raw.count.as_ref().map(S::span),
            kind == AddPartitions,
        ),
        (
            "latency",
            raw.latency.as_ref().map(S::span),
            kind == SlowLink,
        ),
        (
            "factor",
            raw.factor.as_ref().map(S::span),
            matches!(kind, SlowDisk | ConsumerSlowdown),
        ),
        (
            "groups",
            raw.groups.as_ref().map(S::span),
            kind == Partition,
        ),
        (
            "one_way",
            raw.one_way.as_ref().map(S::span),
            kind == Partition,
        ),
        ("tear", raw.tear.as_ref().map(S::span), kind == PowerLoss),
    ];
    for (name, span, allowed) in spans {
        if let (Some(span), false) = (span, allowed) {
            let message = format!("`{name}` does not apply to \"{kind}\"");
            return Err(check
                .loc
                .error(span, format!("{at}.{name}"), message)
                .with_hint(parameter_hint(name)));
        }
    }
    Ok(())
}

fn parameter_hint(name: &str) -> &'static str {
    match name {
        "duration" => {
            "`duration` undoes a crash, power-loss, pause, partition or slowdown after that long"
        }
        "latency" => "`latency` is the extra delay of slow-link",
        "factor" => "`factor` is the slowdown of slow-disk and consumer-slowdown",
        "groups" | "one_way" => "`groups` and `one_way` shape a partition",
        "topic" | "count" => "`topic` and `count` say what add-partitions grows, and by how many",
        _ => "`tear` tears the last write of a power-loss",
    }
}

fn action(
    check: &Check<'_>,
    raw: &RawScheduled,
    at: &str,
    kind: FaultKind,
    scenario: &Scenario,
    targets: &Scenario,
) -> R<FaultAction> {
    use FaultKind::*;
    if kind == Partition {
        return partition(check, raw, at, targets);
    }
    if kind == AddPartitions {
        return add_partitions(check, raw, at, scenario);
    }
    if kind == Heal {
        return match &raw.target {
            Some(t) => Err(check.err_hint(
                t,
                &format!("{at}.target"),
                "heal takes no target",
                "heal lifts every partition and slow link",
            )),
            None => Ok(FaultAction::Heal),
        };
    }
    let target = target(check, raw, at, kind, targets)?;
    Ok(match kind {
        Crash => FaultAction::Crash(target),
        Restart => FaultAction::Restart(target),
        PowerLoss => FaultAction::PowerLoss {
            target,
            tear: raw.tear.as_ref().is_some_and(|t| *t.get_ref()),
        },
        Pause => FaultAction::Pause(target),
        Resume => FaultAction::Resume(target),
        SlowLink => FaultAction::SlowLink {
            target,
            latency: required_latency(check, raw, at)?,
        },
        SlowDisk => FaultAction::SlowDisk {
            target,
            factor: required_factor(check, raw, at)?,
        },
        ConsumerCrash => FaultAction::ConsumerCrash(target),
        ConsumerSlowdown => FaultAction::ConsumerSlowdown {
            target,
            factor: required_factor(check, raw, at)?,
        },
        ProducerCrash => FaultAction::ProducerCrash(target),
        ProducerPartition => FaultAction::ProducerPartition(target),
        Partition | Heal | AddPartitions => unreachable!("handled above"),
    })
}

/// `add-partitions`: an existing `topic`, and a `count` of partitions to add that keeps the
/// topic within the partition limit of a `[[topics]]` declaration.
fn add_partitions(
    check: &Check<'_>,
    raw: &RawScheduled,
    at: &str,
    scenario: &Scenario,
) -> R<FaultAction> {
    if let Some(t) = &raw.target {
        return Err(check.err_hint(
            t,
            &format!("{at}.target"),
            "add-partitions takes no target",
            "name the topic with `topic = \"...\"` and the partitions to add with `count`",
        ));
    }
    let Some(topic) = &raw.topic else {
        return Err(check.err_hint(
            &raw.action,
            &format!("{at}.topic"),
            "add-partitions needs `topic`",
            "e.g. topic = \"orders\", count = 2",
        ));
    };
    let name = check.existing_topic(topic, &format!("{at}.topic"), &scenario.topics)?;
    let Some(count) = &raw.count else {
        return Err(check.err_hint(
            &raw.action,
            &format!("{at}.count"),
            "add-partitions needs `count`",
            "`count` is how many partitions to add, e.g. count = 2",
        ));
    };
    let current = scenario.topic(&name).map_or(0, |t| t.partitions) as i64;
    let limit = super::validate::MAX_PARTITIONS;
    let count = check
        .count(count, &format!("{at}.count"), 1, limit - current)
        .map_err(|e| {
            e.with_hint(format!(
                "`count` is how many partitions to add to the {current} of \"{name}\" \
                 (a topic has at most {limit})"
            ))
        })?;
    Ok(FaultAction::AddPartitions { topic: name, count })
}

fn required_latency(check: &Check<'_>, raw: &RawScheduled, at: &str) -> R<Duration> {
    let key = format!("{at}.latency");
    match &raw.latency {
        Some(v) => positive_duration(check, v, &key),
        None => Err(check.err_hint(
            &raw.action,
            &key,
            "slow-link needs `latency`",
            "e.g. latency = \"200ms\"",
        )),
    }
}

fn required_factor(check: &Check<'_>, raw: &RawScheduled, at: &str) -> R<f64> {
    let key = format!("{at}.factor");
    let Some(value) = &raw.factor else {
        let message = format!("\"{}\" needs `factor`", raw.action.get_ref());
        return Err(check.err_hint(
            &raw.action,
            &key,
            message,
            "e.g. factor = 10 (ten times slower)",
        ));
    };
    let factor = check.number(value, &key)?;
    if factor <= 1.0 || factor > MAX_FACTOR {
        return Err(check.err(
            value,
            &key,
            format!("a slowdown factor must be above 1 and at most {MAX_FACTOR}, got {factor}"),
        ));
    }
    Ok(factor)
}
