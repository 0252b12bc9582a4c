//! The world: nodes, simulated time, the event queue, the network and the disks.
//!
//! One world is one run: one seed, one thread. Events are ordered by (time, insertion
//! sequence), so ties break in the order they were scheduled and the run is a pure function
//! of the seed and of the calls made on the world. The world drives [`Node`]s only through
//! the node interface and inspects them only read-only ([`World::node`]).
//!
//! Node lifecycle: a node is *up*, *paused* (receives nothing and fires no timers: its
//! messages and due timers wait and are handed over on resume, like a GC pause) or *down*
//! (crashed or powered off: the state machine is dropped; a restart builds a fresh one with
//! the node's factory, and it recovers from what its disk kept).
//!
//! CPU (the cost model, `cost.rs`): with `config.cost.cpu` set, a node of a cost class other
//! than `Free` has `cores`. Handling an event occupies one core for the CPU time of the event
//! plus everything the handler did (messages sent, records recorded, page-cache writes past
//! the dirty limit); the handler runs when it gets a core and its messages leave when its
//! time is over. Events that find every core busy (or the node in a GC pause) wait in the
//! node's FIFO queue, so each peer's messages are still handled in order. Without a CPU model
//! (the default) handlers take no time and nothing here changes the timing.

use crate::connection::{Connections, Retransmit, TCP_RTO_MIN};
use crate::cost::{CostClass, CostModel, Work};
use crate::disk::{DiskConfig, FsyncTicket, NodeDisk};
use crate::history::{History, HistoryEntry};
use crate::network::{Arrival, LinkConfig, Network, SendOutcome};
use crate::seed::{rng_for, stream};
use crate::socket::{self, Sockets};
use crate::trace::{MessageInfo, TraceEvent, TraceHasher, TraceKind, TraceLevel};
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::{Exchange, Message};
use kafsim_engine::time::duration_nanos;
use kafsim_engine::{Cx, DiskDone, Duration, Effect, Instant, Node, NodeId, Timer, TimerId};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};

/// Everything configurable about a world.
#[derive(Clone, Debug, PartialEq)]
pub struct WorldConfig {
    pub link: LinkConfig,
    pub disk: DiskConfig,
    /// Events a run may process before it is stopped (so no seed can hang a campaign).
    pub event_budget: u64,
    pub trace: TraceLevel,
    /// Invariant violations kept per run (later ones are counted, not kept).
    pub max_violations: usize,
    /// CPU, NIC and wire-size model; free by default (see `cost.rs`).
    pub cost: CostModel,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            link: LinkConfig::default(),
            disk: DiskConfig::default(),
            event_budget: 200_000_000,
            trace: TraceLevel::Off,
            max_violations: 100,
            cost: CostModel::default(),
        }
    }
}

/// How a `run_*` call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Reached the requested time.
    Reached,
    /// The event budget ran out first.
    BudgetExhausted,
}

/// Where a node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Up,
    Paused,
    Down,
}

enum EventKind {
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
enum Stage {
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

struct Event {
    at: Instant,
    seq: u64,
    node: NodeId,
    /// Incarnation of `node` the event belongs to (timers, fsyncs, starts); messages use 0
    /// and are valid for whatever incarnation is up when they arrive.
    incarnation: u64,
    kind: EventKind,
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

/// Most events one node's CPU queue may hold: past it the node is hopelessly overloaded and
/// the run says so loudly rather than grow without bound.
pub const MAX_CPU_QUEUE: usize = 1_000_000;

type Factory = Box<dyn FnMut() -> Box<dyn Node>>;
type Invariant = Box<dyn FnMut(&World, NodeId) -> Result<(), String>>;

struct Slot {
    name: String,
    factory: Factory,
    node: Option<Box<dyn Node>>,
    state: NodeState,
    incarnation: u64,
    rng: ChaCha8Rng,
    disk: NodeDisk,
    cancelled: BTreeSet<TimerId>,
    /// Events that arrived while paused, in arrival order.
    held: Vec<Event>,
    /// Peers this node exchanged messages with since its last reset (for reset notices),
    /// indexed by node id: a bitmap is cheaper than a set on every delivery.
    peers: Vec<bool>,
    /// Peers this node had connections with when it lost power: reset when it restarts.
    orphaned_peers: Vec<bool>,
    /// Down by power loss (the host is off: nothing answers) rather than a process crash
    /// (the host's TCP stack refuses connections to the dead process at once).
    powered_off: bool,
    /// Timer stretch factor (consumer-slowdown: a slow CPU makes everything take longer).
    slowdown: f64,
    /// Cost model: what the node is, when each of its cores is free, and the events waiting
    /// for a core (already arrived), with whether a `CpuWake` is scheduled for them.
    class: CostClass,
    cores_free_at: Vec<Instant>,
    cpu_queue: VecDeque<Event>,
    cpu_wake: bool,
}

/// Counters of a run, for the per-run stats line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorldStats {
    pub events: u64,
    pub messages_delivered: u64,
    pub messages_dropped: u64,
    /// Messages held behind a partition and retransmitted (or lost with their connection).
    pub messages_delayed: u64,
    /// Responses lost because the connection their request came on had ended.
    pub responses_lost: u64,
    pub timers_fired: u64,
    pub fsyncs: u64,
}

/// A simulated world. See the module docs.
pub struct World {
    seed: u64,
    config: WorldConfig,
    now: Instant,
    seq: u64,
    queue: BinaryHeap<Reverse<Event>>,
    slots: Vec<Slot>,
    network: Network,
    disk_rng: ChaCha8Rng,
    history: History,
    hasher: TraceHasher,
    trace_events: Vec<TraceEvent>,
    next_timer_id: u64,
    invariants: Vec<(&'static str, Invariant)>,
    violations: Vec<Violation>,
    violations_dropped: u64,
    stats: WorldStats,
    effects: Vec<Effect>,
    /// When the messages of the handler being applied leave (now, plus its CPU time).
    send_at: Instant,
    /// Connections muted while the server handles one of their requests ([`socket`]).
    sockets: Sockets<Event>,
    /// What waits behind partitions, and which connection each open request came on.
    connections: Connections<Event>,
}

impl World {
    pub fn new(seed: u64, config: WorldConfig) -> World {
        let mut network = Network::new(config.link.clone(), rng_for(seed, stream::NETWORK));
        network.set_nic_bandwidth(config.cost.nic_bytes_per_sec);
        World {
            seed,
            network,
            disk_rng: rng_for(seed, stream::DISK),
            config,
            now: Instant::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            history: History::new(),
            hasher: TraceHasher::default(),
            trace_events: Vec::new(),
            next_timer_id: 0,
            invariants: Vec::new(),
            violations: Vec::new(),
            violations_dropped: 0,
            stats: WorldStats::default(),
            effects: Vec::new(),
            send_at: Instant::ZERO,
            sockets: Sockets::default(),
            connections: Connections::default(),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// Add a node built by `factory` (called now and at every restart); it starts now.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        mut factory: impl FnMut() -> Box<dyn Node> + 'static,
    ) -> NodeId {
        let id = NodeId(self.slots.len() as u32);
        let node = factory();
        self.network.add_node(id);
        self.slots.push(Slot {
            name: name.into(),
            factory: Box::new(factory),
            node: Some(node),
            state: NodeState::Up,
            incarnation: 1,
            rng: rng_for(self.seed, stream::NODE_BASE + id.0 as u64),
            disk: NodeDisk::new(self.config.disk.clone()),
            cancelled: BTreeSet::new(),
            held: Vec::new(),
            peers: Vec::new(),
            orphaned_peers: Vec::new(),
            powered_off: false,
            slowdown: 1.0,
            class: CostClass::Free,
            cores_free_at: Vec::new(),
            cpu_queue: VecDeque::new(),
            cpu_wake: false,
        });
        self.schedule(self.now, id, 1, EventKind::Start);
        id
    }

    /// [`World::add_node`] for a node the cost model charges as `class`.
    pub fn add_node_with_cost(
        &mut self,
        name: impl Into<String>,
        class: CostClass,
        factory: impl FnMut() -> Box<dyn Node> + 'static,
    ) -> NodeId {
        let id = self.add_node(name, factory);
        self.set_cost_class(id, class);
        id
    }

    /// Charge node `id` as `class` from now on (its cores are idle at this point).
    pub fn set_cost_class(&mut self, id: NodeId, class: CostClass) {
        let cores = match &self.config.cost.cpu {
            Some(cpu) if class != CostClass::Free => cpu.0.cores(class).max(1) as usize,
            _ => 0,
        };
        let now = self.now;
        let slot = self.slot_mut(id);
        slot.class = class;
        slot.cores_free_at = vec![now; cores];
    }

    pub fn cost_class(&self, id: NodeId) -> CostClass {
        self.slot(id).class
    }

    pub fn node_count(&self) -> usize {
        self.slots.len()
    }

    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.slots.len() as u32).map(NodeId)
    }

    pub fn name(&self, id: NodeId) -> &str {
        &self.slot(id).name
    }

    pub fn state(&self, id: NodeId) -> NodeState {
        self.slot(id).state
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.slot(id).state == NodeState::Up
    }

    /// Read-only view of a node's state machine (also while paused; `None` when down or of
    /// another type).
    pub fn node<T: 'static>(&self, id: NodeId) -> Option<&T> {
        self.slot(id).node.as_ref()?.as_any().downcast_ref::<T>()
    }

    /// A node's disk, for inspection.
    pub fn disk(&self, id: NodeId) -> &NodeDisk {
        &self.slot(id).disk
    }

    pub fn net(&mut self) -> &mut Network {
        &mut self.network
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// Take the history out of the world (the end of a run).
    pub fn take_history(&mut self) -> History {
        std::mem::take(&mut self.history)
    }

    /// Drop the history recorded so far, keeping its capacity (a streaming run hands each
    /// slice to its consumers and forgets it; the trace hash already covers it).
    pub fn clear_history(&mut self) {
        self.history.clear();
    }

    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Events handled so far (cheap: invariants use it to share work within one event).
    pub fn events_handled(&self) -> u64 {
        self.stats.events
    }

    pub fn stats(&self) -> WorldStats {
        let n = self.network.stats();
        WorldStats {
            messages_delivered: n.delivered,
            messages_dropped: n.dropped,
            messages_delayed: n.delayed,
            responses_lost: self.connections.responses_lost,
            fsyncs: self.slots.iter().map(|s| s.disk.fsyncs).sum(),
            ..self.stats
        }
    }

    /// Stable hash of everything that happened so far.
    pub fn trace_hash(&self) -> u64 {
        self.hasher.finish()
    }

    /// The structured trace (only with `TraceLevel::Events`).
    pub fn trace_events(&self) -> &[TraceEvent] {
        &self.trace_events
    }

    /// The trace as text lines, nodes by their names (only with `TraceLevel::Events`).
    pub fn trace_lines(&self) -> Vec<String> {
        let names = crate::names::Names::of_world(self, &[], &[]);
        self.trace_events.iter().map(|e| e.text(&names)).collect()
    }

    /// Check `f` after every event; `node` is the node that handled it. A failure becomes an
    /// `invariant` violation naming `name`.
    pub fn add_invariant(
        &mut self,
        name: &'static str,
        f: impl FnMut(&World, NodeId) -> Result<(), String> + 'static,
    ) {
        self.invariants.push((name, Box::new(f)));
    }

    /// Record a violation found by the host (e.g. a divergence check).
    pub fn report(&mut self, violation: Violation) {
        if self.violations.len() < self.config.max_violations {
            self.violations.push(violation);
        } else {
            self.violations_dropped += 1;
        }
    }

    /// Violations found beyond `max_violations`.
    pub fn violations_dropped(&self) -> u64 {
        self.violations_dropped
    }

    fn slot(&self, id: NodeId) -> &Slot {
        self.slots
            .get(id.0 as usize)
            .unwrap_or_else(|| panic!("unknown node {id}"))
    }

    fn slot_mut(&mut self, id: NodeId) -> &mut Slot {
        self.slots
            .get_mut(id.0 as usize)
            .unwrap_or_else(|| panic!("unknown node {id}"))
    }

    fn schedule(&mut self, at: Instant, node: NodeId, incarnation: u64, kind: EventKind) {
        debug_assert!(at >= self.now, "event scheduled in the past");
        self.seq += 1;
        self.queue.push(Reverse(Event {
            at,
            seq: self.seq,
            node,
            incarnation,
            kind,
        }));
    }

    // ---------------------------------------------------------------- running

    /// Process events up to and including `until`; time ends at `until`.
    pub fn run_until(&mut self, until: Instant) -> RunOutcome {
        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at > until {
                break;
            }
            if self.stats.events >= self.config.event_budget {
                return RunOutcome::BudgetExhausted;
            }
            let Reverse(event) = self.queue.pop().expect("peeked");
            self.now = event.at;
            self.dispatch(event);
        }
        self.now = self.now.max(until);
        RunOutcome::Reached
    }

    pub fn run_for(&mut self, d: Duration) -> RunOutcome {
        self.run_until(self.now + d)
    }

    /// Time of the next pending event, if any.
    pub fn next_event_at(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(e)| e.at)
    }

    fn dispatch(&mut self, mut event: Event) {
        let id = event.node;
        if let EventKind::Retransmit { from, generation } = event.kind {
            self.retransmit(from, id, generation);
            return;
        }
        if let EventKind::Deliver {
            from,
            bytes,
            link_epoch,
            stage: stage @ Stage::OnWire,
            ..
        } = &mut event.kind
        {
            // The end of the link: lost with its connection, held behind a partition (or
            // behind what is held already: the stream stays in order), or on to the host.
            let (from, bytes, epoch) = (*from, *bytes, *link_epoch);
            if self.connections.is_holding(from, id) {
                if self.network.epoch(from, id) != epoch {
                    self.network.settle(from, id, bytes, false);
                    return;
                }
                self.network.stats.delayed += 1;
                self.hold(from, id, event);
                return;
            }
            match self.network.arrive(from, id, bytes, epoch) {
                Arrival::Stale => return,
                Arrival::Blocked => {
                    self.hold(from, id, event);
                    return;
                }
                Arrival::Open => *stage = Stage::Arrived,
            }
        }
        let slot = &mut self.slots[id.0 as usize];
        match slot.state {
            NodeState::Down => {
                if let EventKind::Deliver {
                    from,
                    stage: Stage::Arrived,
                    ..
                } = event.kind
                {
                    if slot.powered_off {
                        // The sender's TCP keeps retransmitting what the dark host never
                        // acknowledged (a SYN or data); the first retransmission after the
                        // host is back meets a fresh kernel, which answers it. Without this,
                        // a request sent while the host was off waited out the sender's
                        // whole request timeout (a follower's `replica.socket.timeout.ms`,
                        // 30 s) although the host had been back for most of it.
                        set_peer(&mut slot.orphaned_peers, from, true);
                    } else {
                        self.refuse(id, from);
                    }
                }
                return;
            }
            NodeState::Paused => {
                if event.incarnation == 0 || event.incarnation == slot.incarnation {
                    slot.held.push(event);
                }
                return;
            }
            NodeState::Up => {}
        }
        if event.incarnation != 0 && event.incarnation != slot.incarnation {
            return; // a timer or fsync of a previous incarnation
        }
        if let EventKind::CpuWake = event.kind {
            slot.cpu_wake = false;
            self.drain_cpu_queue(id);
            return;
        }
        if let EventKind::Deliver {
            from,
            msg,
            link_epoch,
            stage,
            ..
        } = &event.kind
        {
            if *stage != Stage::Notice && self.network.epoch(*from, id) != *link_epoch {
                return; // its connection ended while it waited in a pause or a socket
            }
            // Only a node run as a Kafka broker has Kafka's socket server (a test's
            // scripted broker may leave a request unanswered on purpose).
            let broker = self.slots[id.0 as usize].class == CostClass::Broker;
            if broker && *stage == Stage::Arrived && socket::mutes(msg) {
                let from = *from;
                match self.sockets.read(id, from, event) {
                    Some(e) => event = e,
                    None => return,
                }
            }
        }
        let slot = &self.slots[id.0 as usize];
        if !slot.cores_free_at.is_empty()
            && (!slot.cpu_queue.is_empty() || self.cpu_start(id) > self.now)
        {
            self.enqueue_for_cpu(id, event);
            return;
        }
        self.handle(id, event);
    }

    // ---------------------------------------------------------------- connections

    /// Queue a message that reached a blocked link until TCP retransmits it after the heal.
    fn hold(&mut self, from: NodeId, to: NodeId, event: Event) {
        if let Some((delay, generation)) = self.connections.hold(from, to, event) {
            self.schedule(
                self.now + delay,
                to,
                0,
                EventKind::Retransmit { from, generation },
            );
        }
    }

    /// A retransmission of what waits behind a partition of `from -> to` is due.
    fn retransmit(&mut self, from: NodeId, to: NodeId, generation: u64) {
        let blocked = self.network.is_blocked(from, to);
        match self.connections.retransmit(from, to, generation, blocked) {
            Retransmit::Stale => {}
            Retransmit::Again(delay) => self.schedule(
                self.now + delay,
                to,
                0,
                EventKind::Retransmit { from, generation },
            ),
            Retransmit::Release(events) => {
                self.hasher.word(self.now.as_nanos());
                self.hasher.str("retransmit");
                self.hasher.word(((from.0 as u64) << 32) | to.0 as u64);
                let count = events.len();
                self.trace(to, || TraceKind::Retransmit { from, count });
                for mut event in events {
                    if let EventKind::Deliver { bytes, stage, .. } = &mut event.kind {
                        if *stage == Stage::OnWire {
                            self.network.settle(from, to, *bytes, true);
                            *stage = Stage::Arrived;
                        }
                    }
                    event.at = self.now;
                    self.dispatch(event);
                }
            }
        }
    }

    /// The connection between `a` and `b` ends: what is in flight or held either way is
    /// lost, requests read on it can no longer be answered, a muted socket is forgotten.
    fn end_connection(&mut self, a: NodeId, b: NodeId) {
        self.network.cut(a, b);
        let dropped = self.connections.end(a, b);
        self.network.stats.dropped += dropped as u64;
        self.sockets.forget_pair(a, b);
        set_peer(&mut self.slots[a.0 as usize].peers, b, false);
        set_peer(&mut self.slots[b.0 as usize].peers, a, false);
    }

    /// The operating system of `from` tells `to` that their connection is gone (a FIN or a
    /// reset), arriving at `at`; behind a partition it waits for a retransmission like data.
    fn notify_reset(&mut self, from: NodeId, to: NodeId, at: Instant) {
        self.notify(from, to, at, Message::ConnectionReset);
    }

    /// Deliver a kernel notice (`ConnectionReset` / `ConnectionRefused`) from `from`'s host to
    /// `to` at `at`, or behind a partition, at the first retransmission that gets through.
    fn notify(&mut self, from: NodeId, to: NodeId, at: Instant, notice: Message) {
        if self.slot(to).state == NodeState::Down {
            return;
        }
        let kind = EventKind::Deliver {
            from,
            msg: Box::new(notice),
            bytes: 0,
            link_epoch: 0,
            stage: Stage::Notice,
        };
        if self.network.is_blocked(from, to) || self.connections.is_holding(from, to) {
            self.seq += 1;
            let event = Event {
                at: self.now,
                seq: self.seq,
                node: to,
                incarnation: 0,
                kind,
            };
            self.hold(from, to, event);
        } else {
            self.schedule(at, to, 0, kind);
        }
    }

    /// A message from `from` reached the host of crashed process `id`: its TCP stack refuses
    /// the connection (ECONNREFUSED). Every connection of a process ends when it goes down, so
    /// a message that reaches it down travelled on a connection opened since: the refusal says
    /// that nothing sent on it was read, which a client may rely on (Java's `NetworkClient`
    /// never sent the requests of a connection that did not get established).
    fn refuse(&mut self, id: NodeId, from: NodeId) {
        self.end_connection(id, from);
        let at = self.now + self.network.config().latency;
        self.notify(id, from, at, Message::ConnectionRefused);
    }

    /// Run the handler of an event that arrived (and, with a CPU model, got a core).
    fn handle(&mut self, id: NodeId, event: Event) {
        self.stats.events += 1;
        match event.kind {
            EventKind::Start => {
                self.hash_event(1, id, None, 0);
                self.trace(id, || TraceKind::Start);
                let cost = self.cpu_cost(id, &Work::Start);
                self.call(id, cost, |node, cx| node.on_start(cx));
            }
            EventKind::Deliver {
                from,
                mut msg,
                bytes,
                link_epoch,
                stage,
            } => {
                if let (
                    Exchange::Request {
                        correlation_id,
                        answered: true,
                    },
                    false,
                ) = (msg.exchange(), stage == Stage::Notice)
                {
                    let wire_id =
                        self.connections
                            .request_read(id, from, correlation_id, link_epoch);
                    *msg.correlation_id_mut().expect("a request has one") = wire_id;
                }
                set_peer(&mut self.slots[id.0 as usize].peers, from, true);
                set_peer(&mut self.slots[from.0 as usize].peers, id, true);
                self.hash_event(2, id, Some(from), bytes as u64);
                self.hasher.str(msg.kind());
                self.trace(id, || {
                    TraceKind::Receive(MessageInfo::of(&msg, from, bytes))
                });
                let cost = self.cpu_cost(id, &Work::Receive(&msg, bytes));
                self.call(id, cost, move |node, cx| node.on_message(cx, from, *msg));
            }
            EventKind::Timer {
                id: timer_id,
                timer,
            } => {
                if self.slots[id.0 as usize].cancelled.remove(&timer_id) {
                    return;
                }
                self.stats.timers_fired += 1;
                self.hash_event(3, id, None, ((timer.kind as u64) << 48) ^ timer.key);
                self.trace(id, || TraceKind::Timer {
                    kind: timer.kind,
                    key: timer.key,
                });
                let cost = self.cpu_cost(id, &Work::Timer);
                self.call(id, cost, move |node, cx| node.on_timer(cx, timer));
            }
            EventKind::Fsync { ticket, token } => {
                self.slots[id.0 as usize].disk.complete_fsync(ticket);
                self.hash_event(4, id, None, token);
                self.trace(id, || TraceKind::Fsync { token });
                let done = DiskDone {
                    file: ticket.file,
                    token,
                };
                let cost = self.cpu_cost(id, &Work::Disk);
                self.call(id, cost, move |node, cx| node.on_disk(cx, done));
            }
            EventKind::CpuWake | EventKind::Retransmit { .. } => {
                unreachable!("handled by dispatch")
            }
        }
        self.check_invariants(id);
    }

    // ---------------------------------------------------------------- CPU (cost model)

    /// CPU time of `work` on node `id` (zero without a CPU model or for a free node).
    fn cpu_cost(&self, id: NodeId, work: &Work<'_>) -> Duration {
        let slot = &self.slots[id.0 as usize];
        match &self.config.cost.cpu {
            Some(cpu) if !slot.cores_free_at.is_empty() => cpu.0.cost(slot.class, work),
            _ => Duration::ZERO,
        }
    }

    /// The earliest time, not before now, at which node `id` can start a handler: a core is
    /// free and the node is not in a garbage-collection pause.
    fn cpu_start(&self, id: NodeId) -> Instant {
        let slot = &self.slots[id.0 as usize];
        let free = slot.cores_free_at.iter().copied().min().unwrap_or(self.now);
        let t = free.max(self.now);
        let Some(gc) = self
            .config
            .cost
            .cpu
            .as_ref()
            .and_then(|c| c.0.gc(slot.class))
        else {
            return t;
        };
        let interval = duration_nanos(gc.interval);
        if interval == 0 {
            return t;
        }
        // Stagger nodes' pauses by a fixed fraction of the interval per node id.
        let phase = interval * ((id.0 as u64 + 1) * 618 % 1000) / 1000;
        let since = t.as_nanos().saturating_sub(phase);
        if t.as_nanos() < phase {
            return t;
        }
        let window_start = t.as_nanos() - since % interval;
        let window_end = window_start + duration_nanos(gc.pause);
        if t.as_nanos() < window_end {
            Instant::from_nanos(window_end)
        } else {
            t
        }
    }

    /// Queue an arrived event until node `id` has a core for it.
    fn enqueue_for_cpu(&mut self, id: NodeId, event: Event) {
        let slot = &mut self.slots[id.0 as usize];
        assert!(
            slot.cpu_queue.len() < MAX_CPU_QUEUE,
            "node {} ({id}): {MAX_CPU_QUEUE} events wait for its CPU; the cost model is \
             overloaded beyond recovery",
            slot.name
        );
        slot.cpu_queue.push_back(event);
        if !slot.cpu_wake {
            self.schedule_cpu_wake(id);
        }
    }

    fn schedule_cpu_wake(&mut self, id: NodeId) {
        let at = self.cpu_start(id);
        let slot = &mut self.slots[id.0 as usize];
        slot.cpu_wake = true;
        let incarnation = slot.incarnation;
        self.schedule(at, id, incarnation, EventKind::CpuWake);
    }

    /// Handle queued events of node `id` while it has a free core now, in arrival order.
    fn drain_cpu_queue(&mut self, id: NodeId) {
        loop {
            let slot = &self.slots[id.0 as usize];
            if slot.cpu_queue.is_empty() || slot.state != NodeState::Up {
                return;
            }
            if self.cpu_start(id) > self.now {
                self.schedule_cpu_wake(id);
                return;
            }
            let event = self.slots[id.0 as usize]
                .cpu_queue
                .pop_front()
                .expect("checked non-empty");
            self.handle(id, event);
        }
    }

    /// Run one handler of node `id` that costs `cost` of CPU before its effects, and apply
    /// its effects.
    fn call(&mut self, id: NodeId, cost: Duration, f: impl FnOnce(&mut dyn Node, &mut Cx)) {
        let now = self.now;
        let mut effects = std::mem::take(&mut self.effects);
        let appended_before = self.slots[id.0 as usize].disk.appended_bytes;
        {
            let slot = &mut self.slots[id.0 as usize];
            let mut node = slot.node.take().expect("an up node has a state machine");
            slot.disk.now = now;
            let mut cx = Cx::new(
                now,
                id,
                &mut slot.rng,
                &mut slot.disk,
                &mut effects,
                &mut self.next_timer_id,
            );
            f(node.as_mut(), &mut cx);
            slot.node = Some(node);
        }
        self.send_at = now;
        if !self.slots[id.0 as usize].cores_free_at.is_empty() {
            self.occupy_core(id, cost, &effects, appended_before);
        }
        for effect in effects.drain(..) {
            self.apply(id, effect);
        }
        self.effects = effects;
    }

    /// Charge node `id` for a handler that ran now: `cost` plus what its effects cost and the
    /// time its page-cache writes blocked. One core is busy until then; the handler's messages
    /// leave then.
    fn occupy_core(&mut self, id: NodeId, cost: Duration, effects: &[Effect], before: u64) {
        let Some(cpu) = self.config.cost.cpu.clone() else {
            return;
        };
        let now = self.now;
        let slot = &mut self.slots[id.0 as usize];
        let class = slot.class;
        let mut busy = cost;
        for effect in effects {
            busy += match effect {
                Effect::Send { msg, .. } => {
                    let bytes = self.config.cost.wire_bytes(msg);
                    cpu.0.cost(class, &Work::Send(msg, bytes))
                }
                Effect::Record(event) => cpu.0.cost(class, &Work::Record(event)),
                _ => Duration::ZERO,
            };
        }
        let appended = slot.disk.appended_bytes - before;
        busy += slot.disk.write_stall(now, appended);
        let core = (0..slot.cores_free_at.len())
            .min_by_key(|&i| slot.cores_free_at[i])
            .expect("a charged node has cores");
        slot.cores_free_at[core] = now + busy;
        self.send_at = now + busy;
    }

    /// `server` answered `client`: hand it the next request its connection held unread, when
    /// the answer leaves.
    fn read_next_request(&mut self, server: NodeId, client: NodeId) {
        let Some(event) = self.sockets.answered(server, client) else {
            return;
        };
        let EventKind::Deliver {
            from,
            msg,
            bytes,
            link_epoch,
            ..
        } = event.kind
        else {
            unreachable!("only messages wait in a socket");
        };
        let incarnation = self.slots[server.0 as usize].incarnation;
        self.schedule(
            self.send_at,
            server,
            incarnation,
            EventKind::Deliver {
                from,
                msg,
                bytes,
                link_epoch,
                stage: Stage::SocketRead,
            },
        );
    }

    fn apply(&mut self, id: NodeId, effect: Effect) {
        match effect {
            Effect::Send { to, mut msg } => {
                assert!(
                    (to.0 as usize) < self.slots.len(),
                    "{id} sent {} to unknown node {to}",
                    msg.kind()
                );
                // The id under which the server read the request this answers (traced, so a
                // trace reader can pair the two).
                let mut answers: Option<u64> = None;
                if let Exchange::Response { correlation_id } = msg.exchange() {
                    // A response is written to the socket its request was read from.
                    let epoch = self.network.epoch(id, to);
                    match self.connections.answer(id, to, correlation_id, epoch) {
                        Some(client_id) => {
                            answers = Some(correlation_id);
                            *msg.correlation_id_mut().expect("a response has one") = client_id;
                        }
                        None => {
                            self.connections.responses_lost += 1;
                            self.trace(id, || {
                                TraceKind::ResponseLost(MessageInfo::of(&msg, to, 0))
                            });
                            return;
                        }
                    }
                }
                if socket::unmutes(&msg) {
                    self.read_next_request(id, to);
                }
                let bytes = self.config.cost.wire_bytes(&msg);
                if let Some(wire_id) = answers {
                    self.trace(id, || {
                        TraceKind::Respond(MessageInfo {
                            correlation_id: Some(wire_id),
                            ..MessageInfo::of(&msg, to, bytes)
                        })
                    });
                }
                if let SendOutcome::Arrives { at, link_epoch } =
                    self.network.send(self.send_at, id, to, bytes)
                {
                    self.schedule(
                        at,
                        to,
                        0,
                        EventKind::Deliver {
                            from: id,
                            msg: Box::new(msg),
                            bytes,
                            link_epoch,
                            stage: Stage::OnWire,
                        },
                    );
                }
            }
            Effect::SetTimer {
                id: timer_id,
                at,
                timer,
            } => {
                let slot = &self.slots[id.0 as usize];
                let at = if slot.slowdown != 1.0 {
                    let delay = at.saturating_since(self.now);
                    self.now
                        + Duration::from_nanos(
                            (duration_nanos(delay) as f64 * slot.slowdown) as u64,
                        )
                } else {
                    at
                };
                let incarnation = slot.incarnation;
                self.schedule(
                    at,
                    id,
                    incarnation,
                    EventKind::Timer {
                        id: timer_id,
                        timer,
                    },
                );
            }
            Effect::CancelTimer { id: timer_id } => {
                self.slots[id.0 as usize].cancelled.insert(timer_id);
            }
            Effect::Fsync { file, token } => {
                let slot = &mut self.slots[id.0 as usize];
                let (at, ticket) = slot.disk.begin_fsync(file);
                let incarnation = slot.incarnation;
                self.schedule(at, id, incarnation, EventKind::Fsync { ticket, token });
            }
            Effect::CloseConnection { peer } => self.close_connection(id, peer),
            Effect::Record(event) => {
                hash_history(&mut self.hasher, &event);
                self.trace(id, || TraceKind::Record(event.clone()));
                self.history.push(HistoryEntry {
                    at: self.now,
                    node: id,
                    event,
                });
            }
        }
    }

    fn check_invariants(&mut self, id: NodeId) {
        if self.invariants.is_empty() {
            return;
        }
        let mut invariants = std::mem::take(&mut self.invariants);
        for (name, check) in &mut invariants {
            if let Err(detail) = check(self, id) {
                let v = Violation::new(
                    ViolationKind::Invariant,
                    self.now,
                    format!("{name}: {detail}"),
                );
                self.report(v);
            }
        }
        self.invariants = invariants;
    }

    fn hash_event(&mut self, kind: u64, node: NodeId, from: Option<NodeId>, extra: u64) {
        let h = &mut self.hasher;
        h.word(self.now.as_nanos());
        h.word(kind);
        h.word(node.0 as u64);
        h.word(from.map_or(u64::MAX, |f| f.0 as u64));
        h.word(extra);
    }

    fn trace(&mut self, id: NodeId, kind: impl FnOnce() -> TraceKind) {
        if self.config.trace == TraceLevel::Events {
            self.trace_events.push(TraceEvent {
                at: self.now,
                node: id,
                kind: kind(),
            });
        }
    }

    // ---------------------------------------------------------------- faults

    fn fault_trace(&mut self, id: NodeId, what: &'static str) {
        self.hasher.word(self.now.as_nanos());
        self.hasher.str(what);
        self.hasher.word(id.0 as u64);
        self.trace(id, || TraceKind::Fault(what));
    }

    /// Drop the node's state machine and forget its timers; its connections end, so what is
    /// in flight to and from it is lost. With `notify`, peers get a connection reset (a
    /// process crash: the OS closes its sockets); without, they only time out (power loss).
    fn take_down(&mut self, id: NodeId, notify: bool) {
        let now = self.now;
        let peers: Vec<NodeId> = {
            let slot = self.slot_mut(id);
            slot.node = None;
            slot.state = NodeState::Down;
            slot.powered_off = !notify;
            slot.incarnation += 1;
            slot.cancelled.clear();
            slot.held.clear();
            slot.cpu_queue.clear();
            slot.cpu_wake = false;
            slot.cores_free_at.iter_mut().for_each(|t| *t = now);
            let peers = std::mem::take(&mut slot.peers);
            self.sockets.forget_node(id);
            self.connections.forget_server(id);
            peers
                .iter()
                .enumerate()
                .filter(|(_, on)| **on)
                .map(|(i, _)| NodeId(i as u32))
                .collect()
        };
        if !notify {
            // A powered-off host says nothing now; its peers find out when it is back (below).
            let slot = self.slot_mut(id);
            for &peer in &peers {
                set_peer(&mut slot.orphaned_peers, peer, true);
            }
        }
        // Every connection of the process ends, also those it had not used yet.
        for other in 0..self.slots.len() as u32 {
            let other = NodeId(other);
            if other != id {
                self.end_connection(id, other);
            }
        }
        if notify {
            let at = self.now + self.network.config().latency;
            for peer in peers {
                self.notify_reset(id, peer, at);
            }
        }
    }

    /// Process crash: the state machine is gone, the page cache (and so every write) stays.
    pub fn crash(&mut self, id: NodeId) {
        if self.slot(id).state == NodeState::Down {
            return;
        }
        self.fault_trace(id, "crash");
        self.take_down(id, true);
    }

    /// Power loss: like a crash, but unflushed writes are lost (the last one maybe torn) and
    /// peers get no reset notice.
    pub fn power_loss(&mut self, id: NodeId, tear: bool) {
        self.fault_trace(id, "power-loss");
        if self.slot(id).state != NodeState::Down {
            self.take_down(id, false);
        }
        self.slot_mut(id).powered_off = true;
        let now = self.now;
        let slot = &mut self.slots[id.0 as usize];
        slot.disk.now = now;
        slot.disk.power_loss(tear, &mut self.disk_rng);
    }

    /// Start a fresh state machine for a down node (no effect on a node that is up).
    pub fn restart(&mut self, id: NodeId) {
        if self.slot(id).state != NodeState::Down {
            return;
        }
        self.fault_trace(id, "restart");
        self.reset_orphaned_peers(id);
        let slot = self.slot_mut(id);
        slot.node = Some((slot.factory)());
        slot.state = NodeState::Up;
        slot.powered_off = false;
        let incarnation = slot.incarnation;
        self.schedule(self.now, id, incarnation, EventKind::Start);
    }

    /// A host that lost power and comes back answers its old peers' next TCP retransmission
    /// with a reset: they learn their connection is gone one retransmission timeout after the
    /// restart (instead of waiting out their own request timeouts).
    fn reset_orphaned_peers(&mut self, id: NodeId) {
        let orphaned = std::mem::take(&mut self.slot_mut(id).orphaned_peers);
        let at = self.now + self.network.config().latency + TCP_RTO_MIN;
        for (i, on) in orphaned.iter().enumerate() {
            if *on {
                self.notify_reset(id, NodeId(i as u32), at);
            }
        }
    }

    /// Fire `timer` on node `id` now, as if the node had set it: how the host hands an
    /// operator's command to the admin client node (the engine stays unaware of the host).
    pub fn signal(&mut self, id: NodeId, timer: Timer) {
        self.next_timer_id += 1;
        let timer_id = TimerId(self.next_timer_id);
        let incarnation = self.slot(id).incarnation;
        self.schedule(
            self.now,
            id,
            incarnation,
            EventKind::Timer {
                id: timer_id,
                timer,
            },
        );
    }

    /// Freeze a node: it receives nothing and fires no timers until resumed.
    pub fn pause(&mut self, id: NodeId) {
        if self.slot(id).state != NodeState::Up {
            return;
        }
        self.fault_trace(id, "pause");
        self.slot_mut(id).state = NodeState::Paused;
    }

    /// Unfreeze a paused node: what it missed is handed over now, in arrival order.
    pub fn resume(&mut self, id: NodeId) {
        if self.slot(id).state != NodeState::Paused {
            return;
        }
        self.fault_trace(id, "resume");
        let slot = self.slot_mut(id);
        slot.state = NodeState::Up;
        let held = std::mem::take(&mut slot.held);
        for mut event in held {
            event.at = self.now;
            self.seq += 1;
            event.seq = self.seq;
            self.queue.push(Reverse(event));
        }
    }

    /// Cut the TCP connection between `a` and `b` (a middlebox resets it): in-flight
    /// messages are lost and both ends get a reset notice.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        self.fault_trace(a, "cut");
        self.end_connection(a, b);
        let at = self.now + self.network.config().latency;
        self.notify_reset(a, b, at);
        self.notify_reset(b, a, at);
    }

    /// Node `by` closed its connection to `peer` ([`Cx::close_connection`]): what is in flight
    /// or held either way is lost; `peer` learns it when the close reaches it.
    fn close_connection(&mut self, by: NodeId, peer: NodeId) {
        self.hasher.word(self.now.as_nanos());
        self.hasher.str("close");
        self.hasher.word(((by.0 as u64) << 32) | peer.0 as u64);
        self.trace(by, || TraceKind::CloseConnection { peer });
        self.end_connection(by, peer);
        let at = self.send_at + self.network.config().latency;
        self.notify_reset(by, peer, at);
    }

    /// Stretch every timer the node sets by `factor` (a slow CPU / overloaded host); 1.0 undoes.
    pub fn set_slowdown(&mut self, id: NodeId, factor: f64) {
        assert!(
            factor > 0.0 && factor.is_finite(),
            "slowdown factor must be positive"
        );
        self.fault_trace(id, "slowdown");
        self.slot_mut(id).slowdown = factor;
    }

    /// Multiply the node's fsync time by `factor` (slow-disk fault); 1.0 undoes.
    pub fn set_disk_slowdown(&mut self, id: NodeId, factor: f64) {
        assert!(
            factor > 0.0 && factor.is_finite(),
            "slow-disk factor must be positive"
        );
        self.fault_trace(id, "slow-disk");
        self.slot_mut(id).disk.slowdown = factor;
    }
}

fn set_peer(peers: &mut Vec<bool>, peer: NodeId, on: bool) {
    let i = peer.0 as usize;
    if i >= peers.len() {
        if !on {
            return;
        }
        peers.resize(i + 1, false);
    }
    peers[i] = on;
}

/// Canonical hash of a history event: the fields that identify it, not its Debug text.
fn hash_history(h: &mut TraceHasher, event: &HistoryEvent) {
    use HistoryEvent::*;
    let tp = |h: &mut TraceHasher, p: &kafsim_engine::TopicPartition| {
        h.word(((p.topic.0 as u64) << 32) | p.partition as u64);
    };
    match event {
        SendInvoke {
            producer, value, ..
        } => {
            h.word(100 + *producer as u64);
            h.word(value.0);
        }
        SendOk {
            value,
            partition,
            offset,
            ..
        } => {
            h.word(101);
            h.word(value.0);
            tp(h, partition);
            h.word(*offset);
        }
        SendFail { value, .. } => {
            h.word(102);
            h.word(value.0);
        }
        SendInfo { value, .. } => {
            h.word(103);
            h.word(value.0);
        }
        Poll {
            group,
            member,
            partition,
            offset,
            value,
            ..
        } => {
            h.word(104 + ((*group as u64) << 16) + ((*member as u64) << 32));
            tp(h, partition);
            h.word(*offset);
            h.word(value.0);
        }
        SinkWrite {
            group,
            value,
            offset,
            ..
        } => {
            h.word(105 + ((*group as u64) << 16));
            h.word(value.0);
            h.word(*offset);
        }
        SinkRefused {
            group,
            value,
            offset,
            ..
        } => {
            h.word(117 + ((*group as u64) << 16));
            h.word(value.0);
            h.word(*offset);
        }
        Commit {
            group,
            member,
            partition,
            offset,
            ..
        } => {
            h.word(106 + ((*group as u64) << 16) + ((*member as u64) << 32));
            tp(h, partition);
            h.word(*offset);
        }
        HighWatermark {
            broker,
            partition,
            high_watermark,
            ..
        } => {
            h.word(107 + ((broker.0 as u64) << 16));
            tp(h, partition);
            h.word(*high_watermark);
        }
        Appended {
            broker,
            partition,
            base_offset,
            next_offset,
            leader,
            ..
        } => {
            h.word(108 + ((broker.0 as u64) << 16) + ((*leader as u64) << 8));
            tp(h, partition);
            h.word(*base_offset);
            h.word(*next_offset);
        }
        other => {
            // Rare events: their Debug text is canonical enough (no addresses, no maps).
            h.str(&format!("{other:?}"));
        }
    }
}
