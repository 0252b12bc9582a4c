//! The sans-IO node interface: the only surface between Kafka semantics and the world.
//!
//! Every broker, controller, producer and consumer is a [`Node`]: a state machine that reacts
//! to a start, a message, a timer or a disk completion, and writes what it wants done into its
//! [`Cx`]. The host (the simulator today, a real runtime later) owns time, the network, the
//! disk and randomness; a node sees them only through `Cx`, so it cannot tell which host runs it.
//!
//! Contract for hosts:
//! - `on_start` is called once per incarnation: at first boot and after every restart. A
//!   restarted node is a *fresh* value built by the host; it recovers from [`Cx::disk`] only.
//! - Disk writes (`append`, `overwrite`, `truncate`) land in the page cache at once and are
//!   visible to reads at once. They become durable only when an fsync issued after them
//!   completes ([`Node::on_disk`]) or when the host's background writeback reaches them.
//! - Timers fire at or after their instant, never before; a cancelled timer never fires; a
//!   crashed node's timers and in-flight disk completions are forgotten.
//! - Messages between two nodes travel on one TCP connection: they arrive in the order they
//!   were sent. A network partition or a slow link delays them (TCP retransmits after the
//!   heal); it does not destroy them. A connection ends when either end closes it
//!   ([`Cx::close_connection`]) or a process dies: what was not delivered is lost, and a
//!   response is delivered only on the connection its request came on. A process crash of a
//!   peer is seen as [`Message::ConnectionReset`] from it; a power loss, pause or network
//!   partition is seen only through timeouts.

use crate::history::HistoryEvent;
use crate::protocol::Message;
use crate::record::{RecordBatch, TopicPartition};
use crate::time::{Duration, Instant};
use rand_chacha::ChaCha8Rng;
use std::any::Any;
use std::sync::Arc;

/// A node's address: a plain index assigned by the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A state machine hosted by the simulator or a real runtime. See the module docs for the
/// host's side of the contract.
pub trait Node: Any {
    /// Fresh start or restart: recover from `cx.disk()`, arm timers, introduce yourself.
    fn on_start(&mut self, cx: &mut Cx);
    /// A message from another node (or a [`Message::ConnectionReset`] notice).
    fn on_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message);
    /// A timer set through [`Cx::set_timer`] is due.
    fn on_timer(&mut self, cx: &mut Cx, timer: Timer);
    /// An fsync issued through [`Cx::disk_fsync`] completed. Nodes that never fsync (clients,
    /// the admin, the controller, whose store writes are synchronous) keep the default.
    fn on_disk(&mut self, cx: &mut Cx, done: DiskDone) {
        let _ = (cx, done);
    }
    /// Read-only access for invariant checks and reports (downcast to the concrete type).
    fn as_any(&self) -> &dyn Any;
}

/// A timer a node set for itself. `kind` and `key` mean whatever the node says they mean;
/// keeping the type plain and `Copy` keeps the engine's node kinds independent of each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    pub kind: u16,
    pub key: u64,
}

impl Timer {
    pub const fn new(kind: u16, key: u64) -> Timer {
        Timer { kind, key }
    }

    /// A timer about one partition (`key` packs topic and partition).
    pub const fn for_partition(kind: u16, tp: TopicPartition) -> Timer {
        Timer {
            kind,
            key: ((tp.topic.0 as u64) << 32) | tp.partition as u64,
        }
    }

    /// The partition packed by [`Timer::for_partition`].
    pub const fn partition(self) -> TopicPartition {
        TopicPartition {
            topic: crate::record::TopicId((self.key >> 32) as u32),
            partition: self.key as u32,
        }
    }
}

/// A node kind's timers as one enum, which the node matches exhaustively (quinn-proto's typed
/// timers). The kernel carries the plain [`Timer`]; each kind's `From` impl and
/// [`NodeTimer::try_decode`] are the one place that knows its numeric kinds (they appear in
/// every trace and never change), and [`NodeTimer::decode`] makes a kind the node never sets
/// a panic (a routing bug) instead of a timer silently dropped.
pub trait NodeTimer: Copy + std::fmt::Debug + PartialEq + Into<Timer> {
    /// Whose timers these are, for the panic: `"a consumer's"`.
    const OWNER: &'static str;

    /// The timer `t` encodes, or `None` when this kind of node never sets `t.kind`.
    fn try_decode(t: Timer) -> Option<Self>;

    /// The timer this node set (or was signalled with).
    fn decode(t: Timer) -> Self {
        Self::try_decode(t)
            .unwrap_or_else(|| unreachable!("timer kind {:#x} is not {}", t.kind, Self::OWNER))
    }
}

/// Test helper for a [`NodeTimer`]: each `(timer, kind, key)` encodes to that kind and key
/// (the numbers traces show) and decodes back to the same timer.
#[cfg(test)]
pub(crate) fn assert_timers_round_trip<T: NodeTimer>(all: &[(T, u16, u64)]) {
    for &(t, kind, key) in all {
        let encoded: Timer = t.into();
        assert_eq!((encoded.kind, encoded.key), (kind, key), "{t:?}");
        assert_eq!(T::decode(encoded), t);
    }
}

/// Handle of a set timer, for cancellation. Unique within a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub u64);

/// A file of a node's disk. Logical names rather than paths: a broker has one log per
/// partition it hosts plus Kafka's checkpoint files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileId {
    /// The partition's log (one segment file in this model).
    Log(TopicPartition),
    /// `replication-offset-checkpoint`: the high watermark of every hosted partition.
    HighWatermarkCheckpoint,
    /// `log-start-offset-checkpoint`.
    LogStartCheckpoint,
    /// `leader-epoch-checkpoint` of one partition.
    LeaderEpochCheckpoint(TopicPartition),
    /// Producer state snapshot of one partition (idempotence).
    ProducerSnapshot(TopicPartition),
    /// Any other file a node keeps (controller metadata, a service's sink, ...).
    Named(&'static str),
}

/// What an entry of a file holds. Payload bytes are modelled by [`DiskEntry::bytes`].
#[derive(Clone, Debug)]
pub enum DiskData {
    /// A record batch of a log file.
    Batch(RecordBatch),
    /// `(partition, offset)` pairs: HW and log-start checkpoints.
    Offsets(Vec<(TopicPartition, u64)>),
    /// Leader-epoch cache entries: `(epoch, start offset)`.
    Epochs(Vec<(u32, u64)>),
    /// Anything else a node persists, owned by that node's code.
    Blob(Arc<dyn Any + Send + Sync>),
}

/// One write to a file: the unit that fsync makes durable and that power loss can tear.
#[derive(Clone, Debug)]
pub struct DiskEntry {
    pub data: DiskData,
    /// Modelled size in bytes (bandwidth and fsync cost).
    pub bytes: u32,
    /// Set by the host on the last entry after a power loss that tore it: a real system sees a
    /// CRC mismatch here and must cut the file before this entry.
    pub torn: bool,
}

impl DiskEntry {
    pub fn new(data: DiskData, bytes: u32) -> DiskEntry {
        DiskEntry {
            data,
            bytes,
            torn: false,
        }
    }
}

/// The node's view of its own disk (page cache semantics, see the module docs).
pub trait Disk {
    fn append(&mut self, file: FileId, entry: DiskEntry);
    /// Replace the whole file (checkpoint files: Kafka writes a temp file and renames it).
    fn overwrite(&mut self, file: FileId, entries: Vec<DiskEntry>);
    /// Keep only the first `len` entries.
    fn truncate(&mut self, file: FileId, len: usize);
    /// Entries of the file as the page cache holds them (empty if the file does not exist).
    fn read(&self, file: FileId) -> &[DiskEntry];
    /// Every file that exists, in order.
    fn files(&self) -> Vec<FileId>;
}

/// Completion of an fsync: every write to `file` issued before the fsync is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskDone {
    pub file: FileId,
    pub token: u64,
}

/// An effect a node asks its host to carry out after the handler returns.
#[derive(Debug)]
pub enum Effect {
    Send {
        to: NodeId,
        msg: Message,
    },
    SetTimer {
        id: TimerId,
        at: Instant,
        timer: Timer,
    },
    CancelTimer {
        id: TimerId,
    },
    Fsync {
        file: FileId,
        token: u64,
    },
    Record(HistoryEvent),
    /// Close this node's TCP connection to `peer` (see [`Cx::close_connection`]).
    CloseConnection {
        peer: NodeId,
    },
}

/// The node's window to the world for one handler call.
pub struct Cx<'a> {
    now: Instant,
    me: NodeId,
    rng: &'a mut ChaCha8Rng,
    disk: &'a mut dyn Disk,
    out: &'a mut Vec<Effect>,
    next_timer_id: &'a mut u64,
    /// The host's TCP connection states, if it has any (see [`Cx::established`]).
    sockets: Option<&'a dyn Sockets>,
}

/// What the host's kernel knows of this node's TCP connections: a client asks whether the
/// handshake of its current connection to a peer completed, as Java's `Selector` learns from
/// `SocketChannel.finishConnect` and librdkafka from its connect poll. A host without a
/// network model (the engine's unit tests) may leave it out: every connection then counts
/// as established.
pub trait Sockets {
    /// Whether the current connection from `from` to `to` is established: its handshake got
    /// through to a host whose kernel answers (a live or paused process; not a powered-off
    /// host, not one behind a partition).
    fn established(&self, from: NodeId, to: NodeId) -> bool;
}

impl<'a> Cx<'a> {
    /// Built by the host for each handler call. `next_timer_id` must be shared by every node
    /// of the host so that timer ids are unique.
    pub fn new(
        now: Instant,
        me: NodeId,
        rng: &'a mut ChaCha8Rng,
        disk: &'a mut dyn Disk,
        out: &'a mut Vec<Effect>,
        next_timer_id: &'a mut u64,
    ) -> Cx<'a> {
        Cx {
            now,
            me,
            rng,
            disk,
            out,
            next_timer_id,
            sockets: None,
        }
    }

    /// Give the handler the host's connection states (see [`Sockets`]).
    pub fn with_sockets(mut self, sockets: &'a dyn Sockets) -> Cx<'a> {
        self.sockets = Some(sockets);
        self
    }

    /// Whether this node's current TCP connection to `peer` is established (the kernel's
    /// socket state; a host without a network model says yes). A client that opened a
    /// connection asks this when its connection setup timeout comes due.
    pub fn established(&self, peer: NodeId) -> bool {
        self.sockets.is_none_or(|s| s.established(self.me, peer))
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// This node's own address.
    pub fn me(&self) -> NodeId {
        self.me
    }

    pub fn send(&mut self, to: NodeId, msg: Message) {
        assert!(
            to != self.me,
            "{} sent a message to itself: {:?}",
            self.me,
            msg.kind()
        );
        self.out.push(Effect::Send { to, msg });
    }

    /// Arm a timer at an absolute instant. Setting one in the past is an engine bug.
    pub fn set_timer(&mut self, at: Instant, timer: impl Into<Timer>) -> TimerId {
        let timer = timer.into();
        assert!(
            at >= self.now,
            "{} set timer {timer:?} in the past ({at} < {})",
            self.me,
            self.now
        );
        *self.next_timer_id += 1;
        let id = TimerId(*self.next_timer_id);
        self.out.push(Effect::SetTimer { id, at, timer });
        id
    }

    /// Arm a timer `after` from now.
    pub fn set_timer_after(&mut self, after: Duration, timer: impl Into<Timer>) -> TimerId {
        self.set_timer(self.now + after, timer)
    }

    pub fn cancel_timer(&mut self, id: TimerId) {
        self.out.push(Effect::CancelTimer { id });
    }

    /// The node's disk: writes go to the page cache and are readable at once.
    pub fn disk(&mut self) -> &mut dyn Disk {
        self.disk
    }

    /// Ask for `file` to be made durable; [`Node::on_disk`] reports completion with `token`.
    pub fn disk_fsync(&mut self, file: FileId, token: u64) {
        self.out.push(Effect::Fsync { file, token });
    }

    /// The node's own random stream, derived from the run seed.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        self.rng
    }

    /// Close the TCP connection to `peer`, as a client does when a request on it times out
    /// (Java `NetworkClient` on `request.timeout.ms`, sarama on `Net.ReadTimeout`, librdkafka
    /// on `socket.timeout.ms`, a follower on `replica.socket.timeout.ms`). What this node
    /// sent that has not reached `peer` yet, and what `peer` sent that has not reached this
    /// node, is lost with the connection; `peer` sees a [`Message::ConnectionReset`] once the
    /// close reaches it. The next message to `peer` opens a new connection. The node itself
    /// gets no notice: it must fail the requests it had in flight to `peer` on its own.
    pub fn close_connection(&mut self, peer: NodeId) {
        assert!(peer != self.me, "{} closed a connection to itself", self.me);
        self.out.push(Effect::CloseConnection { peer });
    }

    /// Add a client-visible (or broker-side) fact to the history.
    pub fn record(&mut self, event: HistoryEvent) {
        self.out.push(Effect::Record(event));
    }

    /// Run `f` for a component this node hosts in its own process (a Java application's
    /// `KafkaProducer` beside its `KafkaConsumer`): the timers `f` sets get `timer_base`
    /// added to their kinds (so the host can route them back), the history facts it records
    /// are dropped (the host records its own), and the connections it closes are returned (one
    /// connection per pair of nodes: the host's requests on them are gone too).
    pub fn hosted<R>(
        &mut self,
        timer_base: u16,
        f: impl FnOnce(&mut Cx<'_>) -> R,
    ) -> (R, Vec<NodeId>) {
        let mark = self.out.len();
        let result = {
            let mut inner = Cx {
                now: self.now,
                me: self.me,
                rng: &mut *self.rng,
                disk: &mut *self.disk,
                out: &mut *self.out,
                next_timer_id: &mut *self.next_timer_id,
                sockets: self.sockets,
            };
            f(&mut inner)
        };
        let mut closed = Vec::new();
        let tail: Vec<Effect> = self.out.drain(mark..).collect();
        for effect in tail {
            match effect {
                Effect::Record(_) => {}
                Effect::SetTimer { id, at, mut timer } => {
                    timer.kind = timer
                        .kind
                        .checked_add(timer_base)
                        .expect("hosted timer kind overflows");
                    self.out.push(Effect::SetTimer { id, at, timer });
                }
                Effect::CloseConnection { peer } => {
                    closed.push(peer);
                    self.out.push(Effect::CloseConnection { peer });
                }
                other => self.out.push(other),
            }
        }
        (result, closed)
    }
}
