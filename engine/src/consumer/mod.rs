//! The consumer client node: group membership, fetching, commits and the application that
//! processes what it polls (DESIGN §2 "Consumer client + group coordinator", "Application
//! model").
//!
//! The node is one process holding the client library and the service around it:
//! - [`membership`]: FindCoordinator / JoinGroup (KIP-394 handshake) / SyncGroup / Heartbeat /
//!   LeaveGroup, eager and cooperative (KIP-429) rebalancing, the leader's assignment.
//! - [`fetcher`]: metadata, positions (OffsetFetch, `auto.offset.reset` through ListOffsets),
//!   fetch sessions per leader with `fetch.min.bytes` / `fetch.max.wait.ms` / byte limits,
//!   leader changes and OffsetOutOfRange.
//! - [`commit`]: auto-commit as each client does it, manual sync / async commits.
//! - [`poll`]: the application's poll loop, processors (inline or a worker pool), batch
//!   handler, sink and dead-letter produce.
//! - [`database`]: the statements to the group's shared database (the sink).
//! - [`dead_letter`]: the dead-letter produce of records the handler gave up on.
//! - [`network_client`]: requests in flight, their timeouts, reconnects and resets.
//!
//! Everything is driven by [`Consumer::drive`], which runs after every input and moves each
//! state machine forward as far as it can; a 100 ms tick retries what waits on a backoff and
//! expires requests that got no answer.

pub mod commit;
pub mod config;
pub mod consume_loop;
pub mod ctp;
pub mod database;
mod dead_letter;
pub mod fetcher;
pub mod membership;
mod network_client;
pub mod partition_watch;
pub mod poll;
pub mod profile;
pub mod status;
#[cfg(test)]
mod tests;
pub mod timer;

use crate::app::handler::BatchBuffer;
use crate::app::sink::{LocalSink, SinkClient, SINK_FILE};
use crate::app::workers::Processors;
use crate::app::{Delivered, HandlerSpec, OnFailure};
use crate::history::ResetCause;
use crate::node::{Cx, DiskDone, Node, NodeId, NodeTimer, Timer};
use crate::protocol::{Exchange, Message};
use crate::reconnect::{self, ConnectionStates};
use crate::record::{TopicId, TopicPartition};
use crate::time::{Duration, Instant};
pub use config::{ConsumerConfig, OffsetReset};
use dead_letter::DeadLetter;
use profile::AutoCommitStyle;
use rand::Rng;
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use timer::ConsumerTimer;

/// Period of the housekeeping tick.
const TICK: Duration = Duration::from_millis(100);
/// Most requests one consumer has in flight (every kind together).
const MAX_INFLIGHT: usize = 256;

/// What the lead's runner builds a consumer from.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    pub group_index: u32,
    pub member_index: u32,
    pub group: String,
    pub topics: Vec<TopicId>,
    /// Names of the subscribed topics (assignors sort by names).
    pub topic_names: BTreeMap<TopicId, String>,
    pub handler: HandlerSpec,
    pub bootstrap: Vec<NodeId>,
    /// Required when `handler.on_failure` is `Dlq`.
    pub dlq_topic: Option<TopicId>,
    /// The group's database node, where processed records' results go (None: nowhere).
    pub database: Option<NodeId>,
    /// A bench's backlog phase (`[bench] backlog`): the application has paused every
    /// partition it is assigned (Java `KafkaConsumer.pause`, as OpenMessaging Benchmark's
    /// `pauseConsumers` does) until this instant. The member joins its group, heartbeats and
    /// commits as usual, but sends no fetch before then. `Instant::ZERO`: never paused.
    pub fetch_paused_until: Instant,
    /// A standalone partition consumer (no group membership): what it reads, from where.
    pub standalone: Option<Standalone>,
    /// Handler `produce_to`: the output topic and the producer the application writes it
    /// with ([`ctp`]).
    pub produce_to: Option<ProduceTo>,
}

/// The output side of a consume-transform-produce application.
#[derive(Clone, Debug)]
pub struct ProduceTo {
    pub topic: TopicId,
    /// `commit = "transaction"`: outputs and offsets in one transaction.
    pub transactional: bool,
    /// The member's producer (its `transactional.id` set when transactional).
    pub producer: crate::producer::ProducerConfig,
    /// What the application passes `sendOffsetsToTransaction` (handler `send_offsets`).
    pub send_offsets: SendOffsets,
}

/// The group argument of Java's `sendOffsetsToTransaction` (handler `send_offsets`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SendOffsets {
    /// `sendOffsetsToTransaction(offsets, consumer.groupMetadata())` (Java 2.5+, KIP-447):
    /// TxnOffsetCommit carries the member id and generation, and the group coordinator
    /// refuses it from a member that is no longer in the group at that generation.
    #[default]
    GroupMetadata,
    /// `sendOffsetsToTransaction(offsets, "group")` (deprecated in 3.0 by KIP-732, removed
    /// in 4.0 by KAFKA-12690) or `new ConsumerGroupMetadata("group")`: no member id and
    /// generation -1, which `GroupCoordinator.validateOffsetCommit` accepts from anyone.
    GroupId,
}

/// A consumer that names its partitions itself instead of joining a group: Java
/// `KafkaConsumer.assign`, sarama `Consumer.ConsumePartition`, kafka-go `Reader` with
/// `Partition`, librdkafka `rd_kafka_assign`. It never rebalances; every (re)start takes the
/// same partitions and positions them by [`Start`] (or from the group's database when it
/// stores offsets). Only Java and librdkafka with a `group.id` can commit (a simple commit,
/// generation -1, which the coordinator accepts while no group of that id has members).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standalone {
    pub partitions: Vec<TopicPartition>,
    pub start: Start,
    /// The application can commit offsets (a `group.id` with Java or librdkafka).
    pub commits: bool,
}

/// Where a standalone consumer starts reading at each (re)start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The log start (sarama `OffsetOldest`, kafka-go `FirstOffset`, Java `seekToBeginning`).
    Oldest,
    /// The log end (sarama `OffsetNewest`, kafka-go `LastOffset`, Java `seekToEnd`).
    Newest,
    /// The group's committed offset, else `auto.offset.reset` (Java's position after
    /// `assign` with a `group.id`).
    Committed,
}

/// A request in flight, by correlation id.
#[derive(Clone, Debug)]
struct Inflight {
    to: NodeId,
    sent_at: Instant,
    timeout: Duration,
    req: Req,
}

#[derive(Clone, Debug)]
enum Req {
    Metadata,
    FindCoordinator,
    Join,
    Sync,
    Heartbeat,
    Leave,
    Commit(commit::CommitCtx),
    OffsetFetch(Vec<TopicPartition>),
    ListOffsets(Vec<TopicPartition>),
    Fetch(Vec<(TopicPartition, u64)>),
    DeadLetter { processor: usize },
    Statement(database::StatementFor),
}

/// What the consumer knows of one assigned partition.
#[derive(Clone, Debug, Default)]
struct PartState {
    position: Option<u64>,
    committed: Option<u64>,
    marked: Option<u64>,
    leader_epoch: Option<u32>,
    need: Need,
    /// An OffsetFetch / ListOffsets / Fetch for it is in flight.
    busy: bool,
    /// The application seeks back to the committed offset it asks for (an aborted
    /// consume-transform-produce batch): the answer is a seek (`PositionReset`).
    rewind: bool,
    buffered: VecDeque<Delivered>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Need {
    /// Ask the coordinator for the committed offset.
    #[default]
    Committed,
    /// Apply `auto.offset.reset` (or a standalone consumer's start) through ListOffsets.
    Reset(ResetCause),
    /// `auto.offset.reset = none` and no committed offset: the partition cannot be consumed.
    Stuck,
    /// Position known.
    Nothing,
    /// Ask the group's database where to resume (offsets-in-sink), before the coordinator.
    Stored,
}

/// The consumer node. Inspect with the getters; everything else happens through [`Node`].
pub struct Consumer {
    spec: ConsumerSpec,
    config: ConsumerConfig,
    auto_style: AutoCommitStyle,
    /// When a handed-over record's offset is marked, by the client's consume loop.
    mark_at: consume_loop::MarkAt,
    /// Which members notice a topic's new partitions ([`partition_watch`]).
    watcher: partition_watch::Watcher,
    /// sarama: the records go to one processor per claimed partition (its ConsumeClaim loops).
    claims: bool,
    next_corr: u64,
    inflight: BTreeMap<u64, Inflight>,
    meta: fetcher::Metadata,
    group: membership::Membership,
    parts: BTreeMap<TopicPartition, PartState>,
    /// Fetch in flight per leader, and the earliest time of the next fetch to it.
    fetching: BTreeMap<NodeId, u64>,
    fetch_not_before: BTreeMap<NodeId, Instant>,
    poll: poll::PollLoop,
    procs: Processors,
    batch: BatchBuffer,
    sink: SinkClient,
    local_sink: LocalSink,
    sync_commit: Option<commit::SyncCommit>,
    dead_letters: BTreeMap<usize, DeadLetter>,
    /// Brokers that answered since this incarnation started (or since they last failed us).
    connected: BTreeSet<NodeId>,
    /// When a broker last failed a request (timeout or reset): avoided for cluster-wide asks.
    failed_at: BTreeMap<NodeId, Instant>,
    /// Reconnect backoff per broker after this consumer closed its connection. kafsim has
    /// one connection per pair of nodes, so closing the connection to a broker also fails
    /// what this consumer had in flight to that broker's group coordinator; Java keeps the
    /// coordinator on a separate connection (node id `Integer.MAX_VALUE - coordinator id`),
    /// so a timed-out fetch there leaves the coordinator requests alone: a simplification.
    connections: ConnectionStates,
    /// Requests waiting for the reconnect backoff of their broker, by correlation id (their
    /// `inflight` entry exists and times out as Java's unsent requests do).
    held: BTreeMap<u64, (NodeId, Message)>,
    /// No OffsetFetch before this instant (the backoff after UNSTABLE_OFFSET_COMMIT).
    offset_fetch_not_before: Instant,
    /// OffsetFetches answered UNSTABLE_OFFSET_COMMIT (inspection, tests).
    stable_offset_retries: u64,
    /// Handler `produce_to`: the member's own producer and its batch ([`ctp`]).
    ctp: Option<ctp::Ctp>,
    /// How many times slower the application processes a record (a `consumer-slowdown`
    /// fault, signalled by the host; 1.0 normally). Only the handler's processing time is
    /// stretched: the client's own threads and timers (Java's heartbeat thread, sarama's
    /// heartbeat goroutine, request timeouts, auto-commit) run on as they would beside a
    /// slow handler.
    slowdown: f64,
}

impl Consumer {
    /// The host's signal that pauses this consumer's fetching until `until` (a bench's
    /// backlog phase: OMB's `WorkloadGenerator.buildAndDrainBacklog` pauses its consumers
    /// once they are ready, while the backlog builds).
    pub fn pause_timer(until: Instant) -> Timer {
        ConsumerTimer::Pause(until).into()
    }

    /// The host's signal that the application now processes each record `factor` times
    /// slower (1.0: normal speed again): a `consumer-slowdown` fault. A record already being
    /// processed keeps its time; the next ones are stretched.
    pub fn slowdown_timer(factor: f64) -> Timer {
        assert!(
            factor > 0.0 && factor.is_finite(),
            "slowdown factor {factor} must be positive"
        );
        ConsumerTimer::Slowdown(factor.to_bits()).into()
    }

    pub fn new(spec: ConsumerSpec, config: ConsumerConfig) -> Consumer {
        assert!(
            spec.handler.on_failure != OnFailure::Dlq || spec.dlq_topic.is_some(),
            "consumer {}/{}: on_failure = dlq needs a dlq_topic",
            spec.group,
            spec.member_index
        );
        assert!(
            !spec.bootstrap.is_empty(),
            "consumer {}: no bootstrap brokers",
            spec.group
        );
        // sarama runs the handler's ConsumeClaim once per claimed partition, each in its own
        // goroutine (IBM/sarama `consumer_group.go` `newConsumerGroupSession`: `go func() {
        // sess.consume(topic, partition) }` per claim): a handler without its own pool or
        // batch gets one processor per claim, fed by its own bounded channel
        // (`Consumer.ChannelBufferSize`).
        let claims = config.client == profile::ClientKind::Sarama
            && !spec.handler.uses_pool()
            && spec.handler.batch.is_none();
        let procs = if claims {
            Processors::for_claims(crate::app::workers::SARAMA_CHANNEL_BUFFER)
        } else {
            Processors::new(
                spec.handler.workers,
                spec.handler.routing,
                config.max_poll_records,
            )
        };
        let sink = SinkClient::new(spec.handler.sink, spec.database);
        let auto_style = config.auto_commit_style();
        let mark_at = consume_loop::mark_at(
            config.client,
            spec.handler.mark,
            spec.handler.commit,
            config.enable_auto_offset_store,
        );
        let group = membership::Membership::new(&config);
        let watcher = partition_watch::watcher(config.client, config.watch_partition_changes);
        let (backoff, backoff_max) = reconnect::defaults(config.client);
        let connections = ConnectionStates::new(config.client, backoff, backoff_max)
            .with_setup(config.setup_timeout());
        let ctp = spec.produce_to.as_ref().map(|out| {
            let producer_spec = crate::producer::ProducerSpec {
                index: u32::MAX,
                topic: out.topic,
                rate: None,
                keys: 0,
                message_size: 0,
                message_profile: crate::compression::MessageProfile::Random,
                stop_at: Instant::ZERO,
                bootstrap: spec.bootstrap.clone(),
                value_base: 0,
                transactions: None,
                held: false,
                start_phase: Duration::ZERO,
            };
            let producer = crate::producer::Producer::hosted(producer_spec, out.producer.clone());
            ctp::Ctp::new(producer, out.transactional)
        });
        Consumer {
            spec,
            config,
            auto_style,
            mark_at,
            watcher,
            claims,
            next_corr: 0,
            inflight: BTreeMap::new(),
            meta: fetcher::Metadata::default(),
            group,
            parts: BTreeMap::new(),
            fetching: BTreeMap::new(),
            fetch_not_before: BTreeMap::new(),
            poll: poll::PollLoop::default(),
            procs,
            batch: BatchBuffer::default(),
            sink,
            local_sink: LocalSink::default(),
            sync_commit: None,
            dead_letters: BTreeMap::new(),
            connected: BTreeSet::new(),
            failed_at: BTreeMap::new(),
            connections,
            held: BTreeMap::new(),
            offset_fetch_not_before: Instant::ZERO,
            stable_offset_retries: 0,
            ctp,
            slowdown: 1.0,
        }
    }

    // ---------------------------------------------------------------- inspection

    /// Partitions currently owned (assigned and not revoked).
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.group.owned.clone()
    }

    pub fn generation(&self) -> i32 {
        self.group.generation
    }

    pub fn member_id(&self) -> &str {
        &self.group.member_id
    }

    /// Statements to the group's database waiting for an answer or a retry.
    pub fn pending_statements(&self) -> usize {
        self.sink.pending()
    }

    /// The application holds records it has not finished with: a processor is processing
    /// or queueing one, or the poll loop waits on a commit or a transaction of what it
    /// processed. A fenced member's application is gone (FENCED_INSTANCE_ID is fatal) and
    /// holds nothing. The drain waits for this, however long a handler takes.
    pub fn holds_records(&self) -> bool {
        let idle = self.poll_thread_idle() && self.procs.pool_idle();
        !self.group.fenced && !idle
    }

    /// Position of an assigned partition.
    pub fn position(&self, tp: TopicPartition) -> Option<u64> {
        self.parts.get(&tp)?.position
    }

    /// OffsetFetches the coordinator answered UNSTABLE_OFFSET_COMMIT (a transaction's offsets
    /// were pending).
    pub fn stable_offset_retries(&self) -> u64 {
        self.stable_offset_retries
    }

    /// Rebalances this incarnation completed (SyncGroup answered with an assignment).
    pub fn rebalances(&self) -> u64 {
        self.group.rebalances
    }

    /// Move every state machine forward as far as it goes now.
    fn drive(&mut self, cx: &mut Cx) {
        if self.group.fenced {
            return; // FENCED_INSTANCE_ID is fatal: the application's consumer is gone
        }
        self.drive_metadata(cx);
        self.drive_coordinator(cx);
        self.drive_sync_commit(cx);
        self.drive_membership(cx);
        self.drive_positions(cx);
        // poll() hands out what is buffered first, and only then sends the next fetches, so
        // a partition whose records were just handed out is in the next fetch (Java
        // `KafkaConsumer.poll`: `collectFetch()`, then `sendFetches()` "before returning the
        // fetched records"; `AbstractFetch.fetchablePartitions` leaves out partitions that
        // still hold buffered records). Fetching first left such a partition out of the
        // next fetch, which then waited up to fetch.max.wait.ms for data on the others.
        self.drive_poll_loop(cx);
        self.drive_fetch(cx);
        self.drive_dead_letters(cx);
        self.drive_database(cx);
        self.drive_ctp(cx);
        // A synchronous commit the steps above started (kafka-go's `ReadMessage` commits each
        // message as it hands it over, `commitLoopImmediate`; a processed poll's `commitSync`;
        // `onJoinPrepare`'s commit) goes out now, as the client sends it at once: left to the
        // next event, it waited for the next 100 ms tick, which held kafka-go's ReadMessage to
        // about ten records per second.
        self.drive_sync_commit(cx);
    }

    /// Request timeouts, the member's poll deadline, and the next tick.
    fn on_tick(&mut self, cx: &mut Cx) {
        self.expire_connection_setups(cx);
        self.expire_requests(cx);
        self.refresh_metadata_if_old(cx.now());
        self.check_poll_interval(cx);
        self.check_session(cx);
        cx.set_timer_after(TICK, ConsumerTimer::Tick);
    }

    /// Match a response to its request. Correlation ids are unique across incarnations (a
    /// random base per start, see `on_start`) and a response counts only from the broker the
    /// request went to, so an answer meant for a previous process of this consumer, or for a
    /// request already failed, is dropped rather than taken for another request's.
    fn handle_response(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        let Exchange::Response {
            correlation_id: corr,
        } = msg.exchange()
        else {
            return;
        };
        if self.inflight.get(&corr).is_none_or(|f| f.to != from) {
            return; // answered after a timeout or a reset, or not ours at all
        }
        let Some(f) = self.inflight.remove(&corr) else {
            return;
        };
        self.connected.insert(from);
        self.connections.ready(from);
        match (f.req, msg) {
            (Req::Metadata, Message::MetadataResponse(r)) => self.on_metadata(cx.now(), r),
            (Req::FindCoordinator, Message::FindCoordinatorResponse(r)) => {
                self.on_find_coordinator(cx, r)
            }
            (Req::Join, Message::JoinGroupResponse(r)) => self.on_join(cx, from, r),
            (Req::Sync, Message::SyncGroupResponse(r)) => self.on_sync(cx, from, r),
            (Req::Heartbeat, Message::HeartbeatResponse(r)) => self.on_heartbeat(cx, from, r),
            (Req::Leave, Message::LeaveGroupResponse(_)) => {}
            (Req::Commit(ctx), Message::OffsetCommitResponse(r)) => {
                self.on_commit_response(cx, from, ctx, r)
            }
            (Req::OffsetFetch(tps), Message::OffsetFetchResponse(r)) => {
                self.on_offset_fetch(cx, from, tps, r)
            }
            (Req::ListOffsets(tps), Message::ListOffsetsResponse(r)) => {
                self.on_list_offsets(cx, tps, r)
            }
            (Req::Fetch(tps), Message::FetchResponse(r)) => self.on_fetch(cx, from, tps, r),
            (Req::DeadLetter { processor }, Message::ProduceResponse(r)) => {
                self.on_dead_letter_response(cx, processor, r)
            }
            (Req::Statement(which), Message::DatabaseResponse(r)) => {
                self.on_statement_answer(cx, which, r)
            }
            (req, msg) => panic!(
                "consumer {}/{}: {} answered {req:?}",
                self.spec.group,
                self.spec.member_index,
                msg.kind()
            ),
        }
    }

    // ---------------------------------------------------------------- dead letters
}

/// A copy of a connection notice (ConnectionReset / ConnectionRefused carry nothing).
fn msg_notice(msg: &Message) -> Message {
    match msg {
        Message::ConnectionRefused => Message::ConnectionRefused,
        _ => Message::ConnectionReset,
    }
}

impl Node for Consumer {
    fn on_start(&mut self, cx: &mut Cx) {
        // Each incarnation numbers its requests from its own random base: a restarted
        // consumer must not take a late answer to its previous process's request N for its
        // own request N (the old process's ids started at the same place).
        self.next_corr = cx.rng().gen_range(1..1u64 << 62);
        if self.sink.database().is_none() {
            self.local_sink.recover(cx);
        }
        self.meta.wanted = true;
        self.start_standalone(cx);
        self.ctp_start(cx);
        self.poll.last_poll = cx.now();
        self.poll.last_auto_commit = cx.now();
        cx.set_timer_after(TICK, ConsumerTimer::Tick);
        if self.spec.fetch_paused_until > cx.now() {
            cx.set_timer(self.spec.fetch_paused_until, ConsumerTimer::Resume);
        }
        if self.config.enable_auto_commit && self.auto_style == AutoCommitStyle::Timer {
            let every = self
                .config
                .auto_commit_interval
                .max(Duration::from_millis(1));
            cx.set_timer_after(every, ConsumerTimer::AutoCommit);
        }
        self.drive(cx);
    }

    fn on_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        match msg {
            // The consumer retries what it had in flight either way (fetches and group requests
            // are idempotent for it), so a refusal is handled as a reset. The hosted producer
            // of a `produce_to` handler shares the connection and gets the notice too.
            Message::ConnectionReset | Message::ConnectionRefused => {
                let notice = msg_notice(&msg);
                self.on_connection_reset(cx, from);
                if self.ctp.is_some() {
                    self.ctp_message(cx, from, notice);
                }
            }
            other if self.ctp_takes(&other) => self.ctp_message(cx, from, other),
            other => self.handle_response(cx, from, other),
        }
        self.drive(cx);
    }

    fn on_timer(&mut self, cx: &mut Cx, timer: Timer) {
        match ConsumerTimer::decode(timer) {
            ConsumerTimer::Hosted(inner) => self.ctp_timer(cx, inner),
            ConsumerTimer::Tick => self.on_tick(cx),
            ConsumerTimer::Heartbeat(epoch) => self.on_heartbeat_timer(cx, epoch),
            ConsumerTimer::AutoCommit => self.on_auto_commit_timer(cx),
            ConsumerTimer::Process(i) => self.on_process_done(cx, i),
            ConsumerTimer::Batch(seq) => self.on_batch_timeout(cx, seq),
            ConsumerTimer::Reconnect(to) => self.on_reconnect_timer(cx, to),
            ConsumerTimer::Resume => {} // the drive below sends the first fetches
            ConsumerTimer::Slowdown(bits) => {
                self.slowdown = f64::from_bits(bits);
                assert!(self.slowdown > 0.0 && self.slowdown.is_finite());
            }
            ConsumerTimer::Pause(until) => {
                self.spec.fetch_paused_until = until;
                if until > cx.now() {
                    cx.set_timer(until, ConsumerTimer::Resume);
                }
            }
        }
        self.drive(cx);
    }

    fn on_disk(&mut self, cx: &mut Cx, done: DiskDone) {
        if done.file == SINK_FILE {
            self.local_sink.on_fsync();
        }
        self.drive(cx);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
