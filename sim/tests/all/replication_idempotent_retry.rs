//! An idempotent producer's retry of a batch the leader already holds must not be
//! acknowledged before the batch is committed. Kafka answers a duplicate with the original
//! batch's offsets through the same delayed produce as a fresh append (`UnifiedLog.append`
//! returns the duplicate's offsets, `ReplicaManager` waits for the HW to pass its last
//! offset). kafsim used to answer duplicates at once: with acks=all a retry after a request
//! timeout was acknowledged while only the leader had the records, and a later clean election
//! lost them (library rows defaults-java seed 10, fsync-every-message-power-loss seed 2).

use crate::support::*;
use kafsim_engine::broker::Broker;
use kafsim_engine::protocol::*;
use kafsim_engine::{
    Cx, Duration, Instant, Node, NodeId, Record, RecordBatch, Timer, TopicId, TopicPartition,
    ValueId,
};
use std::any::Any;

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);
const MAX_ATTEMPTS: u64 = 60;

/// Sends the same idempotent batch (producer 7, epoch 0, sequence 0) to `leader` every
/// second (at most `MAX_ATTEMPTS` times) until it is acknowledged, keeping every answer.
struct Retrier {
    leader: NodeId,
    sent: u64,
    answers: Vec<(Instant, ErrorCode, u64)>,
}

impl Retrier {
    fn send(&mut self, cx: &mut Cx) {
        self.sent += 1;
        let record = Record {
            value: ValueId(1),
            key: None,
            size: 100,
            create_time: cx.now(),
            payload: None,
        };
        let mut batch = RecordBatch::new(vec![record].into());
        batch.producer_id = 7;
        batch.producer_epoch = 0;
        batch.base_sequence = 0;
        cx.send(
            self.leader,
            Message::ProduceRequest(ProduceRequest {
                correlation_id: self.sent,
                acks: Acks::All,
                timeout: Duration::from_millis(500),
                transactional_id: None,
                batches: vec![(TP, batch)],
            }),
        );
    }
}

impl Node for Retrier {
    fn on_start(&mut self, cx: &mut Cx) {
        // First attempt now, a retry every second (after the 500 ms request timeout).
        self.send(cx);
        cx.set_timer_after(Duration::from_secs(1), Timer::new(1, 0));
    }

    fn on_message(&mut self, cx: &mut Cx, _from: NodeId, msg: Message) {
        if let Message::ProduceResponse(r) = msg {
            let p = &r.partitions[0];
            self.answers.push((cx.now(), p.error, p.base_offset));
        }
    }

    fn on_timer(&mut self, cx: &mut Cx, _timer: Timer) {
        let acked = self.answers.iter().any(|a| a.1 == ErrorCode::None);
        if !acked && self.sent < MAX_ATTEMPTS {
            self.send(cx);
            cx.set_timer_after(Duration::from_secs(1), Timer::new(1, 0));
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[test]
fn acks_all_retry_of_a_duplicate_waits_for_the_high_watermark() {
    let (mut w, c) = Harness::new(3).min_insync_replicas(2).build();
    w.run_until(Instant::from_millis(2000));
    let leader = c.leader_of(&w, TP).expect("a leader");
    let followers = c.followers_of(&w, TP);
    // The followers cannot fetch: the leader appends, but the HW cannot pass the batch.
    w.net().partition(&[leader], &followers);
    let retrier = w.add_node("retrier", move || {
        Box::new(Retrier {
            leader,
            sent: 0,
            answers: Vec::new(),
        }) as Box<dyn Node>
    });
    w.run_until(Instant::from_millis(4_700));
    let hw = w.node::<Broker>(leader).unwrap().partition(TP).unwrap();
    assert_eq!(
        hw.high_watermark, 0,
        "{leader}: HW passed an unreplicated batch"
    );
    let answers = &w.node::<Retrier>(retrier).unwrap().answers;
    // The first attempt and the first two retries (duplicates) timed out; none succeeded.
    assert!(
        answers.iter().all(|a| a.1 == ErrorCode::RequestTimedOut),
        "a duplicate was acknowledged before it was committed: {answers:?}"
    );
    assert_eq!(answers.len(), 3, "{answers:?}");
    // Once the followers fetch again (their fetch lost in the partition times out after
    // replica.socket.timeout.ms), a retry completes with the original offset.
    w.net().heal();
    w.run_until(Instant::from_millis(45_000));
    let answers = &w.node::<Retrier>(retrier).unwrap().answers;
    let last = answers.last().expect("answers");
    assert_eq!((last.1, last.2), (ErrorCode::None, 0), "{answers:?}");
    let p = w.node::<Broker>(leader).unwrap().partition(TP).unwrap();
    assert_eq!(
        p.log.log_end_offset(),
        1,
        "{leader}: the duplicate was appended"
    );
    assert!(p.high_watermark >= 1, "{leader}: HW {}", p.high_watermark);
}
