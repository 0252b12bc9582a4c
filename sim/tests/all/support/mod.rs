//! Test support for the replication tests: a tiny probe producer that sends one record at a
//! time to a partition's leader and records the outcome in the history, and helpers to read
//! what was acknowledged and what the final leader holds.
#![allow(dead_code)]

pub use crate::harness::Harness;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::*;
use kafsim_engine::{
    Cx, Duration, Instant, Node, NodeId, Record, RecordBatch, Timer, TopicPartition, ValueId,
};
use kafsim_sim::cluster::Cluster;
use kafsim_sim::world::World;
use std::any::Any;

/// Sends a record to the leader of `tp` every `interval` (one request in flight), learning
/// the leader by MetadataRequest. Records SendInvoke / SendOk / SendFail / SendInfo.
pub struct Probe {
    pub index: u32,
    pub brokers: Vec<NodeId>,
    pub tp: TopicPartition,
    pub acks: Acks,
    pub interval: Duration,
    pub request_timeout: Duration,
    pub stop_at: Instant,
    leader: Option<NodeId>,
    in_flight: Option<(u64, ValueId, Instant)>,
    next: u64,
    rotate: usize,
}

impl Probe {
    pub fn new(index: u32, brokers: Vec<NodeId>, tp: TopicPartition, acks: Acks) -> Probe {
        Probe {
            index,
            brokers,
            tp,
            acks,
            interval: Duration::from_millis(10),
            request_timeout: Duration::from_millis(3000),
            stop_at: Instant::MAX,
            leader: None,
            in_flight: None,
            next: 0,
            rotate: 0,
        }
    }

    fn outcome_unknown(&mut self, cx: &mut Cx, reason: &'static str) {
        if let Some((_, value, _)) = self.in_flight.take() {
            cx.record(HistoryEvent::SendInfo {
                producer: self.index,
                value,
                reason,
            });
        }
        self.leader = None;
    }

    fn tick(&mut self, cx: &mut Cx) {
        if let Some((_, _, sent)) = self.in_flight {
            if cx.now().saturating_since(sent) > self.request_timeout + Duration::from_secs(1) {
                self.outcome_unknown(cx, "timeout");
            }
            return;
        }
        let Some(leader) = self.leader else {
            self.rotate += 1;
            let b = self.brokers[self.rotate % self.brokers.len()];
            cx.send(
                b,
                Message::MetadataRequest(MetadataRequest {
                    correlation_id: 0,
                    topics: vec![self.tp.topic],
                }),
            );
            return;
        };
        if cx.now() >= self.stop_at {
            return;
        }
        self.next += 1;
        let value = ValueId(((self.index as u64) << 32) | self.next);
        let record = Record {
            value,
            key: None,
            size: 100,
            create_time: cx.now(),
            payload: None,
        };
        cx.record(HistoryEvent::SendInvoke {
            producer: self.index,
            value,
            key: None,
            topic: self.tp.topic,
            scheduled: None,
        });
        cx.send(
            leader,
            Message::ProduceRequest(ProduceRequest {
                correlation_id: self.next,
                acks: self.acks,
                timeout: self.request_timeout,
                transactional_id: None,
                batches: vec![(self.tp, RecordBatch::new(vec![record].into()))],
            }),
        );
        if self.acks != Acks::None {
            self.in_flight = Some((self.next, value, cx.now()));
        }
    }

    fn on_produce_response(&mut self, cx: &mut Cx, resp: ProduceResponse) {
        let Some((corr, value, _)) = self.in_flight else {
            return;
        };
        if corr != resp.correlation_id {
            return;
        }
        self.in_flight = None;
        let r = &resp.partitions[0];
        let event = match r.error {
            ErrorCode::None => HistoryEvent::SendOk {
                producer: self.index,
                value,
                partition: self.tp,
                offset: r.base_offset,
            },
            // Answers that may come after the leader appended (see the engine producer's
            // `on_batch_response`): the outcome is unknown.
            ErrorCode::RequestTimedOut
            | ErrorCode::NotEnoughReplicasAfterAppend
            | ErrorCode::NotLeaderOrFollower => HistoryEvent::SendInfo {
                producer: self.index,
                value,
                reason: "timeout-or-after-append",
            },
            error => HistoryEvent::SendFail {
                producer: self.index,
                value,
                error,
            },
        };
        if r.error != ErrorCode::None {
            self.leader = None;
        }
        cx.record(event);
    }
}

impl Node for Probe {
    fn on_start(&mut self, cx: &mut Cx) {
        cx.set_timer_after(self.interval, Timer::new(1, 0));
    }

    fn on_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        match msg {
            Message::MetadataResponse(m) => {
                self.leader = m
                    .partitions
                    .iter()
                    .find(|p| p.state.partition == self.tp)
                    .and_then(|p| p.state.leader);
            }
            Message::ProduceResponse(r) => self.on_produce_response(cx, r),
            Message::ConnectionReset if Some(from) == self.leader => {
                self.outcome_unknown(cx, "connection-reset")
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, cx: &mut Cx, _timer: Timer) {
        self.tick(cx);
        cx.set_timer_after(self.interval, Timer::new(1, 0));
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Add a probe producer for `tp`; returns its node id.
pub fn add_probe(
    w: &mut World,
    cluster: &Cluster,
    index: u32,
    tp: TopicPartition,
    acks: Acks,
    stop_at: Instant,
) -> NodeId {
    let brokers = cluster.brokers.clone();
    w.add_node(format!("probe-{index}"), move || {
        let mut p = Probe::new(index, brokers.clone(), tp, acks);
        p.stop_at = stop_at;
        Box::new(p) as Box<dyn Node>
    })
}

/// Acknowledged (value, offset) pairs of `tp`, in ack order.
pub fn acked(w: &World, tp: TopicPartition) -> Vec<(ValueId, u64)> {
    w.history()
        .entries()
        .filter_map(|e| match &e.event {
            HistoryEvent::SendOk {
                value,
                partition,
                offset,
                ..
            } if *partition == tp => Some((*value, *offset)),
            _ => None,
        })
        .collect()
}

/// Acknowledged values that the current leader of `tp` does not hold at their offset below
/// its HW. `None` when there is no leader.
pub fn lost_acked(w: &World, cluster: &Cluster, tp: TopicPartition) -> Option<Vec<(ValueId, u64)>> {
    let leader = cluster.leader_of(w, tp)?;
    let b = w.node::<kafsim_engine::broker::Broker>(leader)?;
    let p = b.partition(tp)?;
    Some(
        acked(w, tp)
            .into_iter()
            .filter(|(v, o)| {
                *o >= p.high_watermark || p.log.record_at(*o).map(|r| r.value) != Some(*v)
            })
            .collect(),
    )
}

/// Run until `tp` has a leader whose HW covers every ack, or `limit` passes.
pub fn settle(w: &mut World, cluster: &Cluster, tp: TopicPartition, limit: Duration) {
    let end = w.now() + limit;
    while w.now() < end {
        w.run_for(Duration::from_millis(500));
        if lost_acked(w, cluster, tp).is_some_and(|l| l.is_empty()) {
            return;
        }
    }
}

/// The ISR of `tp` as the active controller has it, sorted.
pub fn isr_of(w: &World, c: &Cluster, tp: TopicPartition) -> Vec<NodeId> {
    let ctl = c.active_controller(w).expect("an active controller");
    let mut isr = w
        .node::<kafsim_engine::controller::Controller>(ctl)
        .unwrap()
        .state()
        .partition(tp)
        .unwrap()
        .isr
        .clone();
    isr.sort();
    isr
}

/// A fault the random-fault tests hold on one node for a while, then lift.
#[derive(Clone, Copy, Debug)]
pub enum HeldFault {
    Crash,
    Pause,
    /// A power loss that tears the unsynced tail, lifted by a restart.
    PowerLoss,
    /// The node cut off from `others`, lifted by healing the network.
    Partition,
}

/// Apply `fault` to `node`, run for `hold`, then lift it.
pub fn hold_fault(
    w: &mut World,
    fault: HeldFault,
    node: NodeId,
    others: &[NodeId],
    hold: Duration,
) {
    match fault {
        HeldFault::Crash => w.crash(node),
        HeldFault::Pause => w.pause(node),
        HeldFault::PowerLoss => w.power_loss(node, true),
        HeldFault::Partition => w.net().partition(&[node], others),
    }
    w.run_for(hold);
    match fault {
        HeldFault::Crash | HeldFault::PowerLoss => w.restart(node),
        HeldFault::Pause => w.resume(node),
        HeldFault::Partition => w.net().heal(),
    }
}
