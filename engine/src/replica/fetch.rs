//! The fetch path of a leader (Kafka's `ReplicaManager.fetchMessages`, `DelayedFetch` and
//! `Partition.updateFollowerFetchState`): a follower's fetch moves its progress and the HW; a
//! consumer's or follower's fetch reads to its isolation bound, or parks until it can.

use super::fetch_session::FetchContext;
use super::partition::Role;
use super::purgatory::DelayedFetch;
use super::ReplicaManager;
use crate::broker::timer::ReplicaTimer;
use crate::isr;
use crate::node::{Cx, NodeId};
use crate::protocol::*;
use crate::record::TopicPartition;

impl ReplicaManager {
    /// New data in `tp`: answer the fetches waiting for it that can now be satisfied.
    pub(super) fn wake_fetches(&mut self, cx: &mut Cx, tp: TopicPartition) {
        for id in self.fetches.watching(tp) {
            self.try_complete_fetch(cx, id);
        }
    }

    /// FetchRequest from a follower or a consumer.
    pub fn handle_fetch(&mut self, cx: &mut Cx, from: NodeId, mut req: FetchRequest) {
        // A follower fetches for itself, and never from itself (it does not follow itself).
        assert!(
            req.replica_id.is_none_or(|r| r == from && r != cx.me()),
            "{}: a follower fetch of {:?} from {from}",
            cx.me(),
            req.replica_id
        );
        // `FetchManager.newContext` (KIP-227): an incremental fetch stands for its whole
        // session, whose partitions are read and whose follower progress is recorded below.
        let context = self.fetch_sessions.new_context(&mut req, cx.now());
        if let FetchContext::SessionError(_) = context {
            let mut resp = FetchResponse {
                correlation_id: req.correlation_id,
                error: ErrorCode::None,
                session_id: INVALID_SESSION_ID,
                partitions: Vec::new(),
            };
            self.fetch_sessions
                .finish(context, &req, &mut resp, cx.now());
            cx.send(from, Message::FetchResponse(resp));
            return;
        }
        if let Some(replica) = req.replica_id {
            for fp in &req.partitions {
                self.update_follower(cx, replica, fp);
            }
        }
        let (mut resp, bytes, any_error) = self.read_fetch(&req);
        // `ReplicaManager.fetchMessages` answers at once a fetch with no partition too.
        if bytes >= req.min_bytes as u64
            || any_error
            || req.max_wait.is_zero()
            || req.partitions.is_empty()
        {
            self.fetch_sessions
                .finish(context, &req, &mut resp, cx.now());
            cx.send(from, Message::FetchResponse(resp));
            return;
        }
        let id = self.next_id();
        let timer = cx.set_timer_after(req.max_wait, ReplicaTimer::FetchWait(id));
        self.fetches.insert(
            id,
            DelayedFetch {
                from,
                request: req,
                context,
                timer,
            },
        );
    }

    /// Send the answer to a fetch, shaped by its session context.
    fn answer_fetch(&mut self, cx: &mut Cx, f: DelayedFetch, mut resp: FetchResponse) {
        assert_eq!(
            resp.correlation_id,
            f.request.correlation_id,
            "{}: a parked fetch answered with another's response",
            cx.me()
        );
        self.fetch_sessions
            .finish(f.context, &f.request, &mut resp, cx.now());
        cx.send(f.from, Message::FetchResponse(resp));
    }

    /// Record a follower's fetch offset (its LEO) and act on it: ISR expansion, HW advance.
    ///
    /// Kafka's `Partition.updateFollowerFetchState` (core/src/main/scala/kafka/cluster/
    /// Partition.scala, the same from 2.x to 4.x) tries to advance the HW only when the
    /// follower's LEO moved: `if (prevFollowerEndOffset != replica.stateSnapshot.logEndOffset)
    /// maybeIncrementLeaderHW(...)`, and completes delayed operations only when it advanced.
    /// The other moments a leader recomputes its HW are an append (`appendRecordsToLeader`),
    /// an ISR change (the AlterPartition answer, a newer partition epoch) and becoming leader;
    /// so a follower outside the ISR that stops counting (no longer caught up within
    /// `replica.lag.time.max.ms`) releases the HW only at the next of these, as in Kafka, not
    /// at the next fetch of any follower.
    pub(super) fn update_follower(&mut self, cx: &mut Cx, replica: NodeId, fp: &FetchPartition) {
        let tp = fp.partition;
        let now = cx.now();
        let Some(p) = self.partitions.get_mut(&tp) else {
            return;
        };
        let epoch = p.leader_epoch();
        let leo = p.log.log_end_offset();
        let hw = p.high_watermark;
        let Role::Leader(l) = &mut p.role else {
            return;
        };
        if fp.current_leader_epoch != epoch || fp.fetch_offset > leo {
            return;
        }
        let Some(progress) = l.followers.get_mut(&replica) else {
            return;
        };
        // Kafka's `Replica` starts a leadership with an unknown LEO (`UnknownOffset`), so the
        // first fetch of a leadership is always a move.
        let previous_leo = progress.has_fetched().then_some(progress.log_end_offset);
        progress.on_fetch(fp.fetch_offset, leo, now);
        assert!(
            progress.log_end_offset <= leo,
            "{} {tp}: follower {replica} at {} past the leader's end {leo}",
            cx.me(),
            progress.log_end_offset
        );
        let leo_moved = previous_leo != Some(progress.log_end_offset);
        let rejoin = isr::can_rejoin(progress, hw, l.epoch_start_offset);
        let in_isr = p.in_maximal_isr(replica);
        // KIP-841 (`Partition.isReplicaIsrEligible`): a follower on a fenced broker (one the
        // controller does not list as live: restarted and not yet caught up with the
        // metadata, or out of its session) is not proposed for the ISR.
        let eligible = self.live_brokers.is_empty() || self.live_brokers.contains(&replica);
        if !in_isr && rejoin && eligible {
            let mut new_isr = p.state.as_ref().expect("leader state").isr.clone();
            assert!(
                !new_isr.contains(&replica),
                "{} {tp}: {replica} rejoins an ISR it is in",
                cx.me()
            );
            new_isr.push(replica);
            // `maybeExpandIsr`: the proposal grows the maximal ISR; the HW is then tried as
            // for any fetch (only if the LEO moved), and the partition checked whole, since
            // its pending ISR changed.
            self.propose_isr(cx, tp, new_isr);
            let moved = leo_moved && self.try_increment_hw(cx, tp, hw);
            self.after_hw_update(cx, tp, moved);
            return;
        }
        if leo_moved && self.try_increment_hw(cx, tp, hw) {
            self.after_hw_update(cx, tp, true);
        } else {
            // Nothing but the follower's progress changed: no waiting produce can settle
            // (`if (leaderHWIncremented) tryCompleteDelayedRequests()`), and debug builds
            // prove it. This is the fast path of nearly every partition of every fetch.
            self.assert_nothing_to_complete(cx.me(), tp);
        }
    }

    /// `maybeIncrementLeaderHW` on a follower fetch of `tp` whose HW was `hw` before it:
    /// whether the HW advanced ([`super::partition::Partition::maybe_increment_hw`] asserts that it never moves
    /// backward nor past the smallest LEO of the maximal ISR).
    fn try_increment_hw(&mut self, cx: &mut Cx, tp: TopicPartition, hw: u64) -> bool {
        let (config, live) = (&self.config, &self.live_brokers);
        let Some(p) = self.partitions.get_mut(&tp) else {
            return false;
        };
        let moved = p.maybe_increment_hw(cx, config, live);
        assert_eq!(
            moved,
            p.high_watermark != hw,
            "{} {tp}: the HW recomputation misreports a move from {hw}",
            cx.me()
        );
        moved
    }

    /// Build a fetch response from current state: (response, bytes, any partition errored).
    pub(super) fn read_fetch(&self, req: &FetchRequest) -> (FetchResponse, u64, bool) {
        let mut bytes = 0u64;
        let mut any_error = false;
        let mut parts = Vec::with_capacity(req.partitions.len());
        for fp in &req.partitions {
            let r = self.read_partition(req, fp);
            any_error |= r.error != ErrorCode::None;
            bytes += r.batches.iter().map(|b| b.wire_size() as u64).sum::<u64>();
            parts.push(r);
        }
        assert_eq!(
            parts.len(),
            req.partitions.len(),
            "a fetch answered for other partitions than it asked"
        );
        let resp = FetchResponse {
            correlation_id: req.correlation_id,
            error: ErrorCode::None,
            session_id: INVALID_SESSION_ID,
            partitions: parts,
        };
        (resp, bytes, any_error)
    }

    pub(super) fn read_partition(
        &self,
        req: &FetchRequest,
        fp: &FetchPartition,
    ) -> FetchPartitionResponse {
        let mut r = FetchPartitionResponse {
            partition: fp.partition,
            error: ErrorCode::None,
            high_watermark: 0,
            last_stable_offset: 0,
            log_start_offset: 0,
            leader_epoch: 0,
            diverging_epoch: None,
            aborted_transactions: Vec::new(),
            batches: Vec::new(),
        };
        let Some(p) = self.partitions.get(&fp.partition).filter(|p| p.is_leader()) else {
            r.error = ErrorCode::NotLeaderOrFollower;
            return r;
        };
        let epoch = p.leader_epoch().expect("leader");
        r.leader_epoch = epoch;
        r.high_watermark = p.high_watermark;
        assert!(
            p.high_watermark <= p.log.log_end_offset(),
            "{}: a fetch answered with a HW past the log",
            fp.partition
        );
        let txns = self
            .producer_states
            .get(&fp.partition)
            .map(|ps| ps.transactions());
        let lso = txns.map_or(p.high_watermark, |t| t.last_stable_offset(p.high_watermark));
        r.last_stable_offset = lso;
        r.log_start_offset = p.log.log_start_offset();
        match fp.current_leader_epoch {
            Some(e) if e < epoch => r.error = ErrorCode::FencedLeaderEpoch,
            Some(e) if e > epoch => r.error = ErrorCode::UnknownLeaderEpoch,
            // The leader's own epoch, or none (a client before KIP-320): served
            // (`Partition.getLocalLog` checks only a given epoch).
            Some(_) | None => {}
        }
        if r.error != ErrorCode::None {
            return r;
        }
        let leo = p.log.log_end_offset();
        if fp.fetch_offset > leo || fp.fetch_offset < p.log.log_start_offset() {
            r.error = ErrorCode::OffsetOutOfRange;
            if req.replica_id.is_some() {
                let latest = p.log.latest_epoch().unwrap_or(epoch);
                r.diverging_epoch = Some(EpochEndOffset {
                    epoch: latest,
                    end_offset: leo,
                });
            }
            return r;
        }
        // `UnifiedLog.read` with `FetchIsolation`: followers read to the LEO, read_uncommitted
        // consumers to the HW, read_committed consumers to the LSO, with the aborted
        // transactions overlapping what they got (`UnifiedLog.addAbortedTransactions`: from
        // the fetch offset to the end of the fetched data).
        let committed =
            req.replica_id.is_none() && req.isolation_level == IsolationLevel::ReadCommitted;
        let max_offset = if req.replica_id.is_some() {
            leo
        } else if committed {
            lso
        } else {
            p.high_watermark
        };
        let max_bytes = fp.partition_max_bytes.min(req.max_bytes);
        r.batches = p.log.read(fp.fetch_offset, max_bytes, max_offset);
        // A consumer never reads past what is committed for its isolation level, and the
        // first batch holds the fetch offset (a gap would skip records).
        assert!(
            lso <= p.high_watermark
                && r.batches
                    .last()
                    .is_none_or(|b| b.next_offset() <= max_offset)
                && r.batches.first().is_none_or(|b| {
                    b.base_offset <= fp.fetch_offset && fp.fetch_offset < b.next_offset()
                }),
            "{}: a read from {} below {max_offset} returned the wrong batches",
            fp.partition,
            fp.fetch_offset
        );
        // The log holds every offset once (`Log::check`), so what one read returns is
        // contiguous: a hole here would skip records the consumer never sees.
        assert!(
            r.batches
                .windows(2)
                .all(|w| w[0].next_offset() == w[1].base_offset),
            "{}: a read from {} returned batches with a gap or an overlap",
            fp.partition,
            fp.fetch_offset
        );
        if committed {
            let upper = r
                .batches
                .last()
                .map_or(fp.fetch_offset, |b| b.next_offset());
            r.aborted_transactions =
                txns.map_or(Vec::new(), |t| t.collect_aborted(fp.fetch_offset, upper));
        }
        r
    }

    /// `DelayedFetch.tryComplete`: a parked fetch is answered once the bytes it may read (up to
    /// the LEO for a follower, up to the high watermark for a consumer) reach its `min_bytes`,
    /// or when a partition of it errs (leadership moved, offset out of range). An append that
    /// the HW has not yet passed gives a consumer nothing to read, so its fetch stays parked
    /// until the followers move the HW (`Partition.maybeIncrementLeaderHW` ->
    /// `tryCompleteDelayedRequests`) or its `max_wait` runs out.
    pub(super) fn try_complete_fetch(&mut self, cx: &mut Cx, id: u64) {
        let Some(f) = self.fetches.get(id) else {
            return;
        };
        let (resp, bytes, any_error) = self.read_fetch(&f.request);
        if bytes >= f.request.min_bytes as u64 || any_error {
            // The response just read is the one to send: taking the fetch out of the
            // purgatory and cancelling its timer change nothing it reads.
            let f = self.fetches.remove(id).expect("present");
            assert_eq!(
                resp.correlation_id,
                f.request.correlation_id,
                "{}: a parked fetch answered with another's response",
                cx.me()
            );
            cx.cancel_timer(f.timer);
            self.answer_fetch(cx, f, resp);
        }
    }

    pub(super) fn complete_fetch(&mut self, cx: &mut Cx, id: u64) {
        let Some(f) = self.fetches.remove(id) else {
            return;
        };
        cx.cancel_timer(f.timer);
        let (resp, _, _) = self.read_fetch(&f.request);
        self.answer_fetch(cx, f, resp);
    }

    /// The max wait of a parked fetch elapsed.
    pub fn on_fetch_wait(&mut self, cx: &mut Cx, id: u64) {
        if let Some(f) = self.fetches.remove(id) {
            let (resp, _, _) = self.read_fetch(&f.request);
            self.answer_fetch(cx, f, resp);
        }
    }
}
