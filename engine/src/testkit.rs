//! The engine's unit-test host, shared by every module's tests (issue 18): one page-cache
//! disk ([`MemDisk`], whose `truncate` behaves as the simulator's disk does) and one
//! [`Host`] that runs a node's handler calls with a `Cx` of its own and keeps their effects,
//! so a module's tests drive its state machine by hand without a simulator.

use crate::node::{Cx, Disk, DiskEntry, Effect, FileId, NodeId, Timer};
use crate::protocol::Message;
use crate::time::{Duration, Instant};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// A disk that is all page cache: entries written are read back, nothing is ever lost.
#[derive(Default)]
pub struct MemDisk {
    pub files: BTreeMap<FileId, Vec<DiskEntry>>,
}

impl Disk for MemDisk {
    fn append(&mut self, file: FileId, entry: DiskEntry) {
        self.files.entry(file).or_default().push(entry);
    }
    fn overwrite(&mut self, file: FileId, entries: Vec<DiskEntry>) {
        self.files.insert(file, entries);
    }
    /// As the simulator's disk (`sim/src/disk.rs`): truncating a file that does not exist
    /// creates it empty.
    fn truncate(&mut self, file: FileId, len: usize) {
        self.files.entry(file).or_default().truncate(len);
    }
    fn read(&self, file: FileId) -> &[DiskEntry] {
        self.files.get(&file).map_or(&[], |v| v.as_slice())
    }
    fn files(&self) -> Vec<FileId> {
        self.files.keys().copied().collect()
    }
}

/// One node's world for unit tests: time, rng, disk, and the effects of every call.
pub struct Host {
    pub now: Instant,
    pub me: NodeId,
    pub rng: ChaCha8Rng,
    pub disk: MemDisk,
    pub effects: Vec<Effect>,
    pub next_timer: u64,
    /// Peers whose connection handshake never completes (a partition, a dark host): what
    /// [`Cx::established`] says of them.
    pub unreachable: Unreachable,
}

/// The test host's kernel: every connection is established but those to the listed peers.
#[derive(Default)]
pub struct Unreachable(pub BTreeSet<NodeId>);

impl crate::node::Sockets for Unreachable {
    fn established(&self, _from: NodeId, to: NodeId) -> bool {
        !self.0.contains(&to)
    }
}

impl Host {
    pub fn new(me: NodeId) -> Host {
        Host::with_seed(me, 7)
    }

    /// A host whose rng stream starts from `seed` (it continues across calls, as the
    /// simulator's per-node stream does across incarnations).
    pub fn with_seed(me: NodeId, seed: u64) -> Host {
        Host {
            now: Instant::ZERO,
            me,
            rng: ChaCha8Rng::seed_from_u64(seed),
            disk: MemDisk::default(),
            effects: Vec::new(),
            next_timer: 0,
            unreachable: Unreachable::default(),
        }
    }

    /// Run `f` with a fresh `Cx` and keep its effects.
    pub fn call<R>(&mut self, f: impl FnOnce(&mut Cx) -> R) -> R {
        let mut out = Vec::new();
        let r = {
            let mut cx = Cx::new(
                self.now,
                self.me,
                &mut self.rng,
                &mut self.disk,
                &mut out,
                &mut self.next_timer,
            )
            .with_sockets(&self.unreachable);
            f(&mut cx)
        };
        self.effects.extend(out);
        r
    }

    /// Run `f` at `ms` milliseconds and return its effects (and only its).
    pub fn at(&mut self, ms: u64, f: impl FnOnce(&mut Cx)) -> Vec<Effect> {
        self.now = Instant::ZERO + Duration::from_millis(ms);
        let kept = std::mem::take(&mut self.effects);
        self.call(f);
        std::mem::replace(&mut self.effects, kept)
    }

    /// Messages sent since the last call, drained.
    pub fn sent(&mut self) -> Vec<(NodeId, Message)> {
        let mut sent = Vec::new();
        let mut rest = Vec::new();
        for e in self.effects.drain(..) {
            match e {
                Effect::Send { to, msg } => sent.push((to, msg)),
                other => rest.push(other),
            }
        }
        self.effects = rest;
        sent
    }

    /// Timers set since the last drain, drained.
    pub fn timers(&mut self) -> Vec<(Instant, Timer)> {
        let mut timers = Vec::new();
        let mut rest = Vec::new();
        for e in self.effects.drain(..) {
            match e {
                Effect::SetTimer { at, timer, .. } => timers.push((at, timer)),
                other => rest.push(other),
            }
        }
        self.effects = rest;
        timers
    }
}

/// Run `f` with a throwaway `Cx` over `disk` (node 0 at time zero); returns the effects.
pub fn with_cx<R>(disk: &mut MemDisk, f: impl FnOnce(&mut Cx) -> R) -> (R, Vec<Effect>) {
    with_cx_at(disk, Instant::ZERO, f)
}

/// [`with_cx`] at `now`.
pub fn with_cx_at<R>(
    disk: &mut MemDisk,
    now: Instant,
    f: impl FnOnce(&mut Cx) -> R,
) -> (R, Vec<Effect>) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut out = Vec::new();
    let mut ids = 0;
    let mut cx = Cx::new(now, NodeId(0), &mut rng, disk, &mut out, &mut ids);
    let r = f(&mut cx);
    (r, out)
}

/// The peers whose connections `effects` close ([`Effect::CloseConnection`]), in order.
pub fn closed_connections(effects: &[Effect]) -> Vec<NodeId> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::CloseConnection { peer } => Some(*peer),
            _ => None,
        })
        .collect()
}
