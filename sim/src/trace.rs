//! The trace: a stable 64-bit hash over a canonical encoding of every delivered event, and an
//! optional structured log of them ([`TraceEvent`]) for `kafsim replay --trace`, rendered as
//! text lines or JSON objects with typed fields (node, kind, request, partition, offset,
//! error code) by [`TraceEvent::text`] and [`TraceEvent::json`], and as a Chrome trace by
//! [`crate::perfetto`]. Events hold indices; names come from [`Names`] when rendered.
//!
//! The hash mixes one 64-bit word per step (rotate, xor, multiply by an odd constant, as
//! FxHash does) — not std's `DefaultHasher`, whose algorithm is unspecified and may change
//! between Rust releases: the same run gives the same hash on every machine and toolchain.

use crate::names::Names;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::{ErrorCode, Exchange, Message};
use kafsim_engine::{Instant, NodeId, TopicPartition};
use serde_json::{json, Map, Value};

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

/// A streaming 64-bit hash of words and strings.
#[derive(Clone, Debug)]
pub struct TraceHasher {
    state: u64,
}

impl Default for TraceHasher {
    fn default() -> Self {
        TraceHasher { state: OFFSET }
    }
}

impl TraceHasher {
    pub fn word(&mut self, w: u64) {
        self.state = (self.state.rotate_left(5) ^ w).wrapping_mul(MULTIPLIER);
    }

    pub fn str(&mut self, s: &str) {
        self.word(s.len() as u64);
        for chunk in s.as_bytes().chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.word(u64::from_le_bytes(buf));
        }
    }

    /// The hash so far, with a final avalanche so that close states give distant hashes.
    pub fn finish(&self) -> u64 {
        let mut x = self.state;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
}

/// What the trace text log records, when enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TraceLevel {
    /// Hash only.
    #[default]
    Off,
    /// One line per delivered message, timer, disk completion, fault and history event.
    Events,
}

/// One traced event of a node, in simulated time.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceEvent {
    pub at: Instant,
    pub node: NodeId,
    pub kind: TraceKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum TraceKind {
    /// The node's state machine started (fresh or after a restart).
    Start,
    /// A message from `peer` was handed to the node.
    Receive(MessageInfo),
    /// The node sent a response to `peer` (requests are traced where they are received).
    Respond(MessageInfo),
    /// A response could not be sent: the connection its request came on had ended.
    ResponseLost(MessageInfo),
    Timer {
        kind: u16,
        key: u64,
    },
    Fsync {
        token: u64,
    },
    /// A fault hit the node (`crash`, `restart`, `power-loss`, `pause`, `resume`, `cut`,
    /// `slowdown`, `slow-disk`).
    Fault(&'static str),
    /// The node recorded a history fact.
    Record(HistoryEvent),
    /// Messages from `from` held behind a partition were retransmitted to the node.
    Retransmit {
        from: NodeId,
        count: usize,
    },
    /// The node closed its connection to `peer`.
    CloseConnection {
        peer: NodeId,
    },
}

/// The typed summary of a message: enough to follow requests, partitions, offsets and errors
/// without the payload.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageInfo {
    pub peer: NodeId,
    pub request: &'static str,
    pub correlation_id: Option<u64>,
    pub response: bool,
    pub bytes: u32,
    /// The message-level error, or the first partition error.
    pub error: Option<ErrorCode>,
    pub partitions: Vec<PartitionInfo>,
}

/// One partition of a message.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionInfo {
    pub partition: TopicPartition,
    /// Produce response: base offset; fetch request: fetch offset; fetch response: first
    /// record returned; commit: offset committed; list offsets / offset fetch: the answer.
    pub offset: Option<u64>,
    pub records: u64,
    pub high_watermark: Option<u64>,
    pub error: Option<ErrorCode>,
}

fn part(partition: TopicPartition) -> PartitionInfo {
    PartitionInfo {
        partition,
        offset: None,
        records: 0,
        high_watermark: None,
        error: None,
    }
}

fn error(e: ErrorCode) -> Option<ErrorCode> {
    (e != ErrorCode::None).then_some(e)
}

impl MessageInfo {
    /// The summary of `msg` exchanged with `peer`.
    pub fn of(msg: &Message, peer: NodeId, bytes: u32) -> MessageInfo {
        let (correlation_id, response) = match msg.exchange() {
            Exchange::Request { correlation_id, .. } => (Some(correlation_id), false),
            Exchange::Response { correlation_id } => (Some(correlation_id), true),
            Exchange::Other => (None, false),
        };
        let (top, partitions) = partitions_of(msg);
        let error = top.or_else(|| partitions.iter().find_map(|p| p.error));
        MessageInfo {
            peer,
            request: msg.kind(),
            correlation_id,
            response,
            bytes,
            error,
            partitions,
        }
    }
}

/// The message-level error and the partitions of the messages that carry them.
fn partitions_of(msg: &Message) -> (Option<ErrorCode>, Vec<PartitionInfo>) {
    use Message::*;
    match msg {
        ProduceRequest(m) => (
            None,
            m.batches
                .iter()
                .map(|(tp, b)| PartitionInfo {
                    records: b.record_count(),
                    ..part(*tp)
                })
                .collect(),
        ),
        ProduceResponse(m) => (
            None,
            m.partitions
                .iter()
                .map(|p| PartitionInfo {
                    offset: Some(p.base_offset),
                    error: error(p.error),
                    ..part(p.partition)
                })
                .collect(),
        ),
        FetchRequest(m) => (
            None,
            m.partitions
                .iter()
                .map(|p| PartitionInfo {
                    offset: Some(p.fetch_offset),
                    ..part(p.partition)
                })
                .collect(),
        ),
        FetchResponse(m) => (
            None,
            m.partitions
                .iter()
                .map(|p| PartitionInfo {
                    offset: p.batches.first().map(|b| b.base_offset),
                    records: p.batches.iter().map(|b| b.record_count()).sum(),
                    high_watermark: Some(p.high_watermark),
                    error: error(p.error),
                    ..part(p.partition)
                })
                .collect(),
        ),
        ListOffsetsResponse(m) => (
            None,
            m.partitions
                .iter()
                .map(|(tp, e, o)| PartitionInfo {
                    offset: Some(*o),
                    error: error(*e),
                    ..part(*tp)
                })
                .collect(),
        ),
        OffsetCommitRequest(m) => (
            None,
            m.offsets
                .iter()
                .map(|(tp, o, _)| PartitionInfo {
                    offset: Some(*o),
                    ..part(*tp)
                })
                .collect(),
        ),
        OffsetCommitResponse(m) => (
            None,
            m.results
                .iter()
                .map(|(tp, e)| PartitionInfo {
                    error: error(*e),
                    ..part(*tp)
                })
                .collect(),
        ),
        OffsetFetchResponse(m) => (
            error(m.error),
            m.offsets
                .iter()
                .map(|(tp, o)| PartitionInfo {
                    offset: *o,
                    ..part(*tp)
                })
                .collect(),
        ),
        JoinGroupResponse(m) => (error(m.error), Vec::new()),
        SyncGroupResponse(m) => (error(m.error), Vec::new()),
        HeartbeatResponse(m) => (error(m.error), Vec::new()),
        LeaveGroupResponse(m) => (error(m.error), Vec::new()),
        FindCoordinatorResponse(m) => (error(m.error), Vec::new()),
        InitProducerIdResponse(m) => (error(m.error), Vec::new()),
        _ => (None, Vec::new()),
    }
}

impl TraceEvent {
    /// `12.345ms broker-0 recv ProduceRequest from producer-0 ...`: one line of `--trace`.
    pub fn text(&self, names: &Names) -> String {
        let what = match &self.kind {
            TraceKind::Start => "start".to_string(),
            TraceKind::Receive(m) => format!("recv {}", message_text(m, "from", names)),
            TraceKind::Respond(m) => format!("send {}", message_text(m, "to", names)),
            TraceKind::ResponseLost(m) => {
                format!(
                    "lost {} (its connection ended)",
                    message_text(m, "to", names)
                )
            }
            TraceKind::Timer { kind, key } => format!("timer {kind}:{key}"),
            TraceKind::Fsync { token } => format!("fsync done token {token}"),
            TraceKind::Fault(what) => format!("fault {what}"),
            TraceKind::Record(e) => format!("record {}", history_text(e, names)),
            TraceKind::Retransmit { from, count } => format!(
                "{count} messages from {} retransmitted after a partition",
                names.node(*from)
            ),
            TraceKind::CloseConnection { peer } => {
                format!("close connection to {}", names.node(*peer))
            }
        };
        format!("{} {} {what}", self.at, names.node(self.node))
    }

    /// One JSON object with typed fields: `at_ns`, `at`, `node`, `kind` and the kind's own.
    pub fn json(&self, names: &Names) -> Value {
        let mut o = Map::new();
        o.insert("at_ns".into(), json!(self.at.as_nanos()));
        o.insert("at".into(), json!(self.at.to_string()));
        o.insert("node".into(), json!(names.node(self.node)));
        let (kind, fields) = match &self.kind {
            TraceKind::Start => ("start", Map::new()),
            TraceKind::Receive(m) => ("receive", message_json(m, "from", names)),
            TraceKind::Respond(m) => ("respond", message_json(m, "to", names)),
            TraceKind::ResponseLost(m) => ("response-lost", message_json(m, "to", names)),
            TraceKind::Timer { kind, key } => ("timer", object(json!({"timer": kind, "key": key}))),
            TraceKind::Fsync { token } => ("fsync", object(json!({ "token": token }))),
            TraceKind::Fault(what) => ("fault", object(json!({ "fault": what }))),
            TraceKind::Record(e) => ("record", history_json(e, names)),
            TraceKind::Retransmit { from, count } => (
                "retransmit",
                object(json!({"from": names.node(*from), "count": count})),
            ),
            TraceKind::CloseConnection { peer } => (
                "close-connection",
                object(json!({ "peer": names.node(*peer) })),
            ),
        };
        o.insert("kind".into(), json!(kind));
        o.extend(fields);
        Value::Object(o)
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn message_text(m: &MessageInfo, dir: &str, names: &Names) -> String {
    let mut t = format!("{} {dir} {}", m.request, names.node(m.peer));
    if let Some(c) = m.correlation_id {
        t.push_str(&format!(" #{c}"));
    }
    for p in &m.partitions {
        t.push(' ');
        t.push_str(&names.tp(p.partition));
        if let Some(o) = p.offset {
            t.push_str(&format!("@{o}"));
        }
        if p.records > 0 {
            t.push_str(&format!("+{}", p.records));
        }
        if let Some(hw) = p.high_watermark {
            t.push_str(&format!(" hw {hw}"));
        }
        if let Some(e) = p.error {
            t.push_str(&format!(" {e:?}"));
        }
    }
    if let (Some(e), true) = (m.error, m.partitions.is_empty()) {
        t.push_str(&format!(" error {e:?}"));
    }
    t
}

fn message_json(m: &MessageInfo, dir: &str, names: &Names) -> Map<String, Value> {
    let partitions: Vec<Value> = m
        .partitions
        .iter()
        .map(|p| {
            json!({
                "partition": names.tp(p.partition),
                "offset": p.offset,
                "records": p.records,
                "high_watermark": p.high_watermark,
                "error": p.error.map(|e| format!("{e:?}")),
            })
        })
        .collect();
    object(json!({
        dir: names.node(m.peer),
        "request": m.request,
        "correlation_id": m.correlation_id,
        "response": m.response,
        "bytes": m.bytes,
        "error": m.error.map(|e| format!("{e:?}")),
        "partitions": partitions,
    }))
}

/// `Poll member=billing/0 partition=orders/1 offset=63 value=17`: a fact on one line.
pub fn history_text(e: &HistoryEvent, names: &Names) -> String {
    let fields = history_json(e, names);
    let mut t = fields
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    for (k, v) in fields.iter().filter(|(k, v)| *k != "event" && !v.is_null()) {
        match v {
            Value::String(s) => t.push_str(&format!(" {k}={s}")),
            other => t.push_str(&format!(" {k}={other}")),
        }
    }
    t
}

/// A history fact as typed fields: `event` (its name) and every field, with names.
pub fn history_json(e: &HistoryEvent, names: &Names) -> Map<String, Value> {
    use HistoryEvent::*;
    let tp = |p: &TopicPartition| json!(names.tp(*p));
    let member = |g: &u32, m: &u32| json!(names.member(*g, *m));
    let v = match e {
        SendInvoke {
            producer,
            value,
            key,
            topic,
            ..
        } => json!({"event": "SendInvoke", "producer": names.producer(*producer),
            "value": value.0, "key": key.map(|k| k.0), "topic": names.topic(*topic)}),
        SendOk {
            producer,
            value,
            partition,
            offset,
        } => json!({"event": "SendOk", "producer": names.producer(*producer), "value": value.0,
            "partition": tp(partition), "offset": offset}),
        SendFail {
            producer,
            value,
            error,
        } => json!({"event": "SendFail", "producer": names.producer(*producer), "value": value.0,
            "error": format!("{error:?}")}),
        SendInfo {
            producer,
            value,
            reason,
        } => json!({"event": "SendInfo", "producer": names.producer(*producer), "value": value.0,
            "reason": reason}),
        Assigned {
            group,
            member: m,
            generation,
            partitions,
        } => {
            let mut v = json!({"event": "Assigned", "member": member(group, m),
                "generation": generation,
                "partitions": partitions.iter().map(tp).collect::<Vec<_>>()});
            // A static member's instance id: who it is across restarts (dynamic: no field).
            if let Some(id) = names.member_instance(*group, *m) {
                v["instance"] = json!(id);
            }
            v
        }
        // A record as read and as stored: the same fields (see `HistoryEvent::Poll`).
        Poll {
            group,
            member: m,
            partition,
            offset,
            value,
            key,
        }
        | SinkWrite {
            group,
            member: m,
            partition,
            offset,
            value,
            key,
        } => json!({"event": if matches!(e, Poll { .. }) { "Poll" } else { "SinkWrite" },
            "member": member(group, m), "partition": tp(partition), "offset": offset,
            "value": value.0, "key": key.map(|k| k.0)}),
        Commit {
            group,
            member: m,
            generation,
            partition,
            offset,
            error,
        } => json!({"event": "Commit", "member": member(group, m), "generation": generation,
            "partition": tp(partition), "offset": offset,
            "error": (*error != ErrorCode::None).then(|| format!("{error:?}"))}),
        OffsetsStored {
            group,
            member: m,
            generation,
            partition,
            offset,
        } => json!({"event": "OffsetsStored", "group": group.as_ref(),
            "member": names.node(*m), "generation": generation, "partition": tp(partition),
            "offset": offset}),
        DeadLetter {
            group,
            member: m,
            value,
        } => json!({"event": "DeadLetter", "member": member(group, m), "value": value.0}),
        Resumed {
            group,
            member: m,
            generation,
            partition,
            offset,
        } => json!({"event": "Resumed", "member": member(group, m), "generation": generation,
            "partition": tp(partition), "offset": offset}),
        PositionReset {
            group,
            member: m,
            partition,
            offset,
            cause,
        } => json!({"event": "PositionReset", "member": member(group, m),
            "partition": tp(partition), "offset": offset, "cause": cause.name()}),
        TxnBegin { producer, txn } | TxnCommit { producer, txn } | TxnAbort { producer, txn } => {
            let event = match e {
                TxnBegin { .. } => "TxnBegin",
                TxnCommit { .. } => "TxnCommit",
                _ => "TxnAbort",
            };
            json!({"event": event, "producer": names.producer(*producer), "txn": txn})
        }
        TxnUnknown {
            producer,
            txn,
            reason,
        } => json!({"event": "TxnUnknown", "producer": names.producer(*producer), "txn": txn,
            "reason": reason}),
        TxnValue {
            producer,
            txn,
            value,
        } => json!({"event": "TxnValue", "producer": names.producer(*producer), "txn": txn,
            "value": value.0}),
        Appended {
            broker,
            partition,
            leader_epoch,
            base_offset,
            next_offset,
            leader,
        } => json!({"event": "Appended", "broker": names.node(*broker),
            "partition": tp(partition), "leader_epoch": leader_epoch,
            "base_offset": base_offset, "next_offset": next_offset, "leader": leader}),
        HighWatermark {
            broker,
            partition,
            leader_epoch,
            high_watermark,
        } => json!({"event": "HighWatermark", "broker": names.node(*broker),
            "partition": tp(partition), "leader_epoch": leader_epoch,
            "high_watermark": high_watermark}),
        BecameLeader {
            broker,
            partition,
            leader_epoch,
            log_end_offset,
        } => json!({"event": "BecameLeader", "broker": names.node(*broker),
            "partition": tp(partition), "leader_epoch": leader_epoch,
            "log_end_offset": log_end_offset}),
        Truncated {
            broker,
            partition,
            offset,
            reason,
        } => json!({"event": "Truncated", "broker": names.node(*broker),
            "partition": tp(partition), "offset": offset, "reason": reason}),
        IsrChanged {
            partition,
            leader_epoch,
            isr,
        } => json!({"event": "IsrChanged", "partition": tp(partition),
            "leader_epoch": leader_epoch,
            "isr": isr.iter().map(|n| names.node(*n)).collect::<Vec<_>>()}),
        // Facts added later print their Debug text until they get fields of their own.
        #[allow(unreachable_patterns)]
        other => json!({ "event": format!("{other:?}") }),
    };
    object(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable() {
        let mut h = TraceHasher::default();
        h.word(42);
        h.str("ProduceRequest");
        // Pinned: changing the hash function changes every recorded trace hash.
        assert_eq!(h.finish(), 0x2915_b84a_afeb_bd19, "{:#x}", h.finish());
        let mut g = TraceHasher::default();
        g.word(43);
        g.str("ProduceRequest");
        assert_ne!(h.finish(), g.finish());
    }
}
