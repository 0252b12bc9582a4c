//! A read-only snapshot of what a consumer is doing, for the simulator's stall explanations
//! (DESIGN §8 "Drain": every stall explains itself). Nothing here changes the consumer.
//!
//! What a stuck member shows is what a Kafka operator would look at first: the member's state
//! in the group protocol and its generation (`kafka-consumer-groups --describe --state`), what
//! it owns and where its positions are (`--describe --offsets`), and the requests it has out
//! (the client's `request-latency` / `connection` metrics: which broker, since when).

use super::membership::MemberState;
use super::{database, Consumer, Need, Req};
use crate::node::NodeId;
use crate::record::TopicPartition;
use crate::time::Instant;

/// One request the consumer has in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestStatus {
    /// The request's API name (`Fetch`, `JoinGroup`, `OffsetCommit`, ...).
    pub api: &'static str,
    pub to: NodeId,
    pub sent_at: Instant,
}

/// One partition the consumer knows about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionStatus {
    pub partition: TopicPartition,
    /// The next offset the consumer will fetch, once known.
    pub position: Option<u64>,
    /// What the consumer still needs before it can fetch: `committed offset`, `offset reset`,
    /// `no offset (auto.offset.reset=none)` or `nothing`.
    pub waiting_for: &'static str,
    /// Records fetched and not yet handed to the application.
    pub buffered: usize,
}

/// A consumer's state in the group and on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerStatus {
    /// `unjoined`, `joining`, `syncing` or `stable`.
    pub member_state: &'static str,
    /// The member must rejoin at its next poll.
    pub rejoin_pending: bool,
    pub member_id: String,
    pub generation: i32,
    pub coordinator: Option<NodeId>,
    /// Partitions owned (assigned and not revoked).
    pub assignment: Vec<TopicPartition>,
    pub partitions: Vec<PartitionStatus>,
    pub inflight: Vec<RequestStatus>,
    /// When the application last called poll().
    pub last_poll: Instant,
    /// The application is inside poll(): no record in processing, no commit it waits for.
    pub application_idle: bool,
    /// Brokers that last failed a request (timeout or reset), and when.
    pub failed_brokers: Vec<(NodeId, Instant)>,
    /// The records the application's processors hold (poll loop first, then workers).
    pub processing: Vec<ProcessingStatus>,
}

/// A record a processor holds: being processed, retried, or waiting for the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessingStatus {
    pub partition: TopicPartition,
    pub offset: u64,
    pub value: crate::record::ValueId,
    /// Processing attempts so far (1 = the first).
    pub attempt: u32,
    /// Processed; its result's statement waits for the database's answer or a retry.
    pub awaiting_database: bool,
}

fn api(req: &Req) -> &'static str {
    match req {
        Req::Metadata => "Metadata",
        Req::FindCoordinator => "FindCoordinator",
        Req::Join => "JoinGroup",
        Req::Sync => "SyncGroup",
        Req::Heartbeat => "Heartbeat",
        Req::Leave => "LeaveGroup",
        Req::Commit(_) => "OffsetCommit",
        Req::OffsetFetch(_) => "OffsetFetch",
        Req::ListOffsets(_) => "ListOffsets",
        Req::Fetch(_) => "Fetch",
        Req::DeadLetter { .. } => "Produce (dead letter)",
        Req::Statement(database::StatementFor::Insert(_)) => "database insert",
        Req::Statement(database::StatementFor::Read) => "database offsets read",
    }
}

fn waiting_for(need: Need) -> &'static str {
    match need {
        Need::Committed => "committed offset",
        Need::Reset(_) => "offset reset",
        Need::Stuck => "no offset (auto.offset.reset=none)",
        Need::Nothing => "nothing",
        Need::Stored => "offset stored in the database",
    }
}

impl Consumer {
    /// A snapshot of the member's state, for explanations.
    pub fn status(&self) -> ConsumerStatus {
        ConsumerStatus {
            member_state: match self.group.state {
                MemberState::Unjoined => "unjoined",
                MemberState::Joining => "joining",
                MemberState::Syncing => "syncing",
                MemberState::Stable => "stable",
            },
            rejoin_pending: self.group.rejoin,
            member_id: self.group.member_id.clone(),
            generation: self.group.generation,
            coordinator: self.group.coordinator,
            assignment: self.group.owned.clone(),
            partitions: self
                .parts
                .iter()
                .map(|(tp, p)| PartitionStatus {
                    partition: *tp,
                    position: p.position,
                    waiting_for: waiting_for(p.need),
                    buffered: p.buffered.len(),
                })
                .collect(),
            inflight: self
                .inflight
                .values()
                .map(|f| RequestStatus {
                    api: api(&f.req),
                    to: f.to,
                    sent_at: f.sent_at,
                })
                .collect(),
            last_poll: self.poll.last_poll,
            application_idle: self.poll_thread_idle() && self.procs.pool_idle(),
            failed_brokers: self.failed_at.iter().map(|(b, t)| (*b, *t)).collect(),
            processing: self
                .procs
                .all
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    let c = p.current?;
                    Some(ProcessingStatus {
                        partition: c.rec.partition,
                        offset: c.rec.offset,
                        value: c.rec.value,
                        attempt: c.attempt,
                        awaiting_database: self.sink.inserts.contains_key(&i),
                    })
                })
                .collect(),
        }
    }
}
