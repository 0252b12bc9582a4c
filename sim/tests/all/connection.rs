//! The kernel's TCP connection model (issue 12): a partition delays what is on the wire and
//! TCP retransmits it after the heal; a closed connection loses what it carried; a response
//! goes only to the connection its request came on; a dead process refuses connections.

use crate::harness::fixed_latency;
use kafsim_engine::protocol::{Message, MetadataRequest, MetadataResponse};
use kafsim_engine::{Cx, Duration, Instant, Node, NodeId, Timer};
use kafsim_sim::world::World;
use std::any::Any;

const TIMER_SEND: u16 = 1;
const TIMER_CLOSE: u16 = 2;
const TIMER_ANSWER: u16 = 3;

fn request(n: u64) -> Message {
    Message::MetadataRequest(MetadataRequest {
        correlation_id: n,
        topics: vec![],
    })
}

/// A client: sends request `i` (correlation id `ids[i]`) at `send_at[i]`, optionally closes
/// its connection at `close_at`, and records what comes back.
#[derive(Default, Clone)]
struct Client {
    to: Option<NodeId>,
    sends: Vec<(Instant, u64)>,
    close_at: Option<Instant>,
    responses: Vec<(u64, Instant)>,
    resets: Vec<Instant>,
    refusals: Vec<Instant>,
}

impl Node for Client {
    fn on_start(&mut self, cx: &mut Cx) {
        for (i, (at, _)) in self.sends.iter().enumerate() {
            cx.set_timer(*at, Timer::new(TIMER_SEND, i as u64));
        }
        if let Some(at) = self.close_at {
            cx.set_timer(at, Timer::new(TIMER_CLOSE, 0));
        }
    }
    fn on_message(&mut self, cx: &mut Cx, _from: NodeId, msg: Message) {
        match msg {
            Message::MetadataResponse(r) => self.responses.push((r.correlation_id, cx.now())),
            Message::ConnectionReset => self.resets.push(cx.now()),
            Message::ConnectionRefused => self.refusals.push(cx.now()),
            other => panic!("client got {other:?}"),
        }
    }
    fn on_timer(&mut self, cx: &mut Cx, timer: Timer) {
        let to = self.to.expect("a server");
        match timer.kind {
            TIMER_SEND => cx.send(to, request(self.sends[timer.key as usize].1)),
            TIMER_CLOSE => cx.close_connection(to),
            _ => unreachable!(),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A server: records each request (with the kernel's wire id in place of the client's
/// correlation id) and answers it `delay` later.
#[derive(Default)]
struct Server {
    delay: Duration,
    requests: Vec<(NodeId, u64, Instant)>,
    resets: Vec<Instant>,
}

impl Node for Server {
    fn on_start(&mut self, _cx: &mut Cx) {}
    fn on_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        match msg {
            Message::MetadataRequest(r) => {
                self.requests.push((from, r.correlation_id, cx.now()));
                let key = ((from.0 as u64) << 32) | r.correlation_id;
                cx.set_timer_after(self.delay, Timer::new(TIMER_ANSWER, key));
            }
            Message::ConnectionReset => self.resets.push(cx.now()),
            other => panic!("server got {other:?}"),
        }
    }
    fn on_timer(&mut self, cx: &mut Cx, timer: Timer) {
        let to = NodeId((timer.key >> 32) as u32);
        let response = MetadataResponse {
            correlation_id: timer.key & 0xffff_ffff,
            brokers: vec![],
            controller: None,
            topics: vec![],
            partitions: vec![],
        };
        cx.send(to, Message::MetadataResponse(response));
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

/// A server at node 0 and a client at node 1 with `client`'s plan.
fn pair(delay: Duration, client: Client) -> (World, NodeId, NodeId) {
    let mut w = World::new(1, fixed_latency(Duration::from_millis(1)));
    let server = w.add_node("server", move || {
        Box::new(Server {
            delay,
            ..Server::default()
        })
    });
    let client = Client {
        to: Some(server),
        ..client
    };
    let c = w.add_node("client", move || Box::new(client.clone()));
    (w, server, c)
}

/// The pair, with the link cut from the start to 1 s (the world is at 1 s, still cut).
fn partitioned_for_a_second(client: Client) -> (World, NodeId, NodeId) {
    let (mut w, s, c) = pair(Duration::ZERO, client);
    w.net().partition(&[s], &[c]);
    w.run_until(ms(1_000));
    (w, s, c)
}

fn client(w: &World, id: NodeId) -> &Client {
    w.node::<Client>(id).unwrap()
}

fn server(w: &World, id: NodeId) -> &Server {
    w.node::<Server>(id).unwrap()
}

#[test]
fn a_partition_delays_requests_until_tcp_retransmits_them_after_the_heal() {
    let sends = (0..10).map(|i| (ms(100 + 10 * i), i)).collect();
    let (mut w, s, c) = partitioned_for_a_second(Client {
        sends,
        ..Client::default()
    });
    assert!(
        server(&w, s).requests.is_empty(),
        "nothing crosses a partition"
    );
    w.net().heal();
    w.run_until(ms(5_000));
    assert_eq!(server(&w, s).requests.len(), 10, "none lost");
    // The first request got stuck at 101 ms; retransmissions at +200, +600, +1400 ms: the
    // first after the heal (1 s) is at 1501 ms, and it carries everything held.
    assert!(server(&w, s).requests.iter().all(|r| r.2 == ms(1_501)));
    let answered: Vec<u64> = client(&w, c).responses.iter().map(|r| r.0).collect();
    assert_eq!(
        answered,
        (0..10).collect::<Vec<_>>(),
        "answered in order, with the client's ids"
    );
    assert_eq!(w.stats().messages_delayed, 10);
}

#[test]
fn messages_sent_after_the_heal_queue_behind_the_held_ones() {
    let sends = vec![(ms(100), 1), (ms(1_100), 2)];
    let (mut w, s, c) = partitioned_for_a_second(Client {
        sends,
        ..Client::default()
    });
    w.net().heal();
    w.run_until(ms(3_000));
    let read: Vec<Instant> = server(&w, s).requests.iter().map(|r| r.2).collect();
    // Request 2 reaches the end of the link at 1101 ms, while request 1 still waits for the
    // retransmission at 1501 ms: a TCP stream does not let it overtake.
    assert_eq!(read, vec![ms(1_501), ms(1_501)]);
    let answered: Vec<u64> = client(&w, c).responses.iter().map(|r| r.0).collect();
    assert_eq!(answered, vec![1, 2]);
}

#[test]
fn closing_a_connection_loses_what_it_held_and_the_peer_learns_after_the_heal() {
    let (mut w, s, c) = partitioned_for_a_second(Client {
        sends: vec![(ms(100), 1), (ms(200), 2)],
        close_at: Some(ms(500)),
        ..Client::default()
    });
    w.net().heal();
    w.run_until(ms(5_000));
    assert!(
        server(&w, s).requests.is_empty(),
        "a request given up with its connection is never delivered"
    );
    // The close got stuck at 500 ms; its retransmissions at 700 ms and 1100 ms: the second
    // gets through.
    assert_eq!(server(&w, s).resets, vec![ms(1_100)]);
    assert!(
        client(&w, c).resets.is_empty(),
        "the closing end gets no notice"
    );
}

#[test]
fn a_response_to_a_request_of_an_ended_connection_is_lost() {
    // The client asks (id 7), gives up and closes at 50 ms, then asks again with the same
    // correlation id on a new connection (as a restarted client would): only the second
    // request's answer may reach it.
    let (mut w, s, c) = pair(
        Duration::from_millis(100),
        Client {
            sends: vec![(ms(0), 7), (ms(60), 7)],
            close_at: Some(ms(50)),
            ..Client::default()
        },
    );
    w.run_until(ms(1_000));
    assert_eq!(server(&w, s).requests.len(), 2, "both requests were read");
    assert_eq!(
        client(&w, c).responses,
        vec![(7, ms(162))],
        "the first answer had no socket to go to"
    );
    assert_eq!(w.stats().responses_lost, 1);
}

#[test]
fn a_crashed_process_refuses_connections_and_a_powered_off_host_stays_silent() {
    for power_loss in [false, true] {
        let (mut w, s, c) = pair(
            Duration::ZERO,
            Client {
                sends: vec![(ms(100), 1)],
                ..Client::default()
            },
        );
        w.run_until(ms(50));
        if power_loss {
            w.power_loss(s, false);
        } else {
            w.crash(s);
        }
        w.run_until(ms(1_000));
        let got = client(&w, c);
        assert!(got.resets.is_empty(), "{:?}", got.resets);
        if power_loss {
            assert!(
                got.refusals.is_empty(),
                "nothing answers for a host that is off"
            );
        } else {
            // The request reaches the host at 101 ms; the refusal is back at 102 ms.
            assert_eq!(got.refusals, vec![ms(102)], "connection refused");
        }
        // Back up: the request still unanswered since the host went dark is retransmitted,
        // and the fresh kernel resets it one retransmission timeout after the restart
        // (latency 1 ms + TCP_RTO_MIN 200 ms), so the client does not wait out its timeout.
        w.restart(s);
        w.run_until(ms(2_000));
        let got = client(&w, c);
        let expected = if power_loss { vec![ms(1_201)] } else { vec![] };
        assert_eq!(got.resets, expected);
    }
}

#[test]
fn a_crash_behind_a_partition_is_learned_when_the_partition_heals() {
    let (mut w, s, c) = pair(
        Duration::ZERO,
        Client {
            sends: vec![(ms(10), 1)],
            ..Client::default()
        },
    );
    w.run_until(ms(100));
    assert_eq!(server(&w, s).requests.len(), 1, "connected");
    w.net().partition(&[s], &[c]);
    w.crash(s);
    w.run_until(ms(1_000));
    assert!(client(&w, c).resets.is_empty());
    w.net().heal();
    w.run_until(ms(5_000));
    // The reset got stuck at 100 ms; retransmissions at 300, 700, 1500 ms.
    assert_eq!(client(&w, c).resets, vec![ms(1_500)]);
}

/// A closed socket's data outlives the close (Linux retransmits an orphaned socket's data,
/// `tcp_orphan_retries`, about 100 s): a request the client gave up on is still read by the
/// server when a partition heals in time, and answered into the void; healed too late, the
/// kernel has given up and the server never sees it.
#[test]
fn a_closed_connections_request_arrives_after_a_heal_within_the_orphan_retries() {
    for (heal_at, delivered) in [(40_000, true), (60_000, false)] {
        let (mut w, s, c) = pair(
            Duration::ZERO,
            Client {
                // Request 1 establishes the connection; request 2 gets stuck.
                sends: vec![(ms(10), 1), (ms(200), 2)],
                close_at: Some(ms(30_200)),
                ..Client::default()
            },
        );
        w.run_until(ms(100));
        w.net().partition(&[s], &[c]);
        w.run_until(ms(heal_at));
        w.net().heal();
        w.run_until(ms(heal_at + 200_000));
        let read: Vec<u64> = server(&w, s).requests.iter().map(|r| r.1).collect();
        assert_eq!(
            read.len(),
            if delivered { 2 } else { 1 },
            "heal at {heal_at}"
        );
        assert_eq!(
            client(&w, c).responses.len(),
            1,
            "only the first answer reaches the client"
        );
        if delivered {
            // Stuck since 200 ms: retransmissions at +0.2, +0.6, ... +25.4 s, +51 s: the
            // first after the heal at 40 s is at 51.2 s.
            assert_eq!(server(&w, s).requests[1].2, ms(51_201));
            assert_eq!(w.stats().responses_lost, 1);
        }
    }
}

/// Each connection retransmits on its own timer: after a long partition, a request sent on a
/// new connection (whose backoff is still short) reaches the server before the one its
/// client gave up on, which arrives later all the same: the server sees them out of order.
#[test]
fn a_retry_on_a_new_connection_can_overtake_the_closed_ones_request() {
    let (mut w, s, c) = pair(
        Duration::ZERO,
        Client {
            sends: vec![(ms(10), 1), (ms(200), 2), (ms(40_000), 3)],
            close_at: Some(ms(30_200)),
            ..Client::default()
        },
    );
    w.run_until(ms(100));
    w.net().partition(&[s], &[c]);
    w.run_until(ms(45_000));
    w.net().heal();
    w.run_until(ms(200_000));
    // The retry, stuck since 40 s, is retransmitted at 46.2 s; the original, stuck since
    // 0.2 s and backed off, at 51.2 s. (The server sees wire ids, numbered in read order.)
    let read: Vec<Instant> = server(&w, s).requests.iter().map(|r| r.2).collect();
    assert_eq!(read, vec![ms(11), ms(46_201), ms(51_201)]);
    // Only a request of the open connection is answered: the one read at 46.2 s was the
    // retry, and the original's answer (read last) was lost.
    assert_eq!(
        client(&w, c).responses,
        vec![(1, ms(12)), (3, ms(46_202))],
        "the retry first, the original after it"
    );
    assert_eq!(w.stats().responses_lost, 1);
}
