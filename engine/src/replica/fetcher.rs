//! The replica fetcher (Kafka's `ReplicaFetcherThread`, `num.replica.fetchers` of them per
//! source broker, a partition assigned to `Utils.abs(31 · topic.hashCode() + partition) % n`
//! as `AbstractFetcherManager.getFetcherId` does; each fetcher keeps its own fetch in flight):
//! for the partitions this broker follows, first find the common prefix with the leader (leader-epoch
//! protocol: OffsetsForLeaderEpoch, KIP-101, repeated per KIP-279 until the epochs agree),
//! then fetch from the LEO in a loop, appending what comes back and taking the leader's HW.
//! Each fetcher keeps an incremental fetch session with its leader (KIP-227,
//! [`super::fetch_session_handler`]): after a full fetch it names only the partitions whose
//! fetch state changed, and the answer carries only partitions with news.
//! A response from a leader older than the epoch this follower knows is rejected, so a
//! deposed leader cannot feed its late writes to anyone.

use super::fetch_session_handler::FetchSessionHandler;
use super::partition::{FollowerPhase, Role};
use super::ReplicaManager;
use crate::broker::config::ReplicationProtocol;
use crate::broker::timer::ReplicaTimer;
use crate::history::HistoryEvent;
use crate::log::epoch_cache::UNDEFINED_EPOCH;
use crate::node::{Cx, NodeId, TimerId};
use crate::protocol::*;
use crate::record::TopicPartition;
use crate::time::Instant;
use std::collections::BTreeMap;

/// Fetch state towards one leader broker.
#[derive(Debug, Default, Clone)]
pub struct Session {
    fetch_in_flight: Option<(u64, TimerId)>,
    epochs_in_flight: Option<(u64, TimerId)>,
    backoff_until: Option<Instant>,
    /// The fetcher's incremental fetch session with the leader (KIP-227).
    fetch_session: FetchSessionHandler,
}

/// One fetcher thread: its source broker and its index among that broker's fetchers.
type FetcherKey = (NodeId, u32);

/// Most fetcher sessions a broker keeps (leaders × `num.replica.fetchers`); beyond that
/// something leaks sessions.
const MAX_SESSIONS: usize = 4096;

#[derive(Debug, Default)]
pub struct ReplicaFetcher {
    sessions: BTreeMap<FetcherKey, Session>,
    next_correlation: u64,
}

/// A fetcher's request timeout.
fn timeout_timer((leader, fetcher): FetcherKey) -> ReplicaTimer {
    ReplicaTimer::FetcherTimeout { leader, fetcher }
}

impl ReplicaFetcher {
    /// Start correlation ids at `base` (the broker's incarnation in the high bits), so an
    /// answer addressed to a previous process of this broker never matches a new request.
    pub fn set_correlation_base(&mut self, base: u64) {
        assert!(
            base >= self.next_correlation,
            "fetcher correlation ids would go back from {} to {base}",
            self.next_correlation
        );
        self.next_correlation = base;
    }

    fn next_correlation(&mut self) -> u64 {
        self.next_correlation += 1;
        self.next_correlation
    }
}

impl ReplicaManager {
    /// The fetcher of `tp` (`AbstractFetcherManager.getFetcherId`).
    fn fetcher_id(&self, tp: TopicPartition) -> u32 {
        let n = self.config.num_replica_fetchers.max(1);
        if n == 1 {
            return 0;
        }
        let topic_hash = self
            .config
            .topic_name_hashes
            .get(&tp.topic)
            .copied()
            .unwrap_or(tp.topic.0 as i32);
        let h = topic_hash
            .wrapping_mul(31)
            .wrapping_add(tp.partition as i32);
        let id = crate::coordinator::kafka_utils_abs(h) % n;
        assert!(id < n, "{tp}: fetcher {id} of {n}");
        id
    }

    /// Partitions fetched by `fetcher` in `phase`.
    fn following(
        &self,
        (leader, fetcher): FetcherKey,
        phase: FollowerPhase,
    ) -> Vec<TopicPartition> {
        self.partitions
            .iter()
            .filter(|(_, p)| matches!(p.role, Role::Follower { leader: l, phase: ph } if l == leader && ph == phase))
            .map(|(tp, _)| *tp)
            .filter(|tp| self.fetcher_id(*tp) == fetcher)
            .collect()
    }

    /// Start whatever requests are due from every fetcher, towards every leader we follow.
    pub fn fetcher_kick(&mut self, cx: &mut Cx) {
        // One walk finds the fetchers and whether any of their partitions is truncating: this
        // runs after every fetch response, and a fetcher with no partition to truncate has
        // no OffsetsForLeaderEpoch to send (`send_epoch_requests` would only walk the
        // partitions to find none; the session it opens, `send_fetch` opens as well).
        // Fetchers own disjoint partitions, so one fetcher's requests change no other's flag.
        let mut fetchers: Vec<(FetcherKey, bool)> = Vec::new();
        for (tp, p) in &self.partitions {
            let Role::Follower { leader, phase } = p.role else {
                continue;
            };
            let key = (leader, self.fetcher_id(*tp));
            let truncating = phase == FollowerPhase::Truncating;
            match fetchers.iter_mut().find(|(k, _)| *k == key) {
                Some((_, t)) => *t |= truncating,
                None => fetchers.push((key, truncating)),
            }
        }
        fetchers.sort();
        for (fetcher, truncating) in fetchers {
            // Debug builds (every test) prove the flag against the full walk.
            if cfg!(debug_assertions) {
                assert_eq!(
                    truncating,
                    !self
                        .following(fetcher, FollowerPhase::Truncating)
                        .is_empty(),
                    "{}: fetcher {fetcher:?} misjudged whether it truncates",
                    cx.me()
                );
            }
            if truncating {
                self.send_epoch_requests(cx, fetcher);
            }
            self.send_fetch(cx, fetcher);
        }
    }

    fn session(&mut self, fetcher: FetcherKey) -> &mut Session {
        assert!(
            self.fetcher.sessions.len() < MAX_SESSIONS
                || self.fetcher.sessions.contains_key(&fetcher),
            "more than {MAX_SESSIONS} fetcher sessions"
        );
        self.fetcher.sessions.entry(fetcher).or_default()
    }

    /// The fetchers towards `leader` that have a session.
    fn fetchers_of(&self, leader: NodeId) -> Vec<FetcherKey> {
        self.fetcher
            .sessions
            .keys()
            .filter(|(l, _)| *l == leader)
            .copied()
            .collect()
    }

    fn backing_off(&mut self, cx: &Cx, fetcher: FetcherKey) -> bool {
        self.session(fetcher)
            .backoff_until
            .is_some_and(|t| t > cx.now())
    }

    fn send_epoch_requests(&mut self, cx: &mut Cx, fetcher: FetcherKey) {
        if self.session(fetcher).epochs_in_flight.is_some() || self.backing_off(cx, fetcher) {
            return;
        }
        let leader = fetcher.0;
        let mut asks = Vec::new();
        for tp in self.following(fetcher, FollowerPhase::Truncating) {
            let p = self.partitions.get_mut(&tp).expect("listed");
            match p.log.latest_epoch() {
                // Nothing to reconcile: an empty log agrees with every leader.
                None => {
                    // Every append stamps an epoch, so only an empty log has none.
                    assert!(
                        p.log.batches().is_empty(),
                        "{} {tp}: a log without epochs holds batches",
                        cx.me()
                    );
                    p.role = Role::Follower {
                        leader,
                        phase: FollowerPhase::Fetching,
                    }
                }
                Some(e) => asks.push((tp, p.leader_epoch().expect("follower state"), e)),
            }
        }
        if asks.is_empty() {
            return;
        }
        assert!(
            asks.windows(2).all(|w| w[0].0 < w[1].0),
            "{}: an OffsetsForLeaderEpoch names a partition twice",
            cx.me()
        );
        let correlation_id = self.fetcher.next_correlation();
        let timeout = self.config.replica_socket_timeout;
        let timer = cx.set_timer_after(timeout, timeout_timer(fetcher));
        self.session(fetcher).epochs_in_flight = Some((correlation_id, timer));
        cx.send(
            leader,
            Message::OffsetsForLeaderEpochRequest(OffsetsForLeaderEpochRequest {
                correlation_id,
                replica_id: Some(cx.me()),
                partitions: asks,
            }),
        );
    }

    fn send_fetch(&mut self, cx: &mut Cx, fetcher: FetcherKey) {
        if self.session(fetcher).fetch_in_flight.is_some() || self.backing_off(cx, fetcher) {
            return;
        }
        let leader = fetcher.0;
        let max_bytes = self.config.replica_fetch_max_bytes;
        // At most every hosted partition: sized once, not grown partition by partition.
        let mut parts = Vec::with_capacity(self.partitions.len());
        // One walk over the hosted partitions (what `following` lists, without a second lookup
        // of each): this runs after every fetch response.
        for (&tp, p) in &self.partitions {
            let fetching = matches!(p.role, Role::Follower { leader: l, phase: FollowerPhase::Fetching } if l == leader);
            if !fetching || self.fetcher_id(tp) != fetcher.1 {
                continue;
            }
            let leo = p.log.log_end_offset();
            // A flush policy makes the follower's append synchronous with its fsync (Kafka
            // flushes inside `Log.append`, on the fetcher thread), so it reports a LEO only
            // once it is durable, and its next fetch to this leader waits until every
            // partition of the last answer is: a fetch without the unsynced partition would
            // wait out replica.fetch.wait.max.ms at the leader, and the fsync could not send
            // another meanwhile.
            if !p.log.is_synced_through(leo) {
                return;
            }
            parts.push(FetchPartition {
                partition: tp,
                fetch_offset: leo,
                current_leader_epoch: p.leader_epoch(),
                last_fetched_epoch: p.log.latest_epoch(),
                log_start_offset: p.log.log_start_offset(),
                partition_max_bytes: max_bytes,
            });
        }
        assert!(
            parts.windows(2).all(|w| w[0].partition < w[1].partition),
            "{}: a fetch names a partition twice",
            cx.me()
        );
        // KIP-227: a full fetch names every partition; an incremental one only those whose
        // fetch state changed, and the ones to forget.
        let data = self.session(fetcher).fetch_session.build(parts);
        if data.is_empty() {
            return;
        }
        assert!(
            data.partitions.len() <= data.session_partitions,
            "{}: a fetch names partitions outside its session",
            cx.me()
        );
        let correlation_id = self.fetcher.next_correlation();
        let wait = self.config.replica_fetch_wait_max;
        let timer = cx.set_timer_after(
            wait + self.config.replica_socket_timeout,
            timeout_timer(fetcher),
        );
        self.session(fetcher).fetch_in_flight = Some((correlation_id, timer));
        cx.send(
            leader,
            Message::FetchRequest(FetchRequest {
                correlation_id,
                replica_id: Some(cx.me()),
                replica_epoch: self.broker_epoch,
                max_wait: wait,
                min_bytes: self.config.replica_fetch_min_bytes,
                max_bytes,
                isolation_level: IsolationLevel::ReadUncommitted,
                session_id: data.session_id,
                session_epoch: data.epoch,
                partitions: data.partitions,
                forgotten: data.forgotten,
            }),
        );
    }

    /// A fetch response from `from`.
    pub fn handle_fetch_response(&mut self, cx: &mut Cx, from: NodeId, resp: FetchResponse) {
        let fetcher = self.fetchers_of(from).into_iter().find(|f| {
            self.fetcher.sessions[f]
                .fetch_in_flight
                .is_some_and(|(c, _)| c == resp.correlation_id)
        });
        let Some(fetcher) = fetcher else {
            return;
        };
        let session = self.session(fetcher);
        if let Some((_, timer)) = session.fetch_in_flight.take() {
            cx.cancel_timer(timer);
        }
        assert!(
            self.fetcher.sessions[&fetcher].fetch_in_flight.is_none(),
            "{}: an answered fetch still in flight",
            cx.me()
        );
        // `FetchSessionHandler.handleResponse`: a session error (or a malformed answer) is not
        // processed, and the next fetch is full; it comes at once, as Kafka's
        // `RemoteLeaderEndPoint.fetch` returns no partitions and so none with an error.
        let session = &mut self.session(fetcher).fetch_session;
        if !session.handle_response(&resp) {
            self.fetcher_kick(cx);
            return;
        }
        // Partitions of the session that an incremental answer leaves out had nothing new:
        // they are fine, as a full answer's idle partitions were.
        let mut progressed = session.implied(resp.partitions.len()) > 0;
        for r in resp.partitions {
            progressed |= self.process_partition_data(cx, from, r);
        }
        if !progressed {
            self.back_off(cx, fetcher);
        }
        self.fetcher_kick(cx);
    }

    /// Apply one partition of a fetch response. Returns false when it errored.
    fn process_partition_data(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: FetchPartitionResponse,
    ) -> bool {
        let protocol = self.config.replication_protocol;
        let policy = self.config.flush_policy();
        let Some(p) = self.partitions.get_mut(&r.partition) else {
            return false;
        };
        let leader_ok = matches!(p.role, Role::Follower { leader, phase: FollowerPhase::Fetching } if leader == from);
        let Some(my_epoch) = p.leader_epoch() else {
            return false;
        };
        if !leader_ok || r.leader_epoch < my_epoch {
            // A deposed leader's answer: reject it (KIP-320 fencing).
            return false;
        }
        match (r.error, r.diverging_epoch) {
            (ErrorCode::None, _) => {
                // An answer to a fetch from before our last truncation would leave a gap.
                if r.batches
                    .first()
                    .is_some_and(|b| b.base_offset > p.log.log_end_offset())
                {
                    return false;
                }
                let before = p.log.log_end_offset();
                p.log.append_as_follower(cx, &r.batches, policy);
                let after = p.log.log_end_offset();
                assert!(after >= before, "{}: an append shrank the log", p.tp());
                if after > before {
                    cx.record(HistoryEvent::Appended {
                        broker: cx.me(),
                        partition: p.tp(),
                        leader_epoch: r.leader_epoch,
                        base_offset: before,
                        next_offset: after,
                        leader: false,
                    });
                }
                p.follow_high_watermark(r.high_watermark);
                assert!(
                    p.high_watermark <= r.high_watermark,
                    "{}: a follower's HW {} above its leader's {}",
                    p.tp(),
                    p.high_watermark,
                    r.high_watermark
                );
                true
            }
            (ErrorCode::OffsetOutOfRange, Some(d)) => {
                match protocol {
                    // Legacy `handleOffsetOutOfRange`: the leader is behind us, cut to its LEO.
                    ReplicationProtocol::HighWatermark => {
                        p.truncate(cx, d.end_offset, "leader-log-end");
                        assert!(
                            p.log.log_end_offset() <= d.end_offset.max(p.log.log_start_offset()),
                            "{}: cut to the leader's end {} but ends at {}",
                            p.tp(),
                            d.end_offset,
                            p.log.log_end_offset()
                        );
                    }
                    ReplicationProtocol::LeaderEpoch => {
                        p.role = Role::Follower {
                            leader: from,
                            phase: FollowerPhase::Truncating,
                        };
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Answers to OffsetsForLeaderEpoch: truncate, then fetch or ask again (KIP-279).
    pub fn handle_epoch_response(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        resp: OffsetsForLeaderEpochResponse,
    ) {
        let fetcher = self.fetchers_of(from).into_iter().find(|f| {
            self.fetcher.sessions[f]
                .epochs_in_flight
                .is_some_and(|(c, _)| c == resp.correlation_id)
        });
        let Some(fetcher) = fetcher else {
            return;
        };
        if let Some((_, timer)) = self.session(fetcher).epochs_in_flight.take() {
            cx.cancel_timer(timer);
        }
        let mut errors = false;
        for (tp, error, leader_end) in resp.partitions {
            let Some(p) = self.partitions.get_mut(&tp) else {
                continue;
            };
            if !matches!(p.role, Role::Follower { leader, phase: FollowerPhase::Truncating } if leader == from)
            {
                continue;
            }
            if error != ErrorCode::None {
                errors = true;
                continue;
            }
            let done = if leader_end.epoch == UNDEFINED_EPOCH {
                p.truncate(cx, leader_end.end_offset, "leader-epoch");
                assert!(
                    p.log.log_end_offset() <= leader_end.end_offset.max(p.log.log_start_offset()),
                    "{}: kept past the leader's log start {}",
                    p.tp(),
                    leader_end.end_offset
                );
                true
            } else {
                let (f_epoch, f_end) = p.log.end_offset_for_epoch(leader_end.epoch);
                if f_epoch == leader_end.epoch {
                    p.truncate(cx, f_end.min(leader_end.end_offset), "leader-epoch");
                    // KIP-101: the common prefix ends where both logs' copies of the epoch do.
                    assert!(
                        p.log.log_end_offset()
                            <= leader_end.end_offset.max(p.log.log_start_offset()),
                        "{}: kept past the leader's end {} of epoch {}",
                        p.tp(),
                        leader_end.end_offset,
                        leader_end.epoch
                    );
                    true
                } else {
                    // We lack the leader's epoch: cut to the end of our largest epoch below
                    // it and ask again about that one.
                    let end = if f_epoch == UNDEFINED_EPOCH { 0 } else { f_end };
                    p.truncate(cx, end, "leader-epoch");
                    p.log.latest_epoch().is_none()
                }
            };
            if done {
                p.role = Role::Follower {
                    leader: from,
                    phase: FollowerPhase::Fetching,
                };
            }
        }
        if errors {
            self.back_off(cx, fetcher);
        }
        self.fetcher_kick(cx);
    }

    fn back_off(&mut self, cx: &mut Cx, fetcher: FetcherKey) {
        let until = cx.now() + self.config.replica_fetch_backoff;
        assert!(
            self.fetcher.sessions.contains_key(&fetcher),
            "{}: backing off fetcher {fetcher:?} that has no session",
            cx.me()
        );
        self.session(fetcher).backoff_until = Some(until);
        let (leader, fetcher) = fetcher;
        cx.set_timer(until, ReplicaTimer::FetcherBackoff { leader, fetcher });
    }

    /// Every request in flight to `leader` is lost (its connection closed or reset): each
    /// fetcher towards it forgets its requests and backs off. kafsim has one connection per
    /// pair of nodes where Kafka gives each fetcher thread its own, so a timeout that closes
    /// one fetcher's connection ends the others' requests too.
    fn lose_requests_to(&mut self, cx: &mut Cx, leader: NodeId) {
        for fetcher in self.fetchers_of(leader) {
            let s = self.session(fetcher);
            // `FetchSessionHandler.handleError`: a fetch that failed makes the next one full
            // (a fetcher with none in flight keeps its session: a restarted leader will
            // answer its next fetch with FETCH_SESSION_ID_NOT_FOUND).
            if s.fetch_in_flight.is_some() {
                s.fetch_session.handle_error();
            }
            for (_, t) in [s.fetch_in_flight.take(), s.epochs_in_flight.take()]
                .into_iter()
                .flatten()
            {
                cx.cancel_timer(t);
            }
            self.back_off(cx, fetcher);
            assert!(
                self.fetcher.sessions[&fetcher].backoff_until.is_some(),
                "{}: fetcher {fetcher:?} retries at once after losing its requests",
                cx.me()
            );
        }
        assert!(
            self.fetchers_of(leader).iter().all(|f| {
                let s = &self.fetcher.sessions[f];
                s.fetch_in_flight.is_none() && s.epochs_in_flight.is_none()
            }),
            "{}: a request to {leader} outlived its connection",
            cx.me()
        );
    }

    /// Fetcher timers: a request timed out, or a backoff ended.
    ///
    /// A request to the leader unanswered within `replica.socket.timeout.ms` (plus the fetch's
    /// own wait) closes the connection: Kafka's `ReplicaFetcherBlockingSend.sendRequest` calls
    /// `networkClient.close(sourceBroker)` on any failure of `NetworkClientUtils.sendAndReceive`,
    /// whose timeout disconnects the node. The fetcher thread then treats the partitions as
    /// failed and delays them by `replica.fetch.backoff.ms` (`AbstractFetcherThread`
    /// `handlePartitionsWithErrors`). The other request in flight to that leader dies with the
    /// connection. Without the close, TCP would deliver the given-up request after a partition
    /// heals, and its answer could overtake the next one.
    pub fn on_fetcher_timer(&mut self, cx: &mut Cx, timer: ReplicaTimer) {
        match timer {
            ReplicaTimer::FetcherTimeout { leader, .. } => {
                cx.close_connection(leader);
                self.lose_requests_to(cx, leader);
            }
            ReplicaTimer::FetcherBackoff { leader, fetcher } => {
                let fetcher = (leader, fetcher);
                self.session(fetcher).backoff_until = None;
                assert!(
                    !self.backing_off(cx, fetcher),
                    "{}: fetcher {fetcher:?} still backing off after its backoff",
                    cx.me()
                );
            }
            other => unreachable!("{}: {other:?} is not a fetcher's timer", cx.me()),
        }
        self.fetcher_kick(cx);
    }

    /// The leader's process died: forget in-flight requests and retry after a backoff.
    pub fn on_connection_reset(&mut self, cx: &mut Cx, peer: NodeId) {
        self.lose_requests_to(cx, peer);
    }
}

#[cfg(test)]
#[path = "fetcher_tests.rs"]
mod tests;
