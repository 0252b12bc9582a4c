//! The cost model in the kernel (issue 8): CPU queueing per node (FIFO, cores, GC pauses,
//! per-effect costs), NIC sharing (egress and ingress of a node shared by all its links),
//! extra wire bytes per record, and the hardware profiles.

use crate::harness::fixed_latency;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::{Acks, ControllerSyncAck, Message, ProduceRequest};
use kafsim_engine::{
    Cx, Duration, Instant, Node, NodeId, Record, RecordBatch, Timer, TopicId, TopicPartition,
    ValueId,
};
use kafsim_sim::cost::{
    ethernet_goodput_bytes_per_sec, profile, CostClass, CostModel, Cpu, CpuCost, GcModel, Work,
    PROFILE_NAMES,
};
use kafsim_sim::world::{World, WorldConfig};
use std::any::Any;
use std::sync::Arc;

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

fn us(n: u64) -> Instant {
    Instant::from_nanos(n * 1_000)
}

/// A numbered message that is neither request nor response, so the kernel hands it over
/// as sent (it gives requests wire ids of its own, `connection.rs`).
fn msg(n: u64) -> Message {
    Message::ControllerSyncAck(ControllerSyncAck {
        controller_epoch: 0,
        version: n,
    })
}

fn id_of(m: &Message) -> u64 {
    match m {
        Message::ControllerSyncAck(r) => r.version,
        other => panic!("unexpected {other:?}"),
    }
}

/// A test CPU: every received message costs `receive`, every recorded fact `per_record`.
#[derive(Debug)]
struct TestCpu {
    cores: u32,
    receive: Duration,
    per_record: Duration,
    gc: Option<GcModel>,
}

impl CpuCost for TestCpu {
    fn cost(&self, _class: CostClass, work: &Work<'_>) -> Duration {
        match work {
            Work::Receive(..) => self.receive,
            Work::Record(_) => self.per_record,
            _ => Duration::ZERO,
        }
    }
    fn cores(&self, _class: CostClass) -> u32 {
        self.cores
    }
    fn gc(&self, _class: CostClass) -> Option<GcModel> {
        self.gc
    }
}

fn config(cpu: TestCpu, nic: u64) -> WorldConfig {
    WorldConfig {
        cost: CostModel {
            cpu: Some(Cpu(Arc::new(cpu))),
            nic_bytes_per_sec: nic,
            extra_bytes_per_record: 0,
        },
        ..fixed_latency(Duration::from_micros(500))
    }
}

fn cpu(cores: u32, receive_ms: u64) -> TestCpu {
    TestCpu {
        cores,
        receive: Duration::from_millis(receive_ms),
        per_record: Duration::ZERO,
        gc: None,
    }
}

/// At start, sends `messages` (id, destination) in one handler; records `records` facts first.
struct Burst {
    messages: Vec<(u64, NodeId)>,
    records: u64,
}

impl Node for Burst {
    fn on_start(&mut self, cx: &mut Cx) {
        for n in 0..self.records {
            cx.record(HistoryEvent::SendInvoke {
                producer: 0,
                value: ValueId(n),
                key: None,
                topic: TopicId(0),
                scheduled: None,
            });
        }
        for (n, to) in self.messages.clone() {
            cx.send(to, msg(n));
        }
    }
    fn on_message(&mut self, _cx: &mut Cx, _from: NodeId, _msg: Message) {}
    fn on_timer(&mut self, _cx: &mut Cx, _timer: Timer) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Records (message id, when its handler ran); with `echo`, answers every message.
#[derive(Default)]
struct Sink {
    got: Vec<(u64, Instant)>,
    echo: bool,
}

impl Node for Sink {
    fn on_start(&mut self, _cx: &mut Cx) {}
    fn on_message(&mut self, cx: &mut Cx, from: NodeId, m: Message) {
        self.got.push((id_of(&m), cx.now()));
        if self.echo {
            cx.send(from, m);
        }
    }
    fn on_timer(&mut self, _cx: &mut Cx, _timer: Timer) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn burst(messages: Vec<(u64, NodeId)>, records: u64) -> impl FnMut() -> Box<dyn Node> {
    move || {
        Box::new(Burst {
            messages: messages.clone(),
            records,
        }) as Box<dyn Node>
    }
}

fn sink(echo: bool) -> impl FnMut() -> Box<dyn Node> {
    move || {
        Box::new(Sink {
            got: Vec::new(),
            echo,
        }) as Box<dyn Node>
    }
}

/// Node 0 is the sink (charged as a broker), node 1 sends `count` messages to it at once.
fn busy_sink_world(cores: u32, count: u64) -> World {
    let mut w = World::new(1, config(cpu(cores, 1), 0));
    let s = w.add_node_with_cost("sink", CostClass::Broker, sink(false));
    w.add_node("burst", burst((0..count).map(|n| (n, s)).collect(), 0));
    w
}

fn got(w: &World, node: NodeId) -> Vec<(u64, Instant)> {
    w.node::<Sink>(node).expect("sink is up").got.clone()
}

#[test]
fn a_busy_node_handles_events_in_arrival_order_one_per_core() {
    let mut w = busy_sink_world(1, 3);
    w.run_until(ms(10));
    // All arrive at 0.5 ms; each takes 1 ms of the single core.
    assert_eq!(
        got(&w, NodeId(0)),
        vec![(0, us(500)), (1, us(1_500)), (2, us(2_500))]
    );
}

#[test]
fn two_cores_handle_two_events_at_once() {
    let mut w = busy_sink_world(2, 3);
    w.run_until(ms(10));
    assert_eq!(
        got(&w, NodeId(0)),
        vec![(0, us(500)), (1, us(500)), (2, us(1_500))]
    );
}

#[test]
fn free_nodes_pay_nothing_even_with_a_cpu_model() {
    let mut w = World::new(1, config(cpu(1, 1), 0));
    let s = w.add_node("sink", sink(false));
    w.add_node("burst", burst((0..3).map(|n| (n, s)).collect(), 0));
    w.run_until(ms(10));
    assert_eq!(got(&w, s), vec![(0, us(500)), (1, us(500)), (2, us(500))]);
}

/// Sends one message to `to` at start, and records when answers come back.
struct Pinger {
    to: NodeId,
    answers: Vec<Instant>,
}

impl Node for Pinger {
    fn on_start(&mut self, cx: &mut Cx) {
        cx.send(self.to, msg(1));
    }
    fn on_message(&mut self, cx: &mut Cx, _from: NodeId, _m: Message) {
        self.answers.push(cx.now());
    }
    fn on_timer(&mut self, _cx: &mut Cx, _timer: Timer) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[test]
fn an_answer_leaves_after_the_cpu_time_of_its_request() {
    let mut w = World::new(1, config(cpu(1, 1), 0));
    let echo = w.add_node_with_cost("echo", CostClass::Broker, sink(true));
    let pinger = w.add_node("pinger", move || {
        Box::new(Pinger {
            to: echo,
            answers: Vec::new(),
        }) as Box<dyn Node>
    });
    w.run_until(ms(10));
    // Request lands at 0.5 ms, 1 ms of CPU, the answer leaves at 1.5 ms and lands at 2 ms.
    assert_eq!(w.node::<Pinger>(pinger).unwrap().answers, vec![ms(2)]);
}

#[test]
fn recorded_records_cost_client_cpu_before_the_handlers_messages_leave() {
    let mut cfg = cpu(1, 0);
    cfg.per_record = Duration::from_micros(100);
    let mut w = World::new(1, config(cfg, 0));
    let s = w.add_node("sink", sink(false));
    // 10 records at 100 us each: the message leaves at 1 ms and lands at 1.5 ms.
    w.add_node_with_cost("producer", CostClass::Producer, burst(vec![(0, s)], 10));
    w.run_until(ms(10));
    assert_eq!(got(&w, s), vec![(0, us(1_500))]);
}

#[test]
fn a_gc_pause_delays_handling_to_its_end() {
    let mut cfg = cpu(4, 0);
    cfg.gc = Some(GcModel {
        interval: Duration::from_millis(100),
        pause: Duration::from_millis(10),
    });
    let mut w = World::new(1, config(cfg, 0));
    // Node 0's pauses start at 61.8 ms (+100 ms each): one message lands inside, one after.
    let s = w.add_node_with_cost("sink", CostClass::Broker, sink(false));
    w.add_node("burst", burst(vec![], 0));
    w.run_until(Instant::from_nanos(64_500_000));
    w.add_node("late", burst(vec![(1, s)], 0));
    w.run_until(ms(80));
    w.add_node("later", burst(vec![(2, s)], 0));
    w.run_until(ms(100));
    assert_eq!(
        got(&w, s),
        vec![(1, Instant::from_nanos(71_800_000)), (2, us(80_500))]
    );
}

#[test]
fn a_crash_drops_what_waited_for_the_cpu() {
    let mut w = busy_sink_world(1, 5);
    w.run_until(us(1_000));
    w.crash(NodeId(0));
    w.restart(NodeId(0));
    w.run_until(ms(20));
    // The restarted sink saw nothing: the queued messages died with the process.
    assert!(got(&w, NodeId(0)).is_empty());
}

fn nic_world() -> World {
    // 1 MB/s NICs: a 1000-byte message takes 1 ms on each NIC; no CPU cost.
    let mut c = config(cpu(1, 0), 1_000_000);
    c.link.latency = Duration::from_millis(1);
    World::new(1, c)
}

fn metadata_bytes() -> u64 {
    msg(0).wire_size() as u64
}

#[test]
fn a_nodes_egress_is_shared_by_all_its_links() {
    let mut w = nic_world();
    let b = w.add_node("b", sink(false));
    let c = w.add_node("c", sink(false));
    w.add_node("a", burst(vec![(0, b), (1, c)], 0));
    w.run_until(ms(100));
    let per_message = Duration::from_nanos(metadata_bytes() * 1_000);
    // Both leave one after the other through a's one NIC.
    assert_eq!(got(&w, b), vec![(0, ms(1) + per_message)]);
    assert_eq!(got(&w, c), vec![(1, ms(1) + per_message + per_message)]);
}

#[test]
fn a_nodes_ingress_is_shared_by_all_senders() {
    let mut w = nic_world();
    let b = w.add_node("b", sink(false));
    w.add_node("a", burst(vec![(0, b)], 0));
    w.add_node("c", burst(vec![(1, b)], 0));
    w.run_until(ms(100));
    let per_message = Duration::from_nanos(metadata_bytes() * 1_000);
    assert_eq!(
        got(&w, b),
        vec![
            (0, ms(1) + per_message),
            (1, ms(1) + per_message + per_message)
        ]
    );
}

#[test]
fn without_a_nic_model_links_do_not_share_bandwidth() {
    let mut c = config(cpu(1, 0), 0);
    c.link.latency = Duration::from_millis(1);
    let mut w = World::new(1, c);
    let b = w.add_node("b", sink(false));
    w.add_node("a", burst(vec![(0, b)], 0));
    w.add_node("c", burst(vec![(1, b)], 0));
    w.run_until(ms(100));
    assert_eq!(got(&w, b), vec![(0, ms(1)), (1, ms(1))]);
}

fn produce_request(records: u64) -> Message {
    let recs: Vec<Record> = (0..records)
        .map(|v| Record {
            value: ValueId(v),
            key: None,
            size: 100,
            create_time: Instant::ZERO,
            payload: None,
        })
        .collect();
    Message::ProduceRequest(ProduceRequest {
        correlation_id: 1,
        acks: Acks::Leader,
        timeout: Duration::from_secs(30),
        transactional_id: None,
        batches: vec![(
            TopicPartition::new(TopicId(0), 0),
            RecordBatch::new(recs.into()),
        )],
    })
}

#[test]
fn extra_bytes_per_record_count_on_the_wire_only_for_record_data() {
    let model = CostModel {
        extra_bytes_per_record: 14,
        ..CostModel::default()
    };
    let produce = produce_request(10);
    assert_eq!(model.wire_bytes(&produce), produce.wire_size() + 140);
    assert_eq!(model.wire_bytes(&msg(1)), msg(1).wire_size());
    assert_eq!(
        CostModel::default().wire_bytes(&produce),
        produce.wire_size()
    );
}

#[test]
fn profiles_are_known_by_name_and_build_world_configs() {
    for name in PROFILE_NAMES {
        let p = profile(name).unwrap_or_else(|| panic!("profile {name}"));
        assert_eq!(p.name, name);
        let w = p.world_config();
        assert!(w.cost.cpu.is_some(), "{name} models CPU");
        assert_eq!(
            w.cost.nic_bytes_per_sec,
            ethernet_goodput_bytes_per_sec(p.nic_bits_per_sec)
        );
        assert_eq!(w.disk.bandwidth_bytes_per_sec, p.disk_bytes_per_sec);
        let dirty = w.disk.dirty.expect("profiles throttle dirty pages");
        assert_eq!(dirty, p.dirty_thresholds());
        assert!(dirty.background_bytes < dirty.freerun_bytes());
        assert!(dirty.freerun_bytes() < dirty.limit_bytes);
    }
    assert!(profile("kreps2015").is_none());
    let kreps = profile("kreps2014").unwrap();
    assert_eq!(kreps.cores, 6);
    assert_eq!(kreps.disk_bytes_per_sec, 822_000_000);
    // 1 GbE carries about 117.7 MB/s of TCP payload.
    assert_eq!(ethernet_goodput_bytes_per_sec(1_000_000_000), 117_685_305);
    let cpu = kreps.cpu();
    assert_eq!(cpu.cores(CostClass::Broker), 6);
    let invoke = HistoryEvent::SendInvoke {
        producer: 0,
        value: ValueId(1),
        key: None,
        topic: TopicId(0),
        scheduled: None,
    };
    assert!(cpu.cost(CostClass::Producer, &Work::Record(&invoke)) > Duration::ZERO);
    assert_eq!(
        cpu.cost(CostClass::Broker, &Work::Record(&invoke)),
        Duration::ZERO
    );
    assert_eq!(cpu.cost(CostClass::Free, &Work::Timer), Duration::ZERO);
}
