//! The service's database protocol: not Kafka, but the statements a service sends to the
//! database its group shares (DESIGN §8 "Service"). A member sends one statement per
//! processed record (or one read of the stored offsets when a partition is assigned) and
//! waits for the answer, as a JDBC `executeUpdate` or a Go `db.ExecContext` waits for the
//! server's reply.
//!
//! The database node itself is the host's (the simulator's `database` module): it is not
//! Kafka. The engine only speaks to it through these messages.

use crate::record::{Key, TopicPartition, ValueId};

/// What the consumer wants the database to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// Store the result of processing one record, in one transaction:
    /// - `Plain`: `INSERT INTO results ...` (nothing stops a second copy);
    /// - `Dedupe`: the same with a unique constraint on the record id: a second insert of a
    ///   stored value is refused;
    /// - `OffsetsInSink`: the insert plus `UPDATE offsets SET next = offset + 1 WHERE
    ///   partition = .. AND next <= offset`: when the stored offset is already past the
    ///   record the transaction is rolled back (the record is already in).
    Insert(Row),
    /// `SELECT next FROM offsets WHERE partition IN (..)`: where to resume on assignment.
    ReadOffsets(Vec<TopicPartition>),
}

/// One result row, with where the record came from and who wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub group: u32,
    pub member: u32,
    pub partition: TopicPartition,
    pub offset: u64,
    pub value: ValueId,
    pub key: Option<Key>,
}

impl Row {
    /// The history fact of this row stored: the member's own sink writes it at once, the
    /// group's database at its commit.
    pub fn sink_write(&self) -> crate::history::HistoryEvent {
        crate::history::HistoryEvent::SinkWrite {
            group: self.group,
            member: self.member,
            partition: self.partition,
            offset: self.offset,
            value: self.value,
            key: self.key,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseRequest {
    pub correlation_id: u64,
    pub statement: Statement,
}

/// The database's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatementResult {
    /// The transaction committed durably.
    Committed,
    /// The unique constraint or the offset guard refused the row: it is already stored.
    /// For the service this is success (the record's result is in the database).
    Refused,
    /// The stored next offset of each asked partition (`None`: nothing stored yet).
    Offsets(Vec<(TopicPartition, Option<u64>)>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseResponse {
    pub correlation_id: u64,
    pub result: StatementResult,
}

/// Modelled bytes of one statement (SQL text, bind parameters, protocol framing).
pub const STATEMENT_BYTES: u32 = 128;
