//! Each client's consume loop: when the offset of a record the application was handed becomes
//! committable (its *mark*), as the code a user writes with that client does it.
//!
//! The handler keys stay client-neutral (`mark`, `commit`); what they mean depends on the loop:
//!
//! - Java (`KafkaConsumer.poll()` loop): `poll()` returns up to `max.poll.records` records.
//!   Auto-commit commits the *positions* after the previous poll's records whatever `mark`
//!   says (`ConsumerCoordinator.maybeAutoCommitOffsetsAsync`); a manual `commitSync` /
//!   `commitAsync` commits what the application marked. `mark = "before-process"` is the
//!   usual mistake of committing a poll's offsets before processing it: every record of the
//!   poll is marked when `poll()` returns.
//! - sarama (`ConsumerGroupHandler.ConsumeClaim`: `for msg := range claim.Messages()`, one
//!   goroutine per claimed partition, so claims process side by side; see `Consumer::new`):
//!   `session.MarkMessage` is called for one message at a time, so `mark = "before-process"`
//!   marks a record when the loop takes it up, not when the fetch returned it
//!   (IBM/sarama `consumer_group.go` `MarkMessage` -> `offset_manager.go`
//!   `partitionOffsetManager.MarkOffset`); the offset manager commits the marks every
//!   `Consumer.Offsets.AutoCommit.Interval` and when the session ends (`offsetManager.Close`
//!   flushes once more).
//! - kafka-go (`Reader` with a GroupID): `commit = "auto"` is `ReadMessage`, which is
//!   `FetchMessage` followed by `CommitMessages` *before it returns* (segmentio/kafka-go
//!   `reader.go`): the record is marked when it is handed over, whatever `mark` says, and the
//!   commit is synchronous when `CommitInterval` is 0. When that commit fails (after
//!   `defaultCommitRetries` = 3 attempts) ReadMessage returns the error and the message is
//!   dropped: the application never processes it. `commit = "sync"` / `"async"` is
//!   `FetchMessage` + `CommitMessages` where the application calls it, after processing with
//!   the default `mark`.
//! - librdkafka (`rd_kafka_consumer_poll` loop): with `enable.auto.offset.store = true` (its
//!   default) the offset is stored when the message is handed to the application
//!   (confluentinc/librdkafka `rdkafka_op.c` `rd_kafka_fetch_op_app_prepare`, run as the
//!   message is returned by `rd_kafka_consumer_poll`, calls `rd_kafka_offset_store0` of
//!   `rdkafka_offset.c` when `enable.auto.offset.store` is set), whatever `mark` says;
//!   the auto-commit timer commits stored offsets. With `false` the application stores with
//!   `rd_kafka_offsets_store` where `mark` says.
//!
//! `mark = "never"` is the application that forgot to mark (or to commit): nothing it
//! processed is ever committed, so a restarted member starts over from the last committed
//! offset (or `auto.offset.reset`).

use super::profile::ClientKind;
use crate::app::{CommitMode, Mark};

/// When a handed-over record's offset is marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkAt {
    /// When `poll()` (ReadMessage, consumer_poll) returns it.
    Delivery,
    /// When the application takes it up for processing (sarama's per-message loop).
    ProcessStart,
    /// When processing ended.
    ProcessEnd,
    /// Never.
    Never,
}

/// Where a loop marks a record's offset, and why, in the user's words (for explanations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkRule {
    pub at: MarkAt,
    /// The setting or code that puts the mark there, e.g. `mark = before-process` or
    /// `enable.auto.offset.store = true, librdkafka's default`.
    pub why: &'static str,
}

/// The loop's mark point for `client` with the handler's `mark` and `commit`.
/// `auto_offset_store` is librdkafka's `enable.auto.offset.store` (ignored elsewhere).
pub fn mark_at(
    client: ClientKind,
    mark: Mark,
    commit: CommitMode,
    auto_offset_store: bool,
) -> MarkAt {
    mark_rule(client, mark, commit, auto_offset_store).at
}

/// [`mark_at`] with the reason a story gives for it.
pub fn mark_rule(
    client: ClientKind,
    mark: Mark,
    commit: CommitMode,
    auto_offset_store: bool,
) -> MarkRule {
    let (at, why) = match (client, mark) {
        // kafka-go ReadMessage commits before returning.
        (ClientKind::KafkaGo, _) if commit == CommitMode::Auto => (
            MarkAt::Delivery,
            "kafka-go's ReadMessage commits it before returning it",
        ),
        // librdkafka stores the offset when it hands the message over.
        (ClientKind::Librdkafka, _) if auto_offset_store => (
            MarkAt::Delivery,
            "enable.auto.offset.store = true, librdkafka's default",
        ),
        (_, Mark::Never) => (MarkAt::Never, "mark = never"),
        (_, Mark::AfterProcess) => (MarkAt::ProcessEnd, "mark = after-process"),
        // A Java poll loop committing before processing commits the whole poll.
        (ClientKind::Java, Mark::BeforeProcess) => (MarkAt::Delivery, "mark = before-process"),
        (_, Mark::BeforeProcess) => (MarkAt::ProcessStart, "mark = before-process"),
    };
    MarkRule { at, why }
}

/// Why a handler's explicit `mark` cannot be honoured by the client's loop, if it cannot:
/// the message and a hint for the scenario error.
pub fn mark_conflict(
    client: ClientKind,
    mark: Mark,
    commit: CommitMode,
    auto_commit: bool,
    auto_offset_store: bool,
) -> Option<(String, String)> {
    let word = match mark {
        Mark::AfterProcess => "after-process",
        Mark::BeforeProcess => return None,
        Mark::Never => "never",
    };
    match client {
        ClientKind::KafkaGo if commit == CommitMode::Auto => Some((
            format!("mark = \"{word}\" cannot hold with kafka-go's ReadMessage (commit = \"auto\"): it commits each message before returning it"),
            "use commit = \"sync\" (FetchMessage + CommitMessages after processing), or leave mark out".into(),
        )),
        ClientKind::Librdkafka if auto_offset_store => Some((
            format!("mark = \"{word}\" cannot hold with librdkafka's enable.auto.offset.store = true: it stores each offset when the message is handed over"),
            "set \"enable.auto.offset.store\" = false in [consumer_groups.config] (the application then stores offsets itself), or leave mark out".into(),
        )),
        ClientKind::Java if mark == Mark::Never && auto_commit && commit == CommitMode::Auto => Some((
            "mark = \"never\" has no effect on Java's auto-commit: it commits the positions poll() reached whatever the application does".into(),
            "set \"enable.auto.commit\" = false for an application that never commits".into(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_marks_where_its_loop_does() {
        use ClientKind::*;
        let (a, b, n) = (Mark::AfterProcess, Mark::BeforeProcess, Mark::Never);
        let auto = CommitMode::Auto;
        let sync = CommitMode::Sync;
        assert_eq!(mark_at(Java, b, auto, true), MarkAt::Delivery);
        assert_eq!(mark_at(Sarama, b, auto, true), MarkAt::ProcessStart);
        assert_eq!(mark_at(Sarama, a, auto, true), MarkAt::ProcessEnd);
        assert_eq!(mark_at(KafkaGo, a, auto, true), MarkAt::Delivery);
        assert_eq!(mark_at(KafkaGo, a, sync, true), MarkAt::ProcessEnd);
        assert_eq!(mark_at(Librdkafka, a, auto, true), MarkAt::Delivery);
        assert_eq!(mark_at(Librdkafka, a, auto, false), MarkAt::ProcessEnd);
        assert_eq!(mark_at(Librdkafka, n, auto, false), MarkAt::Never);
        assert_eq!(mark_at(Sarama, n, auto, true), MarkAt::Never);
    }

    #[test]
    fn marks_a_loop_cannot_honour_are_refused() {
        use ClientKind::*;
        let auto = CommitMode::Auto;
        assert!(mark_conflict(KafkaGo, Mark::AfterProcess, auto, true, true).is_some());
        assert!(mark_conflict(KafkaGo, Mark::AfterProcess, CommitMode::Sync, true, true).is_none());
        assert!(mark_conflict(Librdkafka, Mark::Never, auto, true, true).is_some());
        assert!(mark_conflict(Librdkafka, Mark::Never, auto, true, false).is_none());
        assert!(mark_conflict(Java, Mark::Never, auto, true, true).is_some());
        assert!(mark_conflict(Java, Mark::Never, auto, false, true).is_none());
        assert!(mark_conflict(Sarama, Mark::BeforeProcess, auto, true, true).is_none());
    }
}
