//! The broker's socket server in the kernel (`sim/src/socket.rs`): a broker reads one produce
//! request per client connection at a time, the next only once it has answered the one before.

use crate::harness::fixed_latency;
use kafsim_engine::protocol::{Acks, Message, ProduceRequest, ProduceResponse};
use kafsim_engine::{Cx, Duration, Instant, Node, NodeId, Timer};
use kafsim_sim::cost::CostClass;
use kafsim_sim::world::World;
use std::any::Any;

/// Answers every produce request 10 ms after it reads it (a produce waiting for followers)
/// and notes when it read each one, by the id it sees (the kernel hands a server its own wire
/// id for an answered request, `connection.rs`, and restores the client's on the answer).
#[derive(Default)]
struct SlowBroker {
    read: Vec<(u64, Instant)>,
    read_acks: Vec<Acks>,
}

impl Node for SlowBroker {
    fn on_start(&mut self, _cx: &mut Cx) {}
    fn on_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        if let Message::ProduceRequest(r) = msg {
            self.read.push((r.correlation_id, cx.now()));
            self.read_acks.push(r.acks);
            if r.acks != Acks::None {
                let key = ((from.0 as u64) << 32) | r.correlation_id;
                cx.set_timer_after(Duration::from_millis(10), Timer::new(1, key));
            }
        }
    }
    fn on_timer(&mut self, cx: &mut Cx, timer: Timer) {
        let client = NodeId((timer.key >> 32) as u32);
        cx.send(
            client,
            Message::ProduceResponse(ProduceResponse {
                correlation_id: timer.key & 0xffff_ffff,
                partitions: Vec::new(),
            }),
        );
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Pipelines its requests: sends them all at start.
struct Client {
    broker: NodeId,
    requests: Vec<(u64, Acks)>,
    answered: Vec<(u64, Instant)>,
}

impl Node for Client {
    fn on_start(&mut self, cx: &mut Cx) {
        for &(correlation_id, acks) in &self.requests {
            cx.send(
                self.broker,
                Message::ProduceRequest(ProduceRequest {
                    correlation_id,
                    acks,
                    timeout: Duration::from_secs(30),
                    transactional_id: None,
                    batches: Vec::new(),
                }),
            );
        }
    }
    fn on_message(&mut self, cx: &mut Cx, _from: NodeId, msg: Message) {
        if let Message::ProduceResponse(r) = msg {
            self.answered.push((r.correlation_id, cx.now()));
        }
    }
    fn on_timer(&mut self, _cx: &mut Cx, _timer: Timer) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn world(class: CostClass, requests: Vec<(u64, Acks)>) -> (World, NodeId, NodeId) {
    let mut w = World::new(1, fixed_latency(Duration::from_millis(1)));
    let b = w.add_node_with_cost("broker", class, || Box::new(SlowBroker::default()));
    let c = w.add_node("client", move || {
        Box::new(Client {
            broker: b,
            requests: requests.clone(),
            answered: Vec::new(),
        })
    });
    (w, b, c)
}

fn read_at(w: &World, b: NodeId) -> Vec<(u64, u64)> {
    w.node::<SlowBroker>(b)
        .unwrap()
        .read
        .iter()
        .map(|(id, t)| (*id, t.as_nanos() / 1_000_000))
        .collect()
}

const ALL3: [(u64, Acks); 3] = [(1, Acks::All), (2, Acks::All), (3, Acks::Leader)];

#[test]
fn a_broker_reads_the_next_request_only_after_answering() {
    let (mut w, b, c) = world(CostClass::Broker, ALL3.to_vec());
    w.run_until(Instant::from_millis(100));
    // Arrive together at 1 ms; read at 1, 11 and 21 ms (each answer unmutes the next).
    assert_eq!(read_at(&w, b), vec![(1, 1), (2, 11), (3, 21)]);
    let answered: Vec<u64> = w
        .node::<Client>(c)
        .unwrap()
        .answered
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(answered, vec![1, 2, 3], "answers in request order");
}

#[test]
fn a_node_not_run_as_a_broker_reads_everything_at_once() {
    let (mut w, b, _) = world(CostClass::Free, ALL3.to_vec());
    w.run_until(Instant::from_millis(100));
    assert_eq!(read_at(&w, b), vec![(1, 1), (2, 1), (3, 1)]);
}

#[test]
fn acks_zero_requests_do_not_mute() {
    let (mut w, b, _) = world(
        CostClass::Broker,
        vec![
            (1, Acks::None),
            (2, Acks::None),
            (3, Acks::All),
            (4, Acks::All),
        ],
    );
    w.run_until(Instant::from_millis(100));
    let read_ms: Vec<u64> = read_at(&w, b).iter().map(|r| r.1).collect();
    assert_eq!(read_ms, vec![1, 1, 1, 11]);
    let acks = &w.node::<SlowBroker>(b).unwrap().read_acks;
    assert_eq!(acks, &vec![Acks::None, Acks::None, Acks::All, Acks::All]);
}

#[test]
fn a_crashed_client_takes_its_unread_requests_with_it() {
    let (mut w, b, c) = world(CostClass::Broker, ALL3.to_vec());
    w.run_until(Instant::from_millis(5));
    w.crash(c);
    w.run_until(Instant::from_millis(100));
    assert_eq!(
        read_at(&w, b),
        vec![(1, 1)],
        "requests 2 and 3 died with the connection"
    );
}
