//! In-sync replica set rules on the leader (Kafka's `Partition.maybeShrinkIsr` /
//! `maybeExpandIsr`, KIP-497 AlterPartition). A follower is out of sync when its last known
//! LEO differs from the leader's and it has not been caught up to the leader's LEO for
//! `replica.lag.time.max.ms` (`Replica.isCaughtUp`, KAFKA-7152 since 2.1: a follower of an
//! idle partition that fetched everything stays in the ISR however long ago it fetched); it
//! rejoins when its LEO reaches the high watermark and the current leader epoch's start
//! offset. The leader only proposes:
//! the controller commits, and until then the HW uses the "maximal" ISR (committed plus
//! proposed additions; a proposed removal counts only once committed), which is never less
//! safe than either.

use crate::node::NodeId;
use crate::time::{Duration, Instant};

/// A follower's replication progress as its leader sees it (Kafka's `Replica` state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's LEO: the offset of its last fetch.
    pub log_end_offset: u64,
    /// When the follower was last known to be caught up to the leader's LEO (`None`: never
    /// during this leadership, unless it was in the ISR when it began).
    pub last_caught_up: Option<Instant>,
    last_fetch_leader_leo: u64,
    last_fetch_time: Option<Instant>,
}

impl FollowerProgress {
    /// Progress at the start of a leadership: ISR members count as caught up now (Kafka's
    /// `resetLastCaughtUpTime`), their LEO unknown until they fetch.
    pub fn at_leadership_start(in_isr: bool, now: Instant) -> FollowerProgress {
        FollowerProgress {
            log_end_offset: 0,
            last_caught_up: in_isr.then_some(now),
            last_fetch_leader_leo: 0,
            last_fetch_time: None,
        }
    }

    /// Kafka's `Replica.updateFetchState`: a fetch at the leader's LEO means caught up now; a
    /// fetch at the leader LEO of the previous fetch means caught up as of that fetch.
    pub fn on_fetch(&mut self, fetch_offset: u64, leader_leo: u64, now: Instant) {
        if fetch_offset >= leader_leo {
            self.last_caught_up = self.last_caught_up.max(Some(now));
        } else if fetch_offset >= self.last_fetch_leader_leo && self.last_fetch_time.is_some() {
            self.last_caught_up = self.last_caught_up.max(self.last_fetch_time);
        }
        self.log_end_offset = fetch_offset;
        self.last_fetch_leader_leo = leader_leo;
        self.last_fetch_time = Some(now);
    }

    /// Whether the follower has fetched in this leadership (its LEO is known).
    pub fn has_fetched(&self) -> bool {
        self.last_fetch_time.is_some()
    }

    pub fn caught_up_within(&self, now: Instant, lag_max: Duration) -> bool {
        self.last_caught_up
            .is_some_and(|t| now.saturating_since(t) <= lag_max)
    }

    /// Kafka's `ReplicaState.isCaughtUp`: the follower's known LEO equals the leader's, or it
    /// was caught up within `lag_max`. An LEO not learnt in this leadership (no fetch yet;
    /// Kafka's `UnknownOffset`) equals nothing.
    pub fn is_caught_up(&self, leader_leo: u64, now: Instant, lag_max: Duration) -> bool {
        (self.last_fetch_time.is_some() && self.log_end_offset == leader_leo)
            || self.caught_up_within(now, lag_max)
    }
}

/// ISR members (other than the leader) that are not caught up to `leader_leo` (Kafka's
/// `Partition.getOutOfSyncReplicas` / `isFollowerOutOfSync`).
pub fn out_of_sync<'a>(
    isr: &[NodeId],
    leader: NodeId,
    progress: impl Fn(NodeId) -> Option<&'a FollowerProgress>,
    leader_leo: u64,
    now: Instant,
    lag_max: Duration,
) -> Vec<NodeId> {
    isr.iter()
        .copied()
        .filter(|r| *r != leader)
        .filter(|r| progress(*r).is_none_or(|p| !p.is_caught_up(leader_leo, now, lag_max)))
        .collect()
}

/// Whether a follower outside the ISR may rejoin: its LEO reached the HW and the start of the
/// leader's epoch (so it holds everything this leader committed).
pub fn can_rejoin(p: &FollowerProgress, high_watermark: u64, epoch_start_offset: u64) -> bool {
    p.log_end_offset >= high_watermark && p.log_end_offset >= epoch_start_offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ms;

    #[test]
    fn lagging_follower_is_out_of_sync_after_lag_max() {
        let t0 = Instant::ZERO;
        let mut p = FollowerProgress::at_leadership_start(true, t0);
        let at = |m| Instant::from_millis(m);
        p.on_fetch(5, 10, at(100));
        assert!(p.caught_up_within(at(29_000), ms(30_000)));
        assert!(!p.caught_up_within(at(30_001), ms(30_000)));
        let isr = [NodeId(1), NodeId(2)];
        let out = out_of_sync(&isr, NodeId(1), |_| Some(&p), 10, at(30_001), ms(30_000));
        assert_eq!(out, vec![NodeId(2)]);
        // Fetching at the leader LEO of the previous fetch counts as caught up back then.
        p.on_fetch(10, 12, at(30_100));
        assert_eq!(p.last_caught_up, Some(at(100)));
        p.on_fetch(12, 12, at(30_200));
        let out = out_of_sync(&isr, NodeId(1), |_| Some(&p), 12, at(30_300), ms(30_000));
        assert!(out.is_empty());
    }

    #[test]
    fn a_follower_at_the_leader_leo_is_in_sync_however_long_ago_it_fetched() {
        let at = |m| Instant::from_millis(m);
        let isr = [NodeId(1), NodeId(2)];
        let mut p = FollowerProgress::at_leadership_start(true, at(0));
        p.on_fetch(12, 12, at(100));
        // Idle partition: nothing appended since; the follower stopped fetching long ago.
        let out = out_of_sync(&isr, NodeId(1), |_| Some(&p), 12, at(90_000), ms(30_000));
        assert!(out.is_empty(), "LEO equals the leader's: caught up");
        // One more record at the leader and the same follower is out of sync.
        let out = out_of_sync(&isr, NodeId(1), |_| Some(&p), 13, at(90_000), ms(30_000));
        assert_eq!(out, vec![NodeId(2)]);
        // A follower that has not fetched in this leadership has no known LEO: an empty
        // leader log (LEO 0) does not make it caught up.
        let fresh = FollowerProgress::at_leadership_start(false, at(0));
        assert!(!fresh.is_caught_up(0, at(1), ms(30_000)));
    }

    #[test]
    fn rejoin_needs_hw_and_epoch_start() {
        let mut p = FollowerProgress::at_leadership_start(false, Instant::ZERO);
        assert!(!p.caught_up_within(Instant::ZERO, ms(30_000)));
        p.on_fetch(7, 9, Instant::ZERO);
        assert!(can_rejoin(&p, 7, 5));
        assert!(!can_rejoin(&p, 8, 5));
        assert!(!can_rejoin(&p, 7, 8));
    }
}
