//! The event queue's entries: what happens to which node when, ordered by (time, insertion
//! sequence) so that ties break in scheduling order and a run is a pure function of its seed.
//! Apart from the loop that dispatches them (`mod.rs`) because every part of the world
//! (links, CPU, faults) schedules them.

use crate::disk::FsyncTicket;
use kafsim_engine::protocol::Message;
use kafsim_engine::{Instant, NodeId, Timer, TimerId};

pub(super) enum EventKind {
    Start,
    /// The message is boxed so heap entries stay small: queue operations move a few words.
    Deliver {
        from: NodeId,
        msg: Box<Message>,
        bytes: u32,
        /// The epoch of the connection the message was sent on.
        link_epoch: u64,
        stage: Stage,
    },
    /// TCP retransmits what waits behind a partition of `from -> node` ([`crate::connection`]).
    Retransmit {
        from: NodeId,
        /// The connection whose hold it is.
        epoch: u64,
        generation: u64,
    },
    Timer {
        id: TimerId,
        timer: Timer,
    },
    Fsync {
        ticket: FsyncTicket,
        token: u64,
    },
    /// A core of the node frees up: handle what waits in its CPU queue.
    CpuWake,
}

/// Where a delivered message is on its way to the node's handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    /// Reaching the end of its link now.
    OnWire,
    /// Past the link (waited in a pause or behind a partition); its connection may still
    /// have ended since.
    Arrived,
    /// Waited unread in a muted connection ([`socket`]) and is read now.
    SocketRead,
    /// A notice from the operating system (a reset), not part of the byte stream.
    Notice,
}

pub(super) struct Event {
    pub(super) at: Instant,
    pub(super) seq: u64,
    pub(super) node: NodeId,
    /// Incarnation of `node` the event belongs to (timers, fsyncs, starts); messages use 0
    /// and are valid for whatever incarnation is up when they arrive.
    pub(super) incarnation: u64,
    pub(super) kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}
