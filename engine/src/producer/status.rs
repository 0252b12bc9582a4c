//! A read-only snapshot of what a producer is doing, for the simulator's stall explanations
//! (DESIGN §8 "Drain": every stall explains itself). Nothing here changes the producer.
//!
//! It shows what Java's producer metrics would: records not yet completed
//! (`record-queue-time`, `buffer-available-bytes`), requests out (`requests-in-flight`), the
//! metadata it routes by, and the error codes its partition responses carried
//! (`record-error-total` by error).

use super::Producer;
use crate::node::NodeId;
use crate::protocol::ErrorCode;
use crate::record::TopicPartition;
use crate::time::Instant;

/// A producer's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerStatus {
    /// Records handed over by the application and not yet completed.
    pub outstanding_records: u32,
    /// Records waiting in the accumulator (not in a request yet).
    pub queued_records: usize,
    /// The earliest deadline of a request in flight (produce or InitProducerId).
    pub next_request_deadline: Option<Instant>,
    /// A Metadata request in flight: to whom, and its deadline.
    pub metadata_request: Option<(NodeId, Instant)>,
    /// No Metadata request before this instant.
    pub metadata_next_attempt: Instant,
    /// Per partition of its topic, the leader its metadata names.
    pub leaders: Vec<(TopicPartition, Option<NodeId>)>,
    /// The application is blocked in send() (full buffer or no metadata) since then.
    pub blocked_since: Option<Instant>,
    /// Error codes of partition responses, counted per attempt.
    pub errors: Vec<(ErrorCode, u64)>,
}

impl Producer {
    /// A snapshot of the producer's state, for explanations.
    pub fn status(&self) -> ProducerStatus {
        let topic = self.workload.spec().topic;
        let leaders = (0..self.metadata.partition_count().unwrap_or(0))
            .map(|p| {
                let tp = TopicPartition::new(topic, p);
                (tp, self.metadata.leader(tp))
            })
            .collect();
        ProducerStatus {
            outstanding_records: self.outstanding_records,
            queued_records: self.accumulator.queued_records(),
            next_request_deadline: self.sender.next_deadline(),
            metadata_request: self.metadata.in_flight.map(|m| (m.broker, m.deadline)),
            metadata_next_attempt: self.metadata.next_attempt,
            leaders,
            blocked_since: self.blocked.map(|b| b.since),
            errors: self.stats.errors.iter().map(|(e, n)| (*e, *n)).collect(),
        }
    }
}
