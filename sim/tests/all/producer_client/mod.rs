//! Producer client against a scripted single broker (issue 4): retries, duplicates, reordering,
//! idempotence, back-pressure and the sync/async application modes, each both ways.
//!
//! The `ScriptedBroker` leads every partition, keeps an in-memory log per partition with the
//! real broker-side `ProducerStateManager`, and misbehaves on cue: it can append a request and
//! lose its response (so the client times out and retries), or reject a request with an error
//! without appending it. Tests assert on its log and on the history directly. Leader moves
//! and connections are in [`leader_moves`], sequences and application errors in
//! [`sequences`].

mod leader_moves;
mod sequences;

use kafsim_engine::config::{ConfigValue, Configurable};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::log::producer_state::ProducerStateManager;
use kafsim_engine::producer::{Producer, ProducerConfig, ProducerSpec, OFFSET_UNKNOWN};
use kafsim_engine::protocol::{
    Acks, ErrorCode, InitProducerIdResponse, Message, MetadataResponse, PartitionMetadata,
    PartitionProduceResponse, PartitionState, ProduceRequest, ProduceResponse,
};
use kafsim_engine::{
    Cx, Duration, Instant, Node, NodeId, RecordBatch, Timer, TopicId, TopicPartition, ValueId,
};
use kafsim_sim::world::{World, WorldConfig};
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};

const TOPIC: TopicId = TopicId(0);

/// What the scripted broker does to the n-th produce request it receives (1-based).
#[derive(Clone, Debug, Default)]
struct Script {
    /// Append, but never answer.
    lose_response: BTreeSet<u64>,
    /// Answer with this error without appending.
    reject: BTreeMap<u64, ErrorCode>,
    /// Ignore produce requests entirely (an unresponsive broker).
    silent: bool,
    /// Leadership moves from one broker to another at an instant (metadata and produce
    /// answers follow it: a non-leader answers NotLeaderOrFollower).
    leadership: Option<Leadership>,
}

/// Which of two scripted brokers leads every partition, before and after `switch_at`.
#[derive(Clone, Copy, Debug)]
struct Leadership {
    before: NodeId,
    after: NodeId,
    switch_at: Instant,
}

impl Leadership {
    /// The leader and its epoch at `now`.
    fn at(&self, now: Instant) -> (NodeId, u32) {
        if now < self.switch_at {
            (self.before, 1)
        } else {
            (self.after, 2)
        }
    }
}

struct ScriptedBroker {
    partitions: u32,
    script: Script,
    logs: Vec<Vec<RecordBatch>>,
    states: Vec<ProducerStateManager>,
    produce_requests: u64,
    epoch: i16,
    /// When produce and metadata requests arrived, and when the producer closed on us.
    produce_times: Vec<Instant>,
    metadata_times: Vec<Instant>,
    resets: Vec<Instant>,
    /// (producer id, epoch) of every InitProducerId request.
    inits: Vec<(i64, i16)>,
}

impl ScriptedBroker {
    fn new(partitions: u32, script: Script) -> ScriptedBroker {
        ScriptedBroker {
            partitions,
            script,
            logs: vec![Vec::new(); partitions as usize],
            states: vec![ProducerStateManager::new(); partitions as usize],
            produce_requests: 0,
            epoch: -1,
            produce_times: Vec::new(),
            metadata_times: Vec::new(),
            resets: Vec::new(),
            inits: Vec::new(),
        }
    }

    /// The leader of every partition at `now`, and its epoch.
    fn leader(&self, cx: &Cx) -> (NodeId, u32) {
        self.script
            .leadership
            .map_or((cx.me(), 1), |l| l.at(cx.now()))
    }

    /// Producer epochs of the batches in the log, in log order.
    fn producer_epochs(&self, partition: u32) -> Vec<i16> {
        self.logs[partition as usize]
            .iter()
            .map(|b| b.producer_epoch)
            .collect()
    }

    /// Values of a partition in log order.
    fn values(&self, partition: u32) -> Vec<ValueId> {
        self.logs[partition as usize]
            .iter()
            .flat_map(|b| b.records.iter().map(|r| r.value))
            .collect()
    }

    fn metadata(&self, cx: &Cx, correlation_id: u64) -> MetadataResponse {
        let me = cx.me();
        let (leader, epoch) = self.leader(cx);
        let brokers = match self.script.leadership {
            Some(l) => vec![l.before, l.after],
            None => vec![me],
        };
        MetadataResponse {
            correlation_id,
            brokers: brokers.clone(),
            controller: Some(me),
            topics: vec![(TOPIC, self.partitions)],
            partitions: (0..self.partitions)
                .map(|p| PartitionMetadata {
                    error: ErrorCode::None,
                    state: PartitionState {
                        partition: TopicPartition::new(TOPIC, p),
                        leader: Some(leader),
                        leader_epoch: epoch,
                        isr: vec![leader],
                        partition_epoch: epoch,
                        replicas: brokers.clone(),
                    },
                })
                .collect(),
        }
    }

    fn append(&mut self, tp: TopicPartition, mut batch: RecordBatch) -> PartitionProduceResponse {
        let p = tp.partition as usize;
        let answer = |error, base_offset| PartitionProduceResponse {
            partition: tp,
            error,
            base_offset,
            log_start_offset: 0,
        };
        match self.states[p].check(&batch) {
            Err(error) => answer(error, 0),
            Ok(Some(original)) => answer(ErrorCode::None, original),
            Ok(None) => {
                batch.base_offset = self.logs[p].last().map_or(0, |b| b.next_offset());
                self.states[p].on_append(&batch);
                let base = batch.base_offset;
                self.logs[p].push(batch);
                answer(ErrorCode::None, base)
            }
        }
    }

    fn produce(&mut self, cx: &mut Cx, from: NodeId, r: ProduceRequest) {
        self.produce_requests += 1;
        self.produce_times.push(cx.now());
        let n = self.produce_requests;
        if self.script.silent {
            return;
        }
        let not_leader = self.leader(cx).0 != cx.me();
        let reject = if not_leader {
            Some(ErrorCode::NotLeaderOrFollower)
        } else {
            self.script.reject.get(&n).copied()
        };
        let partitions: Vec<PartitionProduceResponse> = match reject {
            Some(error) => r
                .batches
                .iter()
                .map(|(tp, _)| PartitionProduceResponse {
                    partition: *tp,
                    error,
                    base_offset: 0,
                    log_start_offset: 0,
                })
                .collect(),
            None => r
                .batches
                .into_iter()
                .map(|(tp, b)| self.append(tp, b))
                .collect(),
        };
        if r.acks == Acks::None || self.script.lose_response.contains(&n) {
            return;
        }
        let response = ProduceResponse {
            correlation_id: r.correlation_id,
            partitions,
        };
        cx.send(from, Message::ProduceResponse(response));
    }
}

impl Node for ScriptedBroker {
    fn on_start(&mut self, _cx: &mut Cx) {}

    fn on_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        match msg {
            Message::MetadataRequest(r) => {
                self.metadata_times.push(cx.now());
                let response = self.metadata(cx, r.correlation_id);
                cx.send(from, Message::MetadataResponse(response));
            }
            Message::InitProducerIdRequest(r) => {
                self.inits.push((r.producer_id, r.producer_epoch));
                self.epoch += 1;
                let response = InitProducerIdResponse {
                    correlation_id: r.correlation_id,
                    error: ErrorCode::None,
                    producer_id: 1000,
                    producer_epoch: self.epoch,
                };
                cx.send(from, Message::InitProducerIdResponse(response));
            }
            Message::ProduceRequest(r) => self.produce(cx, from, r),
            Message::ConnectionReset => self.resets.push(cx.now()),
            _ => {}
        }
    }

    fn on_timer(&mut self, _cx: &mut Cx, _timer: Timer) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn config(
    client: &str,
    version: Option<&str>,
    overrides: &[(&str, ConfigValue)],
) -> ProducerConfig {
    let mut c = ProducerConfig::for_client(client, version).unwrap();
    for (key, value) in overrides {
        c.set(key, value).unwrap();
    }
    c.validate().unwrap();
    c
}

fn int(v: i64) -> ConfigValue {
    ConfigValue::Int(v)
}

fn boolean(v: bool) -> ConfigValue {
    ConfigValue::Bool(v)
}

fn spec(broker: NodeId, rate: Option<f64>, stop_ms: u64, partitions_keys: u32) -> ProducerSpec {
    ProducerSpec {
        index: 0,
        topic: TOPIC,
        rate,
        keys: partitions_keys,
        message_size: 100,
        message_profile: Default::default(),
        stop_at: Instant::from_millis(stop_ms),
        bootstrap: vec![broker],
        value_base: 0,
        transactions: None,
        held: false,
        start_phase: Default::default(),
    }
}

/// A world with one scripted broker and one producer; runs to `end_ms`.
fn run(
    script: Script,
    partitions: u32,
    spec_of: impl Fn(NodeId) -> ProducerSpec,
    config: ProducerConfig,
    end_ms: u64,
) -> (World, NodeId, NodeId) {
    let mut w = World::new(7, WorldConfig::default());
    let broker = w.add_node("broker-0", move || {
        Box::new(ScriptedBroker::new(partitions, script.clone())) as Box<dyn Node>
    });
    let spec = spec_of(broker);
    let producer = w.add_node("producer-0", move || {
        Box::new(Producer::new(spec.clone(), config.clone())) as Box<dyn Node>
    });
    w.run_until(Instant::from_millis(end_ms));
    (w, broker, producer)
}

fn duplicates(values: &[ValueId]) -> usize {
    let unique: BTreeSet<_> = values.iter().collect();
    values.len() - unique.len()
}

/// Positions where a value is smaller than the one before it (one producer sends in id order).
fn inversions(values: &[ValueId]) -> usize {
    values.windows(2).filter(|w| w[1] < w[0]).count()
}

/// Every invoked value completed exactly once, and acknowledged offsets hold the value.
fn check_completions(w: &World, broker: &ScriptedBroker) -> BTreeMap<&'static str, u64> {
    let mut invoked = BTreeSet::new();
    let mut completed = BTreeSet::new();
    let mut counts = BTreeMap::new();
    let logs: Vec<Vec<ValueId>> = (0..broker.partitions).map(|p| broker.values(p)).collect();
    for entry in w.history().entries() {
        let (value, kind) = match &entry.event {
            HistoryEvent::SendInvoke { value, .. } => {
                assert!(invoked.insert(*value), "{value:?} invoked twice");
                continue;
            }
            HistoryEvent::SendOk {
                value,
                partition,
                offset,
                ..
            } => {
                if *offset != OFFSET_UNKNOWN {
                    let log = &logs[partition.partition as usize];
                    assert_eq!(
                        log.get(*offset as usize),
                        Some(value),
                        "ack offset of {value:?}"
                    );
                }
                (*value, "ok")
            }
            HistoryEvent::SendFail { value, .. } => (*value, "fail"),
            HistoryEvent::SendInfo { value, .. } => (*value, "info"),
            _ => continue,
        };
        assert!(completed.insert(value), "{value:?} completed twice");
        *counts.entry(kind).or_insert(0) += 1;
    }
    assert_eq!(invoked, completed, "every send completes exactly once");
    counts
}

fn java(idempotence: bool, extra: &[(&str, ConfigValue)]) -> ProducerConfig {
    let mut overrides = vec![
        ("enable.idempotence", boolean(idempotence)),
        ("request.timeout.ms", int(500)),
        ("linger.ms", int(0)),
    ];
    overrides.extend(extra.iter().cloned());
    config("java", Some("3.7"), &overrides)
}

#[test]
fn lost_response_retry_duplicates_without_idempotence_only() {
    // Request 3 is appended but its response is lost: the client times out and resends.
    let script = Script {
        lose_response: [3].into(),
        ..Script::default()
    };
    let sync = [("sync", boolean(true))];
    for idempotence in [false, true] {
        let (w, b, p) = run(
            script.clone(),
            1,
            |b| spec(b, Some(100.0), 1_000, 0),
            java(idempotence, &sync),
            3_000,
        );
        let broker = w.node::<ScriptedBroker>(b).unwrap();
        let values = broker.values(0);
        let counts = check_completions(&w, broker);
        let invoked = w.node::<Producer>(p).unwrap().stats().invoked;
        assert!(
            invoked >= 5,
            "sync sends stall 500 ms on the lost response: {invoked}"
        );
        assert_eq!(
            counts.get("ok"),
            Some(&invoked),
            "idempotence={idempotence}: {counts:?}"
        );
        let expected = if idempotence { 0 } else { 1 };
        assert_eq!(
            duplicates(&values),
            expected,
            "idempotence={idempotence}: {values:?}"
        );
    }
}

#[test]
fn retried_batch_lands_after_later_one_without_idempotence_only() {
    // Request 3 is refused (NotLeaderOrFollower, nothing appended) while later requests in
    // flight succeed; its retry comes 100 ms later.
    let script = Script {
        reject: [(3, ErrorCode::NotLeaderOrFollower)].into(),
        ..Script::default()
    };
    for idempotence in [false, true] {
        let (w, b, p) = run(
            script.clone(),
            1,
            |b| spec(b, Some(2_000.0), 50, 0),
            java(idempotence, &[]),
            2_000,
        );
        let broker = w.node::<ScriptedBroker>(b).unwrap();
        let values = broker.values(0);
        let counts = check_completions(&w, broker);
        let invoked = w.node::<Producer>(p).unwrap().stats().invoked;
        assert!(invoked >= 98, "{invoked} sends in 50 ms at 2000/s");
        assert_eq!(
            counts.get("ok"),
            Some(&invoked),
            "idempotence={idempotence}"
        );
        assert_eq!(values.len() as u64, invoked, "idempotence={idempotence}");
        assert_eq!(duplicates(&values), 0);
        let reordered = inversions(&values);
        if idempotence {
            assert_eq!(reordered, 0, "idempotent log out of order: {values:?}");
        } else {
            assert!(reordered > 0, "expected the retried batch after later ones");
        }
    }
}

#[test]
fn one_in_flight_keeps_order_without_idempotence() {
    let script = Script {
        reject: [(3, ErrorCode::NotLeaderOrFollower)].into(),
        ..Script::default()
    };
    let one = [("max.in.flight.requests.per.connection", int(1))];
    let (w, b, p) = run(
        script,
        1,
        |b| spec(b, Some(2_000.0), 50, 0),
        java(false, &one),
        2_000,
    );
    let values = w.node::<ScriptedBroker>(b).unwrap().values(0);
    let invoked = w.node::<Producer>(p).unwrap().stats().invoked;
    assert_eq!(values.len() as u64, invoked);
    assert_eq!(inversions(&values), 0);
}

#[test]
fn retries_exhausted_without_append_is_a_definite_failure() {
    // sarama: Retry.Max = 3, so four refusals fail the batch; nothing was written.
    let script = Script {
        reject: (1..=4).map(|n| (n, ErrorCode::NotEnoughReplicas)).collect(),
        ..Script::default()
    };
    let sync = [("sync", boolean(true))];
    let c = config("sarama", None, &sync);
    let (w, b, _) = run(script, 1, |b| spec(b, Some(10.0), 1_000, 0), c, 3_000);
    let broker = w.node::<ScriptedBroker>(b).unwrap();
    let counts = check_completions(&w, broker);
    assert_eq!(counts.get("fail"), Some(&1), "{counts:?}");
    assert!(counts.get("ok").is_some_and(|ok| *ok >= 5), "{counts:?}");
}

#[test]
fn unknown_outcome_when_every_attempt_may_have_landed() {
    // An unresponsive broker: each attempt times out, so the outcome is unknown (SendInfo),
    // never a failure, once delivery.timeout.ms passes.
    let script = Script {
        silent: true,
        ..Script::default()
    };
    let c = java(true, &[("delivery.timeout.ms", int(2_000))]);
    let (w, b, p) = run(script, 1, |b| spec(b, Some(10.0), 50, 0), c, 5_000);
    let counts = check_completions(&w, w.node::<ScriptedBroker>(b).unwrap());
    assert_eq!(counts.get("info"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("fail"), None);
    assert!(w.node::<Producer>(p).unwrap().is_idle(w.now()));
}

#[test]
fn full_buffer_blocks_then_fails_after_max_block() {
    let script = Script {
        silent: true,
        ..Script::default()
    };
    // 108-byte records, 1000 bytes of buffer: nine fit; the tenth blocks 100 ms, then fails.
    let c = java(
        false,
        &[
            ("buffer.memory", int(1_000)),
            ("max.block.ms", int(100)),
            ("delivery.timeout.ms", int(10_000)),
        ],
    );
    let (w, _, p) = run(
        script.clone(),
        1,
        |b| spec(b, Some(1_000.0), 1_000, 0),
        c,
        300,
    );
    let failed = w
        .history()
        .entries()
        .filter(|e| matches!(e.event, HistoryEvent::SendFail { .. }))
        .count();
    assert!(failed >= 1, "a blocked send must fail after max.block.ms");
    assert!(w.node::<Producer>(p).unwrap().buffer_used() <= 1_000);

    // With room to spare nothing fails in the same time.
    let roomy = java(false, &[("delivery.timeout.ms", int(10_000))]);
    let (w, _, _) = run(script, 1, |b| spec(b, Some(1_000.0), 1_000, 0), roomy, 300);
    let failed = w
        .history()
        .entries()
        .filter(|e| matches!(e.event, HistoryEvent::SendFail { .. }))
        .count();
    assert_eq!(failed, 0);
}

#[test]
fn kafka_go_sync_writer_waits_for_batch_timeout() {
    // kafka-go's Writer defaults: sync, BatchTimeout 1 s, acks none. One record per second.
    let c = config("kafka-go", None, &[]);
    let (w, _, _) = run(
        Script::default(),
        1,
        |b| spec(b, Some(1_000.0), 3_500, 0),
        c,
        3_600,
    );
    let acks: Vec<Instant> = w
        .history()
        .entries()
        .filter(|e| matches!(e.event, HistoryEvent::SendOk { .. }))
        .map(|e| e.at)
        .collect();
    assert_eq!(acks.len(), 3, "one send per BatchTimeout: {acks:?}");
    assert!(acks[0] >= Instant::from_millis(1_000));

    // Async, the same writer batches everything it gets within a second.
    let c = config("kafka-go", None, &[("sync", boolean(false))]);
    let (w, b, _) = run(
        Script::default(),
        1,
        |b| spec(b, Some(1_000.0), 3_500, 0),
        c,
        3_600,
    );
    let logged = w.node::<ScriptedBroker>(b).unwrap().values(0).len();
    assert!(logged > 3_000, "async kafka-go wrote {logged}");
}

#[test]
fn linger_and_batch_size_shape_requests() {
    // Same load; linger.ms=5 packs records into fewer requests than linger.ms=0.
    let requests = |linger: i64| {
        let c = java(false, &[("linger.ms", int(linger))]);
        let (w, b, p) = run(
            Script::default(),
            3,
            |b| spec(b, Some(5_000.0), 500, 0),
            c,
            1_000,
        );
        let broker = w.node::<ScriptedBroker>(b).unwrap();
        let total: usize = (0..3).map(|p| broker.values(p).len()).sum();
        let invoked = w.node::<Producer>(p).unwrap().stats().invoked;
        assert!(invoked > 2_400, "{invoked} sends in 500 ms at 5000/s");
        assert_eq!(total as u64, invoked);
        broker.produce_requests
    };
    let (eager, lingering) = (requests(0), requests(5));
    assert!(
        lingering * 2 < eager,
        "linger 5: {lingering} requests, linger 0: {eager}"
    );
}

#[test]
fn keyed_records_follow_the_profile_partitioner() {
    let c = config("java", None, &[]);
    let (w, b, _) = run(
        Script::default(),
        4,
        |b| spec(b, Some(1_000.0), 200, 10),
        c,
        1_000,
    );
    let broker = w.node::<ScriptedBroker>(b).unwrap();
    let mut partition_of_key = BTreeMap::new();
    for entry in w.history().entries() {
        if let HistoryEvent::SendInvoke { value, key, .. } = &entry.event {
            let p = (0..4).find(|p| broker.values(*p).contains(value)).unwrap();
            let key = key.expect("keyed workload");
            let expected = kafsim_engine::partitioner::keyed_partition(
                kafsim_engine::partitioner::PartitionerKind::JavaMurmur2,
                &key.bytes(),
                4,
            );
            assert_eq!(Some(p), expected, "key {key:?}");
            assert_eq!(*partition_of_key.entry(key).or_insert(p), p);
        }
    }
    assert!(partition_of_key.len() > 1);
}

#[test]
fn stop_at_ends_new_sends_and_everything_completes() {
    let c = config("librdkafka", None, &[]);
    let (w, b, p) = run(Script::default(), 2, |b| spec(b, None, 5, 0), c, 2_000);
    let broker = w.node::<ScriptedBroker>(b).unwrap();
    let counts = check_completions(&w, broker);
    let producer = w.node::<Producer>(p).unwrap();
    assert!(producer.is_idle(w.now()));
    assert_eq!(counts.get("ok").copied(), Some(producer.stats().invoked));
    assert!(
        producer.stats().invoked > 1_000,
        "max rate sent {:?}",
        producer.stats()
    );
    assert_eq!(producer.buffer_used(), 0);
    let _ = Duration::ZERO;
}
