//! The application model of a consumer group (`[consumer_groups.handler]`, DESIGN §2 and §5):
//! processing time, when offsets are marked and committed, workers, sink, batching and what
//! happens when processing fails.

use super::duration::{parse_duration, DURATION_HINT};
use super::raw::{RawHandler, S};
use super::validate::{Check, R};
use super::{
    CommitMode, HandlerSpec, MarkPoint, OnFailure, ProcessTime, Routing, SendOffsets, SinkKind,
    TopicSpec,
};
use crate::database::{DEFAULT_LATENCY, MAX_LATENCY};
use std::time::Duration;

pub const MAX_WORKERS: i64 = 1_024;
pub const MAX_BATCH: i64 = 100_000;
/// Largest finite `max_attempts`.
pub const MAX_ATTEMPTS: i64 = 1_000_000;

const MARKS: [(&str, MarkPoint); 3] = [
    ("after-process", MarkPoint::AfterProcess),
    ("before-process", MarkPoint::BeforeProcess),
    ("never", MarkPoint::Never),
];
const COMMITS: [(&str, CommitMode); 4] = [
    ("auto", CommitMode::Auto),
    ("sync", CommitMode::Sync),
    ("async", CommitMode::Async),
    ("transaction", CommitMode::Transaction),
];
const ROUTINGS: [(&str, Routing); 2] =
    [("key", Routing::Key), ("round-robin", Routing::RoundRobin)];
const SINKS: [(&str, SinkKind); 3] = [
    ("plain", SinkKind::Plain),
    ("dedupe", SinkKind::Dedupe),
    ("offsets-in-sink", SinkKind::OffsetsInSink),
];
const SEND_OFFSETS: [(&str, SendOffsets); 2] = [
    ("group-metadata", SendOffsets::GroupMetadata),
    ("group-id", SendOffsets::GroupId),
];
const FAILURES: [(&str, OnFailure); 3] = [
    ("retry", OnFailure::Retry),
    ("skip", OnFailure::Skip),
    ("dlq", OnFailure::Dlq),
];

pub fn handler(
    check: &Check<'_>,
    raw: &RawHandler,
    at: &str,
    topics: &[TopicSpec],
) -> R<HandlerSpec> {
    let key = |name: &str| format!("{at}.{name}");
    let defaults = HandlerSpec::default();
    let spec = HandlerSpec {
        process_time: match &raw.process_time {
            Some(v) => process_time(check, v, &key("process_time"))?,
            None => defaults.process_time,
        },
        mark: pick_mark(check, &raw.mark, &key("mark"))?,
        commit: pick_commit(check, &raw.commit, &key("commit"))?,
        workers: check.count_or(&raw.workers, &key("workers"), 1, MAX_WORKERS, 1)?,
        routing: pick_routing(check, &raw.routing, &key("routing"))?,
        sink: pick_sink(check, &raw.sink, &key("sink"))?,
        batch: raw
            .batch
            .as_ref()
            .map(|v| check.count(v, &key("batch"), 1, MAX_BATCH))
            .transpose()?,
        batch_timeout: raw
            .batch_timeout
            .as_ref()
            .map(|v| check.duration(v, &key("batch_timeout")))
            .transpose()?,
        failure_rate: failure_rate(check, &raw.failure_rate, &key("failure_rate"))?,
        on_failure: pick_failure(check, &raw.on_failure, &key("on_failure"))?,
        dlq_topic: None,
        database_latency: database_latency(check, &raw.database_latency, &key("database_latency"))?,
        poison_rate: failure_rate(check, &raw.poison_rate, &key("poison_rate"))?,
        max_attempts: max_attempts(check, &raw.max_attempts, &key("max_attempts"))?,
        produce_to: raw
            .produce_to
            .as_ref()
            .map(|t| check.existing_topic(t, &key("produce_to"), topics))
            .transpose()?,
        send_offsets: match &raw.send_offsets {
            Some(v) => check.choice(v, &key("send_offsets"), &SEND_OFFSETS)?,
            None => SendOffsets::default(),
        },
    };
    produce_to_fits(check, raw, at, &spec)?;
    if let (Some(v), false) = (&raw.max_attempts, spec.on_failure == OnFailure::Retry) {
        return Err(check.err_hint(
            v,
            &key("max_attempts"),
            "max_attempts bounds the retries of `on_failure = \"retry\"`",
            "remove it, or set on_failure = \"retry\"",
        ));
    }
    if let (Some(v), None) = (&raw.batch_timeout, spec.batch) {
        return Err(check.err_hint(
            v,
            &key("batch_timeout"),
            "a batch timeout needs a batch handler",
            "set `batch` (records per batch) too",
        ));
    }
    let dlq_topic = dlq_topic(check, raw, at, spec.on_failure, topics)?;
    Ok(HandlerSpec { dlq_topic, ..spec })
}

/// `produce_to` and `commit = "transaction"`: what consume-transform-produce needs and what
/// it cannot be combined with.
fn produce_to_fits(check: &Check<'_>, raw: &RawHandler, at: &str, spec: &HandlerSpec) -> R<()> {
    let key = |name: &str| format!("{at}.{name}");
    if let (Some(commit), None) = (&raw.commit, &raw.produce_to) {
        if spec.commit == CommitMode::Transaction {
            return Err(check.err_hint(
                commit,
                &key("commit"),
                "commit = \"transaction\" commits the batch's offsets in the transaction of its \
                 outputs, and this handler writes no outputs",
                "add produce_to = \"TOPIC\" (the output topic), or commit = \"sync\"",
            ));
        }
    }
    if let (Some(v), false) = (&raw.send_offsets, spec.commit == CommitMode::Transaction) {
        return Err(check.err_hint(
            v,
            &key("send_offsets"),
            "send_offsets is the group argument of sendOffsetsToTransaction, which only \
             commit = \"transaction\" calls",
            "remove it, or set produce_to = \"TOPIC\" and commit = \"transaction\"",
        ));
    }
    let Some(topic) = &raw.produce_to else {
        return Ok(());
    };
    let conflict = if raw.sink.is_some() {
        Some(("sink", "the output topic is this service's sink"))
    } else if raw.workers.as_ref().is_some_and(|w| *w.get_ref() > 1) {
        Some((
            "workers",
            "produce_to runs on the poll loop, which ends each poll batch before it polls again",
        ))
    } else {
        raw.batch.as_ref().map(|_| {
            (
                "batch",
                "produce_to ends every poll batch itself (its transaction or flush)",
            )
        })
    };
    if let Some((name, why)) = conflict {
        return Err(check.err_hint(
            topic,
            &key("produce_to"),
            format!("produce_to cannot be combined with `{name}`: {why}"),
            format!("remove `{name}`"),
        ));
    }
    Ok(())
}

/// `max_attempts`: an integer 1..=[`MAX_ATTEMPTS`] or `"unlimited"` (None).
fn max_attempts(check: &Check<'_>, value: &Option<S<toml::Value>>, key: &str) -> R<Option<u32>> {
    let Some(v) = value else {
        return Ok(Some(kafsim_engine::app::failure::MAX_ATTEMPTS));
    };
    let hint =
        format!("an integer from 1 to {MAX_ATTEMPTS}, or \"unlimited\" (retry in place forever)");
    match v.get_ref() {
        toml::Value::String(s) if s == "unlimited" => Ok(None),
        toml::Value::Integer(n) if (1..=MAX_ATTEMPTS).contains(n) => Ok(Some(*n as u32)),
        toml::Value::Integer(n) => Err(check.err_hint(
            v,
            key,
            format!("max_attempts must be from 1 to {MAX_ATTEMPTS}, got {n}"),
            hint,
        )),
        other => Err(check.err_hint(
            v,
            key,
            format!("expected an integer or \"unlimited\", found {other}"),
            hint,
        )),
    }
}

/// `database_latency`: a duration up to [`MAX_LATENCY`].
fn database_latency(check: &Check<'_>, value: &Option<S<toml::Value>>, key: &str) -> R<Duration> {
    let Some(v) = value else {
        return Ok(DEFAULT_LATENCY);
    };
    let latency = check.duration(v, key)?;
    if latency > MAX_LATENCY {
        return Err(check.err_hint(
            v,
            key,
            format!(
                "a database statement of {} would come close to the members' statement timeout",
                super::format_duration(latency)
            ),
            format!(
                "at most {} (the default, {}, is a Postgres INSERT on a LAN)",
                super::format_duration(MAX_LATENCY),
                super::format_duration(DEFAULT_LATENCY)
            ),
        ));
    }
    Ok(latency)
}

fn pick_mark(check: &Check<'_>, value: &Option<S<String>>, key: &str) -> R<MarkPoint> {
    value.as_ref().map_or(Ok(MarkPoint::AfterProcess), |v| {
        check.choice(v, key, &MARKS)
    })
}

fn pick_commit(check: &Check<'_>, value: &Option<S<String>>, key: &str) -> R<CommitMode> {
    value
        .as_ref()
        .map_or(Ok(CommitMode::Auto), |v| check.choice(v, key, &COMMITS))
}

fn pick_routing(check: &Check<'_>, value: &Option<S<String>>, key: &str) -> R<Routing> {
    value
        .as_ref()
        .map_or(Ok(Routing::Key), |v| check.choice(v, key, &ROUTINGS))
}

fn pick_sink(check: &Check<'_>, value: &Option<S<String>>, key: &str) -> R<Option<SinkKind>> {
    value
        .as_ref()
        .map(|v| check.choice(v, key, &SINKS))
        .transpose()
}

fn pick_failure(check: &Check<'_>, value: &Option<S<String>>, key: &str) -> R<OnFailure> {
    value
        .as_ref()
        .map_or(Ok(OnFailure::Retry), |v| check.choice(v, key, &FAILURES))
}

/// "2ms" (fixed) or "1ms..20ms" (uniform, bounds included).
fn process_time(check: &Check<'_>, value: &S<toml::Value>, key: &str) -> R<ProcessTime> {
    let toml::Value::String(text) = value.get_ref() else {
        return check.duration(value, key).map(ProcessTime::Fixed);
    };
    let Some((low, high)) = text.split_once("..") else {
        return check.duration(value, key).map(ProcessTime::Fixed);
    };
    let hint = format!("a fixed time (\"2ms\") or a range (\"1ms..20ms\"); {DURATION_HINT}");
    let bound =
        |s: &str| parse_duration(s).map_err(|m| check.err_hint(value, key, m, hint.clone()));
    let (min, max): (Duration, Duration) = (bound(low)?, bound(high)?);
    if min > max {
        return Err(check.err_hint(
            value,
            key,
            format!("range \"{text}\" has its minimum above its maximum"),
            "write the smaller bound first",
        ));
    }
    Ok(ProcessTime::Uniform { min, max })
}

fn failure_rate(check: &Check<'_>, value: &Option<S<toml::Value>>, key: &str) -> R<f64> {
    let Some(value) = value else { return Ok(0.0) };
    let rate = check.number(value, key)?;
    if !(0.0..=1.0).contains(&rate) {
        return Err(check.err_hint(
            value,
            key,
            format!("must be from 0.0 to 1.0, got {rate}"),
            "the probability that processing one record fails",
        ));
    }
    Ok(rate)
}

/// `dlq_topic` is required exactly when `on_failure = "dlq"`, and must be a declared topic.
fn dlq_topic(
    check: &Check<'_>,
    raw: &RawHandler,
    at: &str,
    on_failure: OnFailure,
    topics: &[TopicSpec],
) -> R<Option<String>> {
    let key = format!("{at}.dlq_topic");
    match (&raw.dlq_topic, on_failure) {
        (Some(topic), OnFailure::Dlq) => check.existing_topic(topic, &key, topics).map(Some),
        (None, OnFailure::Dlq) => {
            let on = raw
                .on_failure
                .as_ref()
                .expect("dlq is only set by writing on_failure");
            Err(check.err_hint(
                on,
                &key,
                "on_failure = \"dlq\" needs a dead-letter topic",
                "set dlq_topic to a topic declared in [[topics]]",
            ))
        }
        (Some(topic), _) => Err(check.err_hint(
            topic,
            &key,
            "dlq_topic is only used when on_failure = \"dlq\"",
            "set on_failure = \"dlq\" or remove dlq_topic",
        )),
        (None, _) => Ok(None),
    }
}
