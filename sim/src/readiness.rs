//! A bench's readiness phase: the load starts only once every consumer group can read.
//!
//! OpenMessaging Benchmark creates its consumers and producers, then
//! (`WorkloadGenerator.ensureTopicsAreReady`) has every producer send one probe message
//! (`LocalWorker.probeProducers`) and waits, up to 60 s, until the consumers have received
//! one per subscription; only then does it start the load, the warm-up and the test. kafsim's
//! bench does the same in simulated time ([`crate::runner::RunOptions::await_consumers`]):
//!
//! 1. producers start *held* (clients connected, no sends: `ProducerSpec::held`);
//! 2. once every member of every group is stable with a fetch position on each partition it
//!    owns (a group that starts at the newest offset would otherwise miss the probe), each
//!    producer sends one probe record;
//! 3. once every group that reads a produced topic has polled a record, the load is released:
//!    producers send at their rate until `release + duration`, a `[bench] backlog` pauses
//!    the consumers from the release, and scripted and random faults shift by the release.
//!
//! A group not ready after [`READY_TIMEOUT`] (OMB's limit) does not stop the bench: the load
//! is released anyway and the result names the group.

use crate::world::World;
use kafsim_engine::consumer::Consumer;
use kafsim_engine::{Duration, Instant, NodeId};
use std::cell::Cell;
use std::rc::Rc;

/// How often the readiness phase looks at the consumers (one stream slice).
pub const READY_POLL: Duration = Duration::from_millis(10);
/// How long each step of the readiness phase waits at most: OMB's `ensureTopicsAreReady`
/// gives up after 60 s.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What a client (re)started after the release starts with, shared by the runner and the
/// node factories (a producer restarted after the release sends at once; one restarted
/// before it is held again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Released {
    /// The instant the load started.
    pub at: Instant,
    /// Producers make no new sends from here on.
    pub stop_at: Instant,
    /// Consumers fetch nothing before this (a backlog phase; `at` without one).
    pub pause_until: Instant,
}

/// The release, once it happened; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Release(Rc<Cell<Option<Released>>>);

impl Release {
    pub fn get(&self) -> Option<Released> {
        self.0.get()
    }

    pub fn set(&self, released: Released) {
        assert!(self.0.get().is_none(), "the load is released once");
        self.0.set(Some(released));
    }
}

/// Whether `member` is up, in a stable group generation (or a standalone consumer) and has a
/// fetch position on every partition it owns: ready for a probe.
pub fn positioned(w: &World, member: NodeId) -> bool {
    let Some(c) = w.node::<Consumer>(member).filter(|_| w.is_up(member)) else {
        return false;
    };
    let s = c.status();
    s.member_state == "stable"
        && !s.rejoin_pending
        && s.assignment.iter().all(|tp| {
            s.partitions
                .iter()
                .any(|p| p.partition == *tp && p.position.is_some())
        })
}

/// The outcome of the readiness phase.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadyOutcome {
    /// When the load was released.
    pub load_start: Instant,
    /// Groups that were not ready when it was (after [`READY_TIMEOUT`]), with why.
    pub unready: Vec<String>,
}
