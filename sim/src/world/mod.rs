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
use crate::disk::{DiskConfig, NodeDisk};
use crate::history::{History, HistoryEntry};
use crate::network::{Arrival, LinkConfig, Network, SendOutcome};
use crate::seed::{rng_for, stream};
use crate::socket::{self, Sockets};
use crate::trace::{MessageInfo, TraceEvent, TraceHasher, TraceKind, TraceLevel};
use crate::violation::{Violation, ViolationKind};
use std::collections::BTreeMap;

/// Most closed connections whose close time [`World::late_requests`] can name (a bound).
const MAX_CLOSED_REMEMBERED: usize = 100_000;
use kafsim_engine::protocol::{Exchange, Message};
use kafsim_engine::time::duration_nanos;
use kafsim_engine::{Cx, DiskDone, Duration, Effect, Instant, Node, NodeId, Timer, TimerId};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};

mod cpu;
mod effects;
mod event;
mod faults;
mod hash;
mod links;

use event::{Event, EventKind, Stage};

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
    /// The application's processing slowdowns in force (consumer-slowdown factors), for the
    /// heal and restarts.
    slowdowns: Vec<f64>,
    /// The slow-disk factors in force (the disk applies the slowest).
    disk_slowdowns: Vec<f64>,
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
    /// When each orphaned connection `(from, to, epoch)` was closed by `from` (bounded).
    closed_at: BTreeMap<(NodeId, NodeId, u64), Instant>,
    /// Transactional requests of closed connections delivered late ([`crate::late`]).
    late_requests: Vec<crate::late::LateRequest>,
    /// The event whose handler is running (and its effects being applied), so that a panic
    /// inside it can say which node was handling what ([`World::handling`]).
    handling: Option<Handling>,
}

/// The event a node was handling: what a panic inside its handler explains itself with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handling {
    pub node: NodeId,
    /// The node's incarnation (1, then one more after each crash or power loss).
    pub incarnation: u64,
    pub event: Handled,
}

/// What kind of event a handler was called for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// `on_start`: a fresh start or a restart.
    Start,
    /// `on_message`: a message of `kind` (`Message::kind`) from `from`.
    Message { kind: &'static str, from: NodeId },
    /// `on_timer`: the node's timer `kind`:`key` (as `--trace` prints it).
    Timer { kind: u16, key: u64 },
    /// `on_disk`: the completion of the fsync with `token`.
    Fsync { token: u64 },
}

impl Handling {
    /// `a ProduceRequest from producer-0`, `its timer 7:3`, `its start (incarnation 2)`.
    pub fn describe(&self, name: &dyn Fn(NodeId) -> String) -> String {
        match self.event {
            Handled::Start if self.incarnation > 1 => {
                format!("its start (a restart: incarnation {})", self.incarnation)
            }
            Handled::Start => "its start".to_string(),
            Handled::Message { kind, from } => format!("a {kind} from {}", name(from)),
            Handled::Timer { kind, key } => format!("its timer {kind}:{key}"),
            Handled::Fsync { token } => format!("the completion of its fsync (token {token})"),
        }
    }
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
            closed_at: BTreeMap::new(),
            late_requests: Vec::new(),
            handling: None,
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
            slowdowns: Vec::new(),
            disk_slowdowns: Vec::new(),
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

    /// How many times the node was brought down so far: a node's state machine of one
    /// incarnation is a new one after each crash or power loss.
    pub fn incarnation(&self, id: NodeId) -> u64 {
        self.slot(id).incarnation
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
    /// Transactional requests of closed connections that were delivered after the heal
    /// ([`crate::late`]), in delivery order.
    pub fn late_requests(&self) -> &[crate::late::LateRequest] {
        &self.late_requests
    }

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

    /// The event whose handler is running, or whose effects are being applied: after a
    /// panic unwound out of [`World::run_until`], the event the panicking node was handling
    /// (`None` when the panic came from outside any handler).
    pub fn handling(&self) -> Option<Handling> {
        self.handling
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
        if let EventKind::Retransmit {
            from,
            epoch,
            generation,
        } = event.kind
        {
            self.retransmit(from, id, epoch, generation);
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
            if self.connections.is_holding(from, id, epoch) {
                if !self.network.accepts(from, id, epoch) {
                    self.network.settle(from, id, bytes, false);
                    return;
                }
                self.network.stats.delayed += 1;
                self.hold(from, id, epoch, event);
                return;
            }
            match self.network.arrive(from, id, bytes, epoch) {
                Arrival::Stale => return,
                Arrival::Blocked => {
                    self.hold(from, id, epoch, event);
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
                        self.network.not_established(from, id);
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
            if *stage != Stage::Notice && !self.network.accepts(*from, id, *link_epoch) {
                return; // its connection ended while it waited in a pause or a socket
            }
            // Only a node run as a Kafka broker has Kafka's socket server (a test's
            // scripted broker may leave a request unanswered on purpose).
            let broker = self.slots[id.0 as usize].class == CostClass::Broker;
            if broker && *stage == Stage::Arrived && socket::mutes(msg) {
                let (from, epoch) = (*from, *link_epoch);
                match self.sockets.read(id, from, epoch, event) {
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

    /// Run the handler of an event that arrived (and, with a CPU model, got a core).
    fn handle(&mut self, id: NodeId, event: Event) {
        self.stats.events += 1;
        let incarnation = self.slots[id.0 as usize].incarnation;
        let handling = |event| {
            Some(Handling {
                node: id,
                incarnation,
                event,
            })
        };
        match event.kind {
            EventKind::Start => {
                self.handling = handling(Handled::Start);
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
                self.handling = handling(Handled::Message {
                    kind: msg.kind(),
                    from,
                });
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
                self.handling = handling(Handled::Timer {
                    kind: timer.kind,
                    key: timer.key,
                });
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
                self.handling = handling(Handled::Fsync { token });
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
        self.handling = None;
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

    fn trace(&mut self, id: NodeId, kind: impl FnOnce() -> TraceKind) {
        if self.config.trace == TraceLevel::Events {
            self.trace_events.push(TraceEvent {
                at: self.now,
                node: id,
                kind: kind(),
            });
        }
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
