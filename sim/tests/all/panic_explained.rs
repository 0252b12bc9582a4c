//! A seed whose engine panics explains itself: the `panic` violation names the simulated
//! time, the node, the event it was handling, the panic's message and location, the faults
//! in force and the fault log up to then; the run's trace ends with the event that panicked.
//!
//! The panics are driven through the runner as any run takes them (`RunOptions::extend`
//! adds a node to the built world): a real one, a broker handed a message no one sends a
//! broker (the broker's `unreachable!`), and a test node that panics on its own timer.

use kafsim_engine::protocol::{ControllerSyncAck, Message};
use kafsim_engine::{Cx, Duration, Instant, Node, NodeId, Timer};
use kafsim_sim::campaign::run_seeds;
use kafsim_sim::runner::{prepare, run_seed, Prepared, RunOptions, RunOutput};
use kafsim_sim::scenario;
use kafsim_sim::trace::{TraceKind, TraceLevel};
use kafsim_sim::violation::ViolationKind;
use kafsim_sim::world::World;
use std::any::Any;

/// Three brokers, a producer, a group; broker 1 crashed at 2 s for 20 s and broker 2 slowed
/// at 1 s: both in force when the test nodes act at 3 s.
const SCENARIO: &str = r#"
name = "panic-explained"
description = "a run the tests make panic"
duration = "10s"
seeds = 1

[cluster]
brokers = 3

[[topics]]
name = "orders"
partitions = 2
replication_factor = 3

[[producers]]
client = "java"
topic = "orders"
rate = 100

[[consumer_groups]]
group = "billing"
members = 1
client = "java"
topics = ["orders"]

[[faults.schedule]]
at = "1s"
action = "slow-disk"
target = "broker:2"
factor = 20
duration = "30s"

[[faults.schedule]]
at = "2s"
action = "crash"
target = "broker:1"
duration = "20s"
"#;

/// When the test nodes act.
const AT: Instant = Instant::from_millis(3_000);

/// Sends `to` one message at [`AT`], or, with `to` None, panics on its own timer then.
struct Rogue {
    to: Option<NodeId>,
}

impl Node for Rogue {
    fn on_start(&mut self, cx: &mut Cx) {
        cx.set_timer(AT, Timer::new(9, 42));
    }
    fn on_message(&mut self, _cx: &mut Cx, _from: NodeId, _msg: Message) {}
    fn on_timer(&mut self, cx: &mut Cx, _timer: Timer) {
        match self.to {
            // Only a controller's peers send this; a broker never gets it.
            Some(to) => cx.send(
                to,
                Message::ControllerSyncAck(ControllerSyncAck {
                    controller_epoch: 0,
                    version: 1,
                }),
            ),
            None => panic!("the rogue's timer went off"),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn broker_0(w: &World) -> NodeId {
    w.node_ids()
        .find(|n| w.name(*n) == "broker-0")
        .expect("a broker-0")
}

/// Adds a node that sends broker-0 a message no one sends a broker.
fn message_to_broker(w: &mut World) {
    let to = broker_0(w);
    w.add_node("rogue", move || Box::new(Rogue { to: Some(to) }));
}

/// Adds a node that panics on its timer.
fn panicking_timer(w: &mut World) {
    w.add_node("rogue", || Box::new(Rogue { to: None }));
}

fn prepared() -> Prepared {
    let s = scenario::parse("panic.toml", SCENARIO).unwrap_or_else(|e| panic!("{e}"));
    prepare(s).unwrap_or_else(|e| panic!("{e}"))
}

fn run(extend: Option<fn(&mut World)>) -> RunOutput {
    let opts = RunOptions {
        trace: TraceLevel::Events,
        keep_history: true,
        extend,
        ..RunOptions::default()
    };
    run_seed(&prepared(), 1, &opts)
}

#[test]
fn a_broker_panic_names_the_time_the_node_the_message_its_sender_and_the_faults() {
    let out = run(Some(message_to_broker));
    let v = &out.result.violations;
    assert_eq!(v.len(), 1, "{v:#?}");
    let panic = &v[0];
    assert_eq!(panic.kind, ViolationKind::Panic);
    // The message travels the link's latency after 3 s.
    assert!(
        panic.at > AT && panic.at < AT + Duration::from_millis(10),
        "{}",
        panic.at
    );
    assert_eq!(panic.node.as_deref(), Some("broker-0"));
    assert_eq!(
        panic.event.as_deref(),
        Some("a ControllerSyncAck from rogue")
    );
    let d = &panic.detail;
    let first = d.lines().next().unwrap();
    assert!(
        first.contains("ControllerSyncAck is never sent to a broker")
            && first.contains("engine/src/broker/mod.rs:"),
        "{d}"
    );
    assert!(
        d.contains(&format!(
            "\n  at {} in broker-0, handling a ControllerSyncAck from rogue",
            panic.at
        )),
        "{d}"
    );
    assert!(
        d.contains("faults in force:\n    slow-disk broker-2 x20.0 since 1000.000ms (slow-disk, its own end due at 31000.000ms)\n    crash broker-1 since 2000.000ms (crash, its own end due at 22000.000ms)"),
        "{d}"
    );
    assert!(
        d.contains("fault log up to then:\n    1000.000ms slow-disk broker-2 x20.0 (undone after 30s)\n    2000.000ms crash broker-1 (undone after 20s)"),
        "{d}"
    );
    // The fault log stops at the panic; the run did not go on to heal.
    let last = out.fault_log.last().unwrap();
    assert!(
        last.contains("the engine panicked: the run stopped here"),
        "{last}"
    );
    assert!(
        !out.fault_log.iter().any(|l| l.contains("heal")),
        "{:?}",
        out.fault_log
    );
    assert!(!out.drained);
}

/// `replay --trace`: the trace goes up to and including the event that panicked, and the
/// run up to there is the same every time (trace hash, trace, detail).
#[test]
fn the_trace_ends_with_the_event_that_panicked_and_is_deterministic() {
    let out = run(Some(message_to_broker));
    let last = out.trace_events.last().expect("a trace");
    assert_eq!(out.names.node(last.node), "broker-0");
    match &last.kind {
        TraceKind::Receive(m) => {
            assert_eq!(m.request, "ControllerSyncAck");
            assert_eq!(out.names.node(m.peer), "rogue");
        }
        other => panic!("the last event is {other:?}"),
    }
    assert_eq!(last.at, out.result.violations[0].at);
    assert!(out.trace_events.len() > 100, "the run up to the panic");
    assert!(out.history.as_ref().unwrap().entries().count() > 0);
    let again = run(Some(message_to_broker));
    assert_eq!(again.result.trace_hash, out.result.trace_hash);
    assert_ne!(out.result.trace_hash, 0);
    assert_eq!(again.trace_events, out.trace_events);
    assert_eq!(again.result.violations, out.result.violations);
}

#[test]
fn a_timer_panic_names_the_timer() {
    let out = run(Some(panicking_timer));
    let panic = &out.result.violations[0];
    assert_eq!(panic.kind, ViolationKind::Panic);
    assert_eq!(panic.at, AT);
    assert_eq!(panic.node.as_deref(), Some("rogue"));
    assert_eq!(panic.event.as_deref(), Some("its timer 9:42"));
    assert!(
        panic
            .detail
            .starts_with("the rogue's timer went off at sim/tests/all/panic_explained.rs:"),
        "{}",
        panic.detail
    );
}

/// The other way: the same run without the rogue has no panic, and heals as usual.
#[test]
fn without_the_rogue_nothing_panics() {
    let out = run(None);
    assert!(
        !out.result
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::Panic),
        "{:#?}",
        out.result.violations
    );
    assert!(!out.fault_log.iter().any(|l| l.contains("panicked")));
    assert!(
        out.fault_log
            .last()
            .unwrap()
            .contains("heal: all faults lifted"),
        "{:?}",
        out.fault_log
    );
}

/// A campaign reports the explained panic as the seed's result (the runner caught it inside
/// the campaign's own catch), with the run's counts up to the panic.
#[test]
fn a_campaign_keeps_the_explanation() {
    let p = prepared();
    let opts = RunOptions {
        extend: Some(message_to_broker),
        ..RunOptions::default()
    };
    let results = run_seeds(&[1, 2], 2, |seed| run_seed(&p, seed, &opts).result, |_| {});
    for r in &results {
        let panic = &r.violations[0];
        assert_eq!(panic.node.as_deref(), Some("broker-0"), "{panic:?}");
        assert!(
            panic.detail.contains("faults in force:"),
            "{}",
            panic.detail
        );
        assert!(r.stats.events > 0);
    }
}
