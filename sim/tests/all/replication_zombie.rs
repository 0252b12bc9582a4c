//! A paused leader (GC-pause zombie) resumes after a new leader was elected: the writes it
//! takes in late are never acknowledged, it learns the new epoch, truncates them as a
//! follower, and no replica diverges (issue 3 priority e).

use crate::support::*;
use kafsim_engine::broker::Broker;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Duration, Instant, TopicId, TopicPartition};
use kafsim_sim::invariants::{self, InvariantScope};

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

#[test]
fn resumed_zombie_leader_is_fenced_and_its_late_writes_vanish() {
    let (mut w, c) = Harness::new(13)
        .min_insync_replicas(2)
        .invariants(InvariantScope {
            correlated_power_loss: false,
        })
        .build();
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(30_000));
    w.run_until(Instant::from_millis(3000));
    let zombie = c.leader_of(&w, TP).unwrap();
    w.pause(zombie);
    w.run_until(Instant::from_millis(16_000));
    let new_leader = c.leader_of(&w, TP).expect("a new leader");
    assert_ne!(new_leader, zombie);
    let resumed_at = w.now();
    w.resume(zombie);
    w.run_until(Instant::from_millis(40_000));
    settle(&mut w, &c, TP, Duration::from_secs(10));

    let after = |at: Instant| at >= resumed_at;
    // The zombie appended them and answered NOT_LEADER_OR_FOLLOWER from its purgatory once
    // it learned the new epoch: never acknowledged, and to the client of unknown outcome
    // (it cannot tell that answer from a refusal before the append).
    let rejected = w
        .history()
        .entries()
        .any(|e| after(e.at) && matches!(e.event, HistoryEvent::SendInfo { .. }));
    assert!(rejected, "the zombie's late writes were not rejected");
    let truncated = w.history().entries().any(|e| {
        after(e.at) && e.node == zombie && matches!(e.event, HistoryEvent::Truncated { .. })
    });
    assert!(truncated, "the zombie kept its late writes");
    assert!(!w
        .node::<Broker>(zombie)
        .unwrap()
        .partition(TP)
        .unwrap()
        .is_leader());
    assert_eq!(lost_acked(&w, &c, TP), Some(vec![]));
    assert!(invariants::check_divergence(&w, &c).is_empty());
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}
