//! `kafsim replay --format perfetto`: the run as a Chrome trace (the JSON Trace Event Format
//! that ui.perfetto.dev and chrome://tracing open): `{"traceEvents": [...]}`.
//!
//! - One *process* per node, named by role (`broker-0`, `billing/1`) with `process_name`
//!   metadata; its threads are lanes.
//! - *Slices* (`ph: "X"`) for request handling: from the moment a node read a request to the
//!   moment it sent the response (so an `acks=all` produce lasts until the followers caught
//!   up). Concurrent requests of one node go to separate lanes (`requests 0`, `requests 1`,
//!   ...), assigned greedily so that slices of one lane never overlap: the format requires
//!   slices of a thread to nest.
//! - *Instant events* (`ph: "i"`, process scope) for faults, and thread-scoped instants for
//!   the history facts each node recorded, with their typed fields as `args`.
//! - *Flow events* (`ph: "s"` / `"t"` / `"f"`, one id per record) following each violated
//!   record from its send through the brokers that appended it to every poll and sink write,
//!   to its last appearance. A flow event binds to the slice that encloses it on its thread,
//!   so each step gets a short slice on a lane named after the record (`v123`).
//!
//! Timestamps are microseconds of simulated time. Everything is derived from the structured
//! trace and the history; the output is deterministic.

use crate::history::History;
use crate::names::Names;
use crate::trace::{history_json, TraceEvent, TraceKind};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Instant, NodeId, TopicPartition, ValueId};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Thread id of a node's instant events (faults, history facts).
const TID_EVENTS: u64 = 0;
/// Thread ids of request lanes start here.
const TID_REQUESTS: u64 = 1;
/// Thread ids of record lanes (one per followed record) start here.
const TID_RECORDS: u64 = 10_000;
/// Length of a record step's slice, in microseconds (long enough to click on).
const STEP_US: f64 = 50.0;
/// At most this many records are followed by flows.
pub const MAX_FLOWS: usize = 20;

/// What the Chrome trace is made of.
pub struct PerfettoInput<'a> {
    pub events: &'a [TraceEvent],
    pub names: &'a Names,
    pub history: &'a History,
    /// The records to follow with flow events (the violated ones), at most [`MAX_FLOWS`].
    pub follow: &'a [ValueId],
}

fn us(at: Instant) -> f64 {
    at.as_nanos() as f64 / 1000.0
}

fn pid(node: NodeId) -> u64 {
    node.0 as u64 + 1
}

/// A request slice before lane assignment.
struct Slice {
    node: NodeId,
    start: f64,
    end: f64,
    name: &'static str,
    args: Value,
}

/// The Chrome trace JSON document.
pub fn chrome_trace(input: &PerfettoInput) -> Value {
    let mut out: Vec<Value> = Vec::new();
    let names = input.names;
    for (i, name) in names.nodes().iter().enumerate() {
        let p = i as u64 + 1;
        out.push(
            json!({"ph": "M", "name": "process_name", "pid": p, "tid": 0,
            "args": {"name": name}}),
        );
        out.push(
            json!({"ph": "M", "name": "process_sort_index", "pid": p, "tid": 0,
            "args": {"sort_index": i}}),
        );
        out.push(
            json!({"ph": "M", "name": "thread_name", "pid": p, "tid": TID_EVENTS,
            "args": {"name": "events"}}),
        );
    }
    let mut slices = Vec::new();
    let mut open: BTreeMap<(NodeId, NodeId, u64), (f64, &'static str)> = BTreeMap::new();
    for e in input.events {
        match &e.kind {
            TraceKind::Receive(m) if !m.response => {
                if let Some(c) = m.correlation_id {
                    open.insert((e.node, m.peer, c), (us(e.at), m.request));
                }
            }
            TraceKind::Respond(m) => {
                let Some(c) = m.correlation_id else { continue };
                let Some((start, name)) = open.remove(&(e.node, m.peer, c)) else {
                    continue;
                };
                slices.push(Slice {
                    node: e.node,
                    start,
                    end: us(e.at),
                    name,
                    args: json!({
                        "from": names.node(m.peer),
                        "correlation_id": c,
                        "response": m.request,
                        "error": m.error.map(|x| format!("{x:?}")),
                        "partitions": m.partitions.iter().map(|p| json!({
                            "partition": names.tp(p.partition),
                            "offset": p.offset,
                            "error": p.error.map(|x| format!("{x:?}")),
                        })).collect::<Vec<_>>(),
                    }),
                });
            }
            TraceKind::Fault(what) => out.push(json!({"ph": "i", "s": "p", "name": what,
                "cat": "fault", "ts": us(e.at), "pid": pid(e.node), "tid": TID_EVENTS})),
            TraceKind::Record(h) => {
                let args = history_json(h, names);
                let name = args
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or("record")
                    .to_string();
                out.push(json!({"ph": "i", "s": "t", "name": name, "cat": "history",
                    "ts": us(e.at), "pid": pid(e.node), "tid": TID_EVENTS, "args": args}));
            }
            _ => {}
        }
    }
    out.extend(lanes(slices));
    out.extend(flows(input));
    json!({"traceEvents": out, "displayTimeUnit": "ms"})
}

/// Request slices as `X` events, each node's on lanes where no two overlap.
fn lanes(mut slices: Vec<Slice>) -> Vec<Value> {
    slices.sort_by(|a, b| {
        (a.node, a.start, a.end)
            .partial_cmp(&(b.node, b.start, b.end))
            .expect("finite times")
    });
    let mut out = Vec::new();
    let mut free_at: BTreeMap<NodeId, Vec<f64>> = BTreeMap::new();
    for s in slices {
        let lanes = free_at.entry(s.node).or_default();
        let lane = match lanes.iter().position(|end| *end <= s.start) {
            Some(i) => i,
            None => {
                lanes.push(0.0);
                out.push(json!({"ph": "M", "name": "thread_name", "pid": pid(s.node),
                    "tid": TID_REQUESTS + (lanes.len() - 1) as u64,
                    "args": {"name": format!("requests {}", lanes.len() - 1)}}));
                lanes.len() - 1
            }
        };
        lanes[lane] = s.end;
        out.push(
            json!({"ph": "X", "name": s.name, "cat": "request", "ts": s.start,
            "dur": s.end - s.start, "pid": pid(s.node), "tid": TID_REQUESTS + lane as u64,
            "args": s.args}),
        );
    }
    out
}

/// One step of a followed record: where and when it appeared, and as what.
struct Step {
    at: Instant,
    node: NodeId,
    what: String,
}

/// The steps of `value`: its send, the appends of its offset, acknowledgement, polls, sink
/// writes and its removal by truncation, in history order.
fn steps(history: &History, names: &Names, value: ValueId) -> Vec<Step> {
    let mut home: Option<(TopicPartition, u64)> = None;
    for e in history.entries() {
        if let Some((v, partition, offset)) = e.event.value_position() {
            if v == value && home.is_none() {
                home = Some((partition, offset));
            }
        }
    }
    let covers = |tp: &TopicPartition, lo: u64, hi: u64| {
        home.is_some_and(|(h, o)| h == *tp && (lo..hi).contains(&o))
    };
    let mut out = Vec::new();
    let mut seen = false;
    for e in history.entries() {
        let step = match &e.event {
            HistoryEvent::SendInvoke { value: v, .. } if *v == value => {
                Some((e.node, "send".to_string()))
            }
            HistoryEvent::SendOk {
                value: v,
                partition,
                offset,
                ..
            } if *v == value => Some((e.node, format!("ack {}", names.at(*partition, *offset)))),
            HistoryEvent::SendFail { value: v, .. } | HistoryEvent::SendInfo { value: v, .. }
                if *v == value =>
            {
                Some((e.node, "send outcome".to_string()))
            }
            HistoryEvent::Appended {
                broker,
                partition,
                base_offset,
                next_offset,
                leader,
                ..
            } if seen && covers(partition, *base_offset, *next_offset) => Some((
                *broker,
                if *leader {
                    "leader append"
                } else {
                    "replica append"
                }
                .to_string(),
            )),
            HistoryEvent::Truncated {
                broker,
                partition,
                offset,
                ..
            } if seen && covers(partition, *offset, u64::MAX) => {
                Some((*broker, "truncated away".to_string()))
            }
            HistoryEvent::Poll {
                value: v,
                group,
                member,
                ..
            } if *v == value => {
                Some((e.node, format!("poll by {}", names.member(*group, *member))))
            }
            HistoryEvent::SinkWrite { value: v, .. } if *v == value => {
                Some((e.node, "sink write".to_string()))
            }
            HistoryEvent::DeadLetter { value: v, .. } if *v == value => {
                Some((e.node, "dead letter".to_string()))
            }
            _ => None,
        };
        if let Some((node, what)) = step {
            seen = true;
            out.push(Step {
                at: e.at,
                node,
                what,
            });
        }
    }
    out
}

/// Slices and flow events following each record of `input.follow`.
fn flows(input: &PerfettoInput) -> Vec<Value> {
    let mut out = Vec::new();
    for (j, value) in input.follow.iter().take(MAX_FLOWS).enumerate() {
        let steps = steps(input.history, input.names, *value);
        if steps.len() < 2 {
            continue;
        }
        let tid = TID_RECORDS + j as u64;
        let label = format!("v{}", value.0);
        let mut lane_end: BTreeMap<NodeId, f64> = BTreeMap::new();
        let mut last_ts = f64::MIN;
        for (k, step) in steps.iter().enumerate() {
            if !lane_end.contains_key(&step.node) {
                out.push(
                    json!({"ph": "M", "name": "thread_name", "pid": pid(step.node),
                    "tid": tid, "args": {"name": label}}),
                );
            }
            // Steps of one lane must not overlap, and a flow must not go back in time.
            let start = us(step.at)
                .max(lane_end.get(&step.node).copied().unwrap_or(f64::MIN))
                .max(last_ts);
            lane_end.insert(step.node, start + STEP_US);
            last_ts = start;
            out.push(json!({"ph": "X", "name": format!("{label} {}", step.what),
                "cat": "record", "ts": start, "dur": STEP_US, "pid": pid(step.node),
                "tid": tid, "args": {"value": value.0, "step": step.what}}));
            let ph = match k {
                0 => "s",
                k if k + 1 == steps.len() => "f",
                _ => "t",
            };
            let mut flow = json!({"ph": ph, "name": label, "cat": "record", "id": j + 1,
                "ts": start, "pid": pid(step.node), "tid": tid});
            if ph == "f" {
                flow["bp"] = json!("e");
            }
            out.push(flow);
        }
    }
    out
}

/// Checks `doc` against the Trace Event Format rules a viewer relies on; the errors found.
/// Every event has `ph`, `pid`, `tid` and (except metadata) a finite `ts >= 0`; every pid
/// used is named by `process_name` metadata; every `B` has an `E` on its thread; `X` slices
/// of one thread nest; every flow id has one `s` and one `f`, with `s <= t <= f` in time,
/// and each flow event lies inside a slice of its thread (what it binds to).
pub fn validate(doc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(events) = doc.get("traceEvents").and_then(Value::as_array) else {
        return vec!["no traceEvents array".to_string()];
    };
    let mut named = std::collections::BTreeSet::new();
    let mut used = std::collections::BTreeSet::new();
    let mut begins: BTreeMap<(u64, u64), i64> = BTreeMap::new();
    let mut slices: BTreeMap<(u64, u64), Vec<(f64, f64)>> = BTreeMap::new();
    let mut flows: BTreeMap<u64, Vec<(String, f64, u64, u64)>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let ph = e.get("ph").and_then(Value::as_str).unwrap_or("");
        let (Some(p), Some(t)) = (
            e.get("pid").and_then(Value::as_u64),
            e.get("tid").and_then(Value::as_u64),
        ) else {
            errors.push(format!("event {i} lacks pid/tid"));
            continue;
        };
        if ph == "M" {
            if e.get("name").and_then(Value::as_str) == Some("process_name") {
                named.insert(p);
            }
            continue;
        }
        used.insert(p);
        let ts = e.get("ts").and_then(Value::as_f64).unwrap_or(-1.0);
        if !(ts >= 0.0 && ts.is_finite()) {
            errors.push(format!("event {i} ({ph}) has no valid ts"));
        }
        match ph {
            "B" => *begins.entry((p, t)).or_default() += 1,
            "E" => *begins.entry((p, t)).or_default() -= 1,
            "X" => {
                let dur = e.get("dur").and_then(Value::as_f64).unwrap_or(-1.0);
                if dur < 0.0 {
                    errors.push(format!("slice {i} has no valid dur"));
                }
                slices.entry((p, t)).or_default().push((ts, ts + dur));
            }
            "s" | "t" | "f" => {
                let id = e.get("id").and_then(Value::as_u64).unwrap_or(0);
                flows
                    .entry(id)
                    .or_default()
                    .push((ph.to_string(), ts, p, t));
            }
            "i" | "I" | "C" => {}
            other => errors.push(format!("event {i}: unknown phase {other:?}")),
        }
    }
    for p in used.difference(&named) {
        errors.push(format!("pid {p} has no process_name metadata"));
    }
    for ((p, t), n) in &begins {
        if *n != 0 {
            errors.push(format!("pid {p} tid {t}: B and E do not match ({n:+})"));
        }
    }
    for ((p, t), v) in &mut slices {
        v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        // Properly nested: a slice starting inside another ends inside it too.
        let mut stack: Vec<f64> = Vec::new();
        for (s, e) in v.iter() {
            while stack.last().is_some_and(|end| *end <= *s) {
                stack.pop();
            }
            if stack.last().is_some_and(|end| *e > *end) {
                errors.push(format!("pid {p} tid {t}: slice at {s} overlaps its parent"));
            }
            stack.push(*e);
        }
    }
    for (id, steps) in &flows {
        let count = |ph: &str| steps.iter().filter(|s| s.0 == ph).count();
        if count("s") != 1 || count("f") != 1 {
            errors.push(format!(
                "flow {id}: {} starts and {} ends",
                count("s"),
                count("f")
            ));
        }
        let order = |ph: &str| match ph {
            "s" => 0,
            "t" => 1,
            _ => 2,
        };
        let mut sorted = steps.clone();
        sorted.sort_by(|a, b| a.1.partial_cmp(&b.1).expect("finite"));
        if sorted.windows(2).any(|w| order(&w[0].0) > order(&w[1].0)) {
            errors.push(format!("flow {id} goes back in time"));
        }
        for (ph, ts, p, t) in steps {
            let inside = slices
                .get(&(*p, *t))
                .is_some_and(|v| v.iter().any(|(s, e)| s <= ts && ts <= e));
            if !inside {
                errors.push(format!("flow {id} {ph} at {ts} binds to no slice"));
            }
        }
    }
    errors
}
