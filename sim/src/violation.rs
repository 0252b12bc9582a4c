//! Violation kinds (DESIGN §4, exact strings) and the violation record every checker emits.

use kafsim_engine::{Instant, TopicPartition, ValueId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    LostWrite,
    Unseen,
    Duplicate,
    InconsistentOffsets,
    NonmonotonicSend,
    NonmonotonicPoll,
    PollSkip,
    KeyOrder,
    AbortedRead,
    SinkLoss,
    SinkDuplicate,
    Divergence,
    Invariant,
    Panic,
    Stall,
    /// A group caught up later than `[expect].catch_up_within` after the heal (or never).
    Lag,
}

impl ViolationKind {
    pub const ALL: [ViolationKind; 16] = [
        ViolationKind::LostWrite,
        ViolationKind::Unseen,
        ViolationKind::Duplicate,
        ViolationKind::InconsistentOffsets,
        ViolationKind::NonmonotonicSend,
        ViolationKind::NonmonotonicPoll,
        ViolationKind::PollSkip,
        ViolationKind::KeyOrder,
        ViolationKind::AbortedRead,
        ViolationKind::SinkLoss,
        ViolationKind::SinkDuplicate,
        ViolationKind::Divergence,
        ViolationKind::Invariant,
        ViolationKind::Panic,
        ViolationKind::Stall,
        ViolationKind::Lag,
    ];

    /// The exact string of DESIGN §4.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::LostWrite => "lost-write",
            ViolationKind::Unseen => "unseen",
            ViolationKind::Duplicate => "duplicate",
            ViolationKind::InconsistentOffsets => "inconsistent-offsets",
            ViolationKind::NonmonotonicSend => "nonmonotonic-send",
            ViolationKind::NonmonotonicPoll => "nonmonotonic-poll",
            ViolationKind::PollSkip => "poll-skip",
            ViolationKind::KeyOrder => "key-order",
            ViolationKind::AbortedRead => "aborted-read",
            ViolationKind::SinkLoss => "sink-loss",
            ViolationKind::SinkDuplicate => "sink-duplicate",
            ViolationKind::Divergence => "divergence",
            ViolationKind::Invariant => "invariant",
            ViolationKind::Panic => "panic",
            ViolationKind::Stall => "stall",
            ViolationKind::Lag => "lag",
        }
    }

    pub fn parse(s: &str) -> Option<ViolationKind> {
        ViolationKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One violation found in one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    pub partition: Option<TopicPartition>,
    pub offset: Option<u64>,
    pub value: Option<ValueId>,
    /// The other record of a pair: the earlier send a `nonmonotonic-send` landed below, the
    /// first value at an `inconsistent-offsets` offset (its cause names both).
    pub other: Option<ValueId>,
    /// Simulated time at which the violation became evident (or the fact it is about).
    pub at: Instant,
    /// One line a human reads (a `panic` or a `stall` adds indented lines).
    pub detail: String,
    /// A `panic`: the node that panicked, by its name (`broker-2`).
    pub node: Option<String>,
    /// A `panic`: the event its handler was running for (`a FetchRequest from broker-0`).
    pub event: Option<String>,
}

impl Violation {
    pub fn new(kind: ViolationKind, at: Instant, detail: impl Into<String>) -> Violation {
        Violation {
            kind,
            partition: None,
            offset: None,
            value: None,
            other: None,
            at,
            detail: detail.into(),
            node: None,
            event: None,
        }
    }

    pub fn at_partition(mut self, partition: TopicPartition) -> Violation {
        self.partition = Some(partition);
        self
    }

    /// The offset the violation is about; an acknowledgement without one (acks=0, the
    /// producer's `OFFSET_UNKNOWN`) leaves it unset, so no report shows the sentinel.
    pub fn at_offset(mut self, offset: u64) -> Violation {
        self.offset = (offset != kafsim_engine::producer::OFFSET_UNKNOWN).then_some(offset);
        self
    }

    pub fn of_value(mut self, value: ValueId) -> Violation {
        self.value = Some(value);
        self
    }

    /// The other record of a pair ([`Violation::other`]).
    pub fn with_other(mut self, value: ValueId) -> Violation {
        self.other = Some(value);
        self
    }
}
