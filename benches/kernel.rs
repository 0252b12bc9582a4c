//! Kernel speed: message deliveries per wall second.
//!
//! - `ping-pong`: two nodes bounce one message; measures the per-event cost of the scheduler,
//!   the network model and the handler call.
//! - `all-to-all-10`: ten nodes each send to every other node on a timer, with bandwidth limits
//!   on (serialisation and queueing are modelled), so the queue holds many events.
//!
//! `cargo bench --bench kernel` prints time per iteration; the throughput line gives
//! deliveries (elements) per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafsim_engine::protocol::{Message, MetadataRequest};
use kafsim_engine::{Cx, Duration, Instant, Node, NodeId, Timer};
use kafsim_sim::network::LinkConfig;
use kafsim_sim::world::{World, WorldConfig};
use std::any::Any;

fn msg(n: u64) -> Message {
    Message::MetadataRequest(MetadataRequest {
        correlation_id: n,
        topics: vec![],
    })
}

struct Pinger {
    peer: NodeId,
    serve: bool,
}

impl Node for Pinger {
    fn on_start(&mut self, cx: &mut Cx) {
        if self.serve {
            cx.send(self.peer, msg(0));
        }
    }
    fn on_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        cx.send(from, msg);
    }
    fn on_timer(&mut self, _cx: &mut Cx, _timer: Timer) {}
    fn as_any(&self) -> &dyn Any {
        self
    }
}

struct Chatter {
    peers: u32,
    every: Duration,
    n: u64,
}

impl Node for Chatter {
    fn on_start(&mut self, cx: &mut Cx) {
        cx.set_timer_after(self.every, Timer::new(1, 0));
    }
    fn on_message(&mut self, _cx: &mut Cx, _from: NodeId, _msg: Message) {}
    fn on_timer(&mut self, cx: &mut Cx, _timer: Timer) {
        for p in 0..self.peers {
            if NodeId(p) != cx.me() {
                self.n += 1;
                cx.send(NodeId(p), msg(self.n));
            }
        }
        cx.set_timer_after(self.every, Timer::new(1, 0));
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Run a ping-pong world until `deliveries` messages were delivered.
fn ping_pong(deliveries: u64) -> u64 {
    let mut w = World::new(1, WorldConfig::default());
    w.add_node("a", || {
        Box::new(Pinger {
            peer: NodeId(1),
            serve: true,
        })
    });
    w.add_node("b", || {
        Box::new(Pinger {
            peer: NodeId(0),
            serve: false,
        })
    });
    // Each round trip is ~1 ms of simulated time (2 x 500 us + jitter).
    while w.stats().messages_delivered < deliveries {
        w.run_for(Duration::from_millis(100));
    }
    w.stats().messages_delivered
}

fn all_to_all(nodes: u32, until: Instant) -> u64 {
    let config = WorldConfig {
        link: LinkConfig {
            bandwidth_bytes_per_sec: 125_000_000,
            ..LinkConfig::default()
        },
        ..WorldConfig::default()
    };
    let mut w = World::new(1, config);
    for i in 0..nodes {
        w.add_node(format!("n{i}"), move || {
            Box::new(Chatter {
                peers: nodes,
                every: Duration::from_micros(100),
                n: 0,
            })
        });
    }
    w.run_until(until);
    w.stats().messages_delivered
}

fn kernel(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernel");
    let n = ping_pong(100_000);
    g.throughput(Throughput::Elements(n));
    g.bench_function("ping-pong", |b| b.iter(|| ping_pong(100_000)));
    let until = Instant::from_millis(100);
    let n = all_to_all(10, until);
    g.throughput(Throughput::Elements(n));
    g.bench_function("all-to-all-10", |b| b.iter(|| all_to_all(10, until)));
    g.finish();
}

criterion_group!(benches, kernel);
criterion_main!(benches);
