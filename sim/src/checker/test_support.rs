//! Builders for the crafted histories of the checker tests: one call per event, time in
//! milliseconds, so each test reads as the story it tells.

use super::{CheckConfig, GroupCheck};
use crate::history::{History, HistoryEntry};
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::{HistoryEvent, ResetCause};
use kafsim_engine::protocol::ErrorCode;
use kafsim_engine::{Instant, Key, NodeId, TopicId, TopicPartition, ValueId};

pub const T0: TopicId = TopicId(0);
/// A consume-transform-produce group's output topic.
pub const OUT: TopicId = TopicId(7);

pub fn tp(partition: u32) -> TopicPartition {
    TopicPartition::new(T0, partition)
}

pub fn v(id: u64) -> ValueId {
    ValueId(id)
}

/// A history under construction.
#[derive(Default)]
pub struct Story {
    history: History,
}

impl Story {
    pub fn new() -> Story {
        Story::default()
    }

    pub fn event(&mut self, at_ms: u64, event: HistoryEvent) -> &mut Story {
        self.history.push(HistoryEntry {
            at: Instant::from_millis(at_ms),
            node: NodeId(0),
            event,
        });
        self
    }

    pub fn invoke(&mut self, at: u64, producer: u32, value: u64, key: Option<u32>) -> &mut Story {
        self.event(
            at,
            HistoryEvent::SendInvoke {
                producer,
                value: v(value),
                key: key.map(Key),
                topic: T0,
                scheduled: None,
            },
        )
    }

    pub fn ok(&mut self, at: u64, producer: u32, value: u64, part: u32, off: u64) -> &mut Story {
        self.event(
            at,
            HistoryEvent::SendOk {
                producer,
                value: v(value),
                partition: tp(part),
                offset: off,
            },
        )
    }

    /// Invoke then acknowledge in one step (key = none).
    pub fn send(&mut self, at: u64, producer: u32, value: u64, part: u32, off: u64) -> &mut Story {
        self.invoke(at, producer, value, None)
            .ok(at, producer, value, part, off)
    }

    pub fn info(&mut self, at: u64, producer: u32, value: u64) -> &mut Story {
        self.event(
            at,
            HistoryEvent::SendInfo {
                producer,
                value: v(value),
                reason: "request timed out",
            },
        )
    }

    /// A definite failure (the broker refused before appending: NOT_ENOUGH_REPLICAS).
    pub fn fail(&mut self, at: u64, producer: u32, value: u64) -> &mut Story {
        self.fail_with(at, producer, value, ErrorCode::NotEnoughReplicas)
    }

    pub fn fail_with(
        &mut self,
        at: u64,
        producer: u32,
        value: u64,
        error: ErrorCode,
    ) -> &mut Story {
        self.event(
            at,
            HistoryEvent::SendFail {
                producer,
                value: v(value),
                error,
            },
        )
    }

    pub fn assign(&mut self, at: u64, group: u32, member: u32, parts: &[u32]) -> &mut Story {
        self.assign_gen(at, group, member, 1, parts)
    }

    /// An assignment of a given generation.
    pub fn assign_gen(
        &mut self,
        at: u64,
        group: u32,
        member: u32,
        generation: i32,
        parts: &[u32],
    ) -> &mut Story {
        self.event(
            at,
            HistoryEvent::Assigned {
                group,
                member,
                generation,
                partitions: parts.iter().map(|p| tp(*p)).collect(),
            },
        )
    }

    pub fn txn_unknown(&mut self, at: u64, producer: u32, txn: u64) -> &mut Story {
        self.event(
            at,
            HistoryEvent::TxnUnknown {
                producer,
                txn,
                reason: "EndTxn timed out",
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn poll(
        &mut self,
        at: u64,
        group: u32,
        member: u32,
        part: u32,
        off: u64,
        value: u64,
    ) -> &mut Story {
        self.event(
            at,
            HistoryEvent::Poll {
                group,
                member,
                partition: tp(part),
                offset: off,
                value: v(value),
                key: None,
            },
        )
    }

    pub fn reset(&mut self, at: u64, group: u32, member: u32, part: u32, off: u64) -> &mut Story {
        self.event(
            at,
            HistoryEvent::PositionReset {
                group,
                member,
                partition: tp(part),
                offset: off,
                cause: ResetCause::Seek,
            },
        )
    }

    pub fn sink(&mut self, at: u64, group: u32, part: u32, off: u64, value: u64) -> &mut Story {
        self.event(
            at,
            HistoryEvent::SinkWrite {
                group,
                member: 0,
                partition: tp(part),
                offset: off,
                value: v(value),
                key: None,
            },
        )
    }

    /// The final read found a committed record of `value` at `out`@`off` of `group`'s
    /// output topic (`OUT`).
    pub fn output(&mut self, at: u64, group: u32, out: u32, off: u64, value: u64) -> &mut Story {
        self.event(
            at,
            HistoryEvent::OutputRecord {
                group,
                partition: TopicPartition::new(OUT, out),
                offset: off,
                value: v(value),
            },
        )
    }

    /// The database refused a write of `value` (already stored).
    pub fn refused(&mut self, at: u64, group: u32, part: u32, off: u64, value: u64) -> &mut Story {
        self.event(
            at,
            HistoryEvent::SinkRefused {
                group,
                member: 1,
                partition: tp(part),
                offset: off,
                value: v(value),
            },
        )
    }

    pub fn dead_letter(&mut self, at: u64, group: u32, value: u64) -> &mut Story {
        self.event(
            at,
            HistoryEvent::DeadLetter {
                group,
                member: 0,
                value: v(value),
            },
        )
    }

    pub fn txn_value(&mut self, at: u64, producer: u32, txn: u64, value: u64) -> &mut Story {
        self.event(
            at,
            HistoryEvent::TxnValue {
                producer,
                txn,
                value: v(value),
            },
        )
    }

    pub fn txn_commit(&mut self, at: u64, producer: u32, txn: u64) -> &mut Story {
        self.event(at, HistoryEvent::TxnCommit { producer, txn })
    }

    pub fn txn_abort(&mut self, at: u64, producer: u32, txn: u64) -> &mut Story {
        self.event(at, HistoryEvent::TxnAbort { producer, txn })
    }

    pub fn history(&self) -> &History {
        &self.history
    }
}

/// A group consuming topic 0.
pub fn group(group: u32, read_committed: bool, has_sink: bool) -> GroupCheck {
    GroupCheck {
        group,
        name: format!("g{group}"),
        topics: vec![T0],
        read_committed,
        has_sink,
        partitions: None,
        output: None,
    }
}

pub fn config(groups: Vec<GroupCheck>) -> CheckConfig {
    CheckConfig::new(Instant::from_millis(10_000), groups)
}

/// Violations of one kind.
pub fn of_kind(violations: &[Violation], kind: ViolationKind) -> Vec<&Violation> {
    violations.iter().filter(|x| x.kind == kind).collect()
}

/// The signature every checker module exposes.
pub type CheckFn = fn(&History, &super::index::HistoryIndex, &CheckConfig, &mut super::Collector);

/// Runs one checker module alone over a story.
pub fn run(check: CheckFn, story: &Story, config: &CheckConfig) -> Vec<Violation> {
    let index = super::index::HistoryIndex::build(story.history(), |g| config.read_committed(g));
    let mut out = super::Collector::new(config.max_per_kind);
    check(story.history(), &index, config, &mut out);
    out.finish(config.end)
}

/// The kinds of a list of violations, in order (for exact expectations).
pub fn kinds(violations: &[Violation]) -> Vec<ViolationKind> {
    violations.iter().map(|x| x.kind).collect()
}
