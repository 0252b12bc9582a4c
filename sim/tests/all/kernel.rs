//! Kernel properties (issue 2): FIFO links, partitions, disk durability across crash and
//! power loss, paused nodes, and trace-hash determinism.

use kafsim_engine::protocol::{ControllerSyncAck, Message};
use kafsim_engine::{
    Cx, DiskData, DiskDone, DiskEntry, Duration, FileId, Instant, Node, NodeId, Timer,
};
use kafsim_sim::disk::DiskConfig;
use kafsim_sim::network::LinkConfig;
use kafsim_sim::world::{World, WorldConfig};
use proptest::prelude::*;
use std::any::Any;

/// A numbered message that is neither request nor response, so the kernel hands it over as
/// sent (it gives requests wire ids of its own, `connection.rs`).
fn msg(n: u64) -> Message {
    Message::ControllerSyncAck(ControllerSyncAck {
        controller_epoch: 0,
        version: n,
    })
}

/// Sends `count` numbered messages to `to`, one per `gap`, with sizes cycling through `sizes`.
struct Sender {
    to: NodeId,
    count: u64,
    gap: Duration,
    sent: u64,
}

impl Node for Sender {
    fn on_start(&mut self, cx: &mut Cx) {
        cx.set_timer_after(Duration::ZERO, Timer::new(1, 0));
    }
    fn on_message(&mut self, _cx: &mut Cx, _from: NodeId, _msg: Message) {}
    fn on_timer(&mut self, cx: &mut Cx, _timer: Timer) {
        if self.sent < self.count {
            cx.send(self.to, msg(self.sent));
            self.sent += 1;
            cx.set_timer_after(self.gap, Timer::new(1, 0));
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Records what it receives and when its timers fire.
#[derive(Default)]
struct Recorder {
    received: Vec<(NodeId, u64, Instant)>,
    resets: u32,
    ticks: Vec<Instant>,
    tick_every: Option<Duration>,
}

impl Node for Recorder {
    fn on_start(&mut self, cx: &mut Cx) {
        if let Some(d) = self.tick_every {
            cx.set_timer_after(d, Timer::new(2, 0));
        }
    }
    fn on_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        match msg {
            Message::ControllerSyncAck(m) => self.received.push((from, m.version, cx.now())),
            Message::ConnectionReset => self.resets += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    fn on_timer(&mut self, cx: &mut Cx, _timer: Timer) {
        self.ticks.push(cx.now());
        if let Some(d) = self.tick_every {
            cx.set_timer_after(d, Timer::new(2, 0));
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn sender(to: NodeId, count: u64, gap: Duration) -> impl FnMut() -> Box<dyn Node> {
    move || {
        Box::new(Sender {
            to,
            count,
            gap,
            sent: 0,
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn links_are_fifo_under_random_latency_and_bandwidth(
        seed in any::<u64>(),
        latency_us in 1u64..5_000,
        jitter_us in 0u64..10_000,
        bandwidth in prop_oneof![Just(0u64), 10_000u64..10_000_000],
        gap_us in 0u64..2_000,
    ) {
        let config = WorldConfig {
            link: LinkConfig {
                latency: Duration::from_micros(latency_us),
                jitter: Duration::from_micros(jitter_us),
                bandwidth_bytes_per_sec: bandwidth,
                capacity_bytes: u64::MAX,
            },
            ..WorldConfig::default()
        };
        let mut w = World::new(seed, config);
        let rx = w.add_node("rx", || Box::new(Recorder::default()));
        let a = w.add_node("a", sender(rx, 50, Duration::from_micros(gap_us)));
        let b = w.add_node("b", sender(rx, 50, Duration::from_micros(gap_us / 2 + 1)));
        w.run_until(Instant::from_millis(60_000));
        let r = w.node::<Recorder>(rx).unwrap();
        for from in [a, b] {
            let seq: Vec<u64> = r.received.iter().filter(|m| m.0 == from).map(|m| m.1).collect();
            prop_assert_eq!(seq, (0..50).collect::<Vec<u64>>());
        }
    }
}

#[test]
fn nothing_crosses_a_partition_and_one_way_blocks_one_direction() {
    let mut w = World::new(1, WorldConfig::default());
    let x = w.add_node("x", || Box::new(Recorder::default()));
    let y = w.add_node("y", || Box::new(Recorder::default()));
    let to_x = w.add_node("to-x", sender(x, 100, Duration::from_millis(10)));
    let to_y = w.add_node("to-y", sender(y, 100, Duration::from_millis(10)));
    // Symmetric partition of to-x from x for the first 500 ms.
    w.net().partition(&[to_x], &[x]);
    // One-way: to-y cannot reach y, but y could reach to-y.
    w.net().partition_one_way(&[to_y], &[y]);
    assert!(w.network().is_blocked(to_y, y));
    assert!(!w.network().is_blocked(y, to_y));
    w.run_until(Instant::from_millis(500));
    assert!(w.node::<Recorder>(x).unwrap().received.is_empty());
    assert!(w.node::<Recorder>(y).unwrap().received.is_empty());
    w.net().heal();
    w.run_until(Instant::from_millis(2_000));
    let got = &w.node::<Recorder>(x).unwrap().received;
    assert!(!got.is_empty(), "after heal messages flow again");
    assert!(got.iter().all(|m| m.2 >= Instant::from_millis(500)));
}

#[test]
fn crashed_process_resets_peers_and_drops_in_flight() {
    let mut w = World::new(3, WorldConfig::default());
    let rx = w.add_node("rx", || Box::new(Recorder::default()));
    let tx = w.add_node("tx", sender(rx, 1_000, Duration::from_millis(1)));
    w.run_until(Instant::from_millis(100));
    w.crash(tx);
    w.run_until(Instant::from_millis(200));
    let r = w.node::<Recorder>(rx).unwrap();
    assert_eq!(
        r.resets, 1,
        "the OS resets the connection of a crashed process"
    );
    assert!(r.received.iter().all(|m| m.2 <= Instant::from_millis(101)));
    // A restarted sender starts over from its factory state.
    w.restart(tx);
    w.run_until(Instant::from_millis(300));
    let r = w.node::<Recorder>(rx).unwrap();
    assert_eq!(r.received.last().map(|m| m.1), Some(99));
}

#[test]
fn paused_node_fires_no_timer_and_catches_up_on_resume() {
    let mut w = World::new(5, WorldConfig::default());
    let n = w.add_node("n", || {
        Box::new(Recorder {
            tick_every: Some(Duration::from_millis(100)),
            ..Recorder::default()
        })
    });
    w.run_until(Instant::from_millis(1_000));
    w.pause(n);
    w.run_until(Instant::from_millis(3_000));
    w.resume(n);
    w.run_until(Instant::from_millis(3_500));
    let ticks = &w.node::<Recorder>(n).unwrap().ticks;
    assert!(ticks
        .iter()
        .all(|t| *t <= Instant::from_millis(1_000) || *t >= Instant::from_millis(3_000)));
    assert!(
        ticks.iter().any(|t| *t == Instant::from_millis(3_000)),
        "the overdue timer fires on resume"
    );
    assert!(ticks.iter().any(|t| *t > Instant::from_millis(3_000)));
}

/// Appends `total` entries, fsyncing after the first `synced`.
struct Writer {
    total: u64,
    synced: u64,
    recovered: usize,
}

const LOG: FileId = FileId::Named("log");

impl Node for Writer {
    fn on_start(&mut self, cx: &mut Cx) {
        self.recovered = cx.disk().read(LOG).iter().take_while(|e| !e.torn).count();
        if self.recovered == 0 {
            for i in 0..self.synced {
                cx.disk().append(
                    LOG,
                    DiskEntry::new(DiskData::Epochs(vec![(i as u32, i)]), 100),
                );
            }
            cx.disk_fsync(LOG, 7);
        }
    }
    fn on_message(&mut self, _cx: &mut Cx, _from: NodeId, _msg: Message) {}
    fn on_timer(&mut self, _cx: &mut Cx, _timer: Timer) {}
    fn on_disk(&mut self, cx: &mut Cx, done: DiskDone) {
        assert_eq!(done.token, 7);
        for i in self.synced..self.total {
            cx.disk().append(
                LOG,
                DiskEntry::new(DiskData::Epochs(vec![(i as u32, i)]), 100),
            );
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[test]
fn process_crash_keeps_page_cache_and_power_loss_drops_the_unflushed_suffix() {
    let config = WorldConfig {
        disk: DiskConfig {
            writeback: None,
            ..DiskConfig::default()
        },
        ..WorldConfig::default()
    };
    let mut w = World::new(9, config);
    let n = w.add_node("writer", || {
        Box::new(Writer {
            total: 5,
            synced: 3,
            recovered: 0,
        })
    });
    w.run_until(Instant::from_millis(100));
    w.crash(n);
    w.restart(n);
    w.run_until(Instant::from_millis(200));
    assert_eq!(
        w.node::<Writer>(n).unwrap().recovered,
        5,
        "a process crash loses nothing"
    );
    w.power_loss(n, false);
    w.restart(n);
    w.run_until(Instant::from_millis(300));
    assert_eq!(
        w.node::<Writer>(n).unwrap().recovered,
        3,
        "power loss keeps exactly the fsynced prefix"
    );
}

fn busy_world(seed: u64) -> u64 {
    let mut w = World::new(seed, WorldConfig::default());
    let rx = w.add_node("rx", || Box::new(Recorder::default()));
    for i in 0..4 {
        w.add_node(
            format!("tx{i}"),
            sender(rx, 200, Duration::from_micros(300)),
        );
    }
    w.run_until(Instant::from_millis(1_000));
    w.trace_hash()
}

#[test]
fn same_seed_same_trace_hash_and_different_seeds_differ() {
    assert_eq!(busy_world(42), busy_world(42));
    assert_ne!(busy_world(42), busy_world(43));
}

#[test]
#[should_panic(expected = "in the past")]
fn a_timer_in_the_past_is_an_engine_bug() {
    struct Bad;
    impl Node for Bad {
        fn on_start(&mut self, cx: &mut Cx) {
            let later = cx.now() + Duration::from_millis(5);
            cx.set_timer(later, Timer::new(0, 0));
        }
        fn on_message(&mut self, _: &mut Cx, _: NodeId, _: Message) {}
        fn on_timer(&mut self, cx: &mut Cx, _: Timer) {
            cx.set_timer(Instant::ZERO, Timer::new(0, 0));
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }
    let mut w = World::new(1, WorldConfig::default());
    w.add_node("bad", || Box::new(Bad));
    w.run_until(Instant::from_millis(10));
}

#[test]
#[should_panic(expected = "unknown node")]
fn a_message_to_an_unknown_node_is_an_engine_bug() {
    let mut w = World::new(1, WorldConfig::default());
    w.add_node("tx", sender(NodeId(99), 1, Duration::ZERO));
    w.run_until(Instant::from_millis(10));
}

#[test]
fn power_loss_is_silent_until_the_host_restarts_and_resets_its_old_connections() {
    let mut w = World::new(4, WorldConfig::default());
    let rx = w.add_node("rx", || Box::new(Recorder::default()));
    let tx = w.add_node("tx", sender(rx, 1_000, Duration::from_millis(1)));
    w.run_until(Instant::from_millis(100));
    w.power_loss(tx, false);
    w.run_until(Instant::from_millis(5_000));
    assert_eq!(
        w.node::<Recorder>(rx).unwrap().resets,
        0,
        "a powered-off host sends no reset"
    );
    w.restart(tx);
    w.run_until(Instant::from_millis(5_100));
    assert_eq!(
        w.node::<Recorder>(rx).unwrap().resets,
        0,
        "not before a retransmission timeout"
    );
    w.run_until(Instant::from_millis(5_300));
    assert_eq!(
        w.node::<Recorder>(rx).unwrap().resets,
        1,
        "the rebooted host resets the old connection"
    );
}
