//! Incremental fetch sessions on the leader (KIP-227, Kafka's `FetchSession.scala`:
//! `FetchManager.newContext`, `FetchSessionCache`, `FetchSession`, `CachedPartition` and the
//! `*FetchContext` classes; `FetchSessionCacheShard` in later releases, with the same rules).
//!
//! A follower's first fetch is full: it names every partition and, with `INITIAL_EPOCH`, asks
//! for a session. The leader answers every partition, caches each partition's fetch state
//! and the high watermark and log start offset it sent, and returns a session id. Later
//! fetches are incremental: they name only partitions added or whose fetch state changed,
//! and the partitions to forget. The leader still reads and records the follower's progress
//! for *every* partition of the session (`IncrementalFetchContext.foreachPartition`: this is
//! what keeps an idle follower in the ISR), but answers only the partitions with something
//! new: records, a changed high watermark or log start offset, an error, a diverging epoch
//! (`CachedPartition.maybeUpdateResponseData`). An unknown session id or an unexpected epoch
//! is a session error with no partitions, after which the fetcher sends a full fetch again.
//!
//! Every modelled release (3.3 to 4.0) has this: `ReplicaFetcherThread` has used a
//! `FetchSessionHandler` since KIP-227 (Kafka 1.1), so it is not version-switched. The cache
//! lives in the broker's process memory: a restarted broker has no sessions.
//!
//! Sessions keep their partitions in `TopicPartition` order. Kafka moves a partition it
//! answered to the end of the session (so that a response size limit rotates over them);
//! kafsim's reads limit bytes per partition only, so the order changes nothing it answers.

use crate::protocol::*;
use crate::record::TopicPartition;
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;

/// `max.incremental.fetch.session.cache.slots` (default 1000).
pub const DEFAULT_CACHE_SLOTS: u32 = 1000;
/// `min.incremental.fetch.session.eviction.ms` (default 120000): a session unused this long is
/// stale and may be evicted for a new one; a session younger than this is only evictable by
/// a privileged (follower) session, and only if it is not privileged itself.
pub const EVICTION: Duration = Duration::from_millis(120_000);

/// One partition of a session (`CachedPartition`): the request's parameters, last given, and
/// what the last response told the fetcher (`None`: Kafka's -1, nothing yet, or an error).
#[derive(Clone, Copy, Debug)]
struct CachedPartition {
    request: FetchPartition,
    high_watermark: Option<u64>,
    local_log_start_offset: Option<u64>,
}

impl CachedPartition {
    /// `CachedPartition.maybeUpdateResponseData(respData, updateResponseData = true)`: whether
    /// an incremental response must carry this partition, remembering what it carries.
    fn must_respond(&mut self, r: &FetchPartitionResponse) -> bool {
        assert_eq!(
            r.partition, self.request.partition,
            "an incremental response answers other partitions than its session holds"
        );
        let mut must = !r.batches.is_empty();
        if self.high_watermark != Some(r.high_watermark) {
            must = true;
            self.high_watermark = Some(r.high_watermark);
        }
        if self.local_log_start_offset != Some(r.log_start_offset) {
            must = true;
            self.local_log_start_offset = Some(r.log_start_offset);
        }
        if r.error != ErrorCode::None {
            // "We also set the cached highWatermark to an invalid offset, -1. This ensures that
            // when the error goes away, we re-send the partition."
            self.high_watermark = None;
            must = true;
        }
        must || r.diverging_epoch.is_some()
    }
}

#[derive(Debug)]
struct FetchSession {
    /// Sessions created by followers are privileged; kafsim's consumers open none.
    privileged: bool,
    /// In `TopicPartition` order.
    partitions: Vec<CachedPartition>,
    creation: Instant,
    last_used: Instant,
    /// The epoch the next incremental request must carry.
    epoch: i32,
    /// `FetchSessionCache.touch`'s eviction classes, as of the last touch.
    evictable_by_privileged: bool,
    evictable_by_all: bool,
}

impl FetchSession {
    /// `FetchSession.update`: added and changed partitions take the request's parameters
    /// (a new one with nothing sent yet), forgotten ones leave.
    fn update(&mut self, changed: &[FetchPartition], forgotten: &[TopicPartition]) {
        for fp in changed {
            match self
                .partitions
                .binary_search_by_key(&fp.partition, |c| c.request.partition)
            {
                Ok(i) => self.partitions[i].request = *fp,
                Err(i) => self.partitions.insert(
                    i,
                    CachedPartition {
                        request: *fp,
                        high_watermark: None,
                        local_log_start_offset: None,
                    },
                ),
            }
        }
        for tp in forgotten {
            if let Ok(i) = self
                .partitions
                .binary_search_by_key(tp, |c| c.request.partition)
            {
                self.partitions.remove(i);
            }
        }
        debug_assert!(
            self.partitions
                .windows(2)
                .all(|w| w[0].request.partition < w[1].request.partition),
            "a fetch session names a partition twice or out of order"
        );
    }
}

/// How a fetch is answered (Kafka's `FetchContext` subclasses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchContext {
    /// `SessionlessFetchContext`: every partition, no session.
    Sessionless,
    /// `FullFetchContext`: every partition, and a new session if the cache has room.
    Full { privileged: bool },
    /// `IncrementalFetchContext`: the session's partitions, answered where something changed;
    /// `expected_epoch` is the session's epoch once this request is counted.
    Incremental {
        session_id: u64,
        expected_epoch: i32,
    },
    /// `SessionErrorContext`: no partitions, a top-level error.
    SessionError(ErrorCode),
}

/// A broker's fetch sessions (`FetchSessionCache`).
#[derive(Debug)]
pub struct FetchSessionCache {
    sessions: BTreeMap<u64, FetchSession>,
    /// Ids are `base + n`: the broker's incarnation in the high bits, so that a fetcher still
    /// holding a session of a previous process of this broker finds no session of another's.
    id_base: u64,
    next_id: u64,
    max_entries: usize,
}

impl Default for FetchSessionCache {
    fn default() -> Self {
        FetchSessionCache {
            sessions: BTreeMap::new(),
            id_base: 0,
            next_id: 0,
            max_entries: DEFAULT_CACHE_SLOTS as usize,
        }
    }
}

impl FetchSessionCache {
    pub fn new(max_entries: u32) -> FetchSessionCache {
        FetchSessionCache {
            max_entries: max_entries as usize,
            ..FetchSessionCache::default()
        }
    }

    /// Start session ids above `base` (the broker's incarnation in the high bits).
    pub fn set_id_base(&mut self, base: u64) {
        assert!(
            self.sessions.is_empty() && base >= self.id_base,
            "fetch session ids rebased with sessions open or backwards"
        );
        self.id_base = base;
        self.next_id = 0;
    }

    /// `FetchManager.newContext`: resolve a fetch against the sessions. An incremental request's
    /// partitions become the session's (all of them, with their cached parameters), which is
    /// what the leader reads and records the follower's progress for.
    pub fn new_context(&mut self, req: &mut FetchRequest, now: Instant) -> FetchContext {
        if req.is_full() {
            // "Any session specified in a FULL fetch request will be closed."
            if req.session_id != INVALID_SESSION_ID {
                self.sessions.remove(&req.session_id);
            }
            return if req.session_epoch == FINAL_EPOCH {
                FetchContext::Sessionless
            } else {
                FetchContext::Full {
                    privileged: req.replica_id.is_some(),
                }
            };
        }
        let Some(session) = self.sessions.get_mut(&req.session_id) else {
            return FetchContext::SessionError(ErrorCode::FetchSessionIdNotFound);
        };
        if session.epoch != req.session_epoch {
            return FetchContext::SessionError(ErrorCode::InvalidFetchSessionEpoch);
        }
        session.update(&req.partitions, &req.forgotten);
        if session.partitions.is_empty() {
            // Every partition forgotten: the session closes, and what the request names (none,
            // from kafsim's fetchers) is answered without one.
            self.sessions.remove(&req.session_id);
            return FetchContext::Sessionless;
        }
        req.partitions.clear();
        req.partitions
            .extend(session.partitions.iter().map(|c| c.request));
        session.epoch = next_fetch_epoch(session.epoch);
        // `nextEpoch` wraps to 1: an open session never expects the initial or final epoch,
        // which would make its requests full.
        assert!(
            session.epoch > INITIAL_EPOCH,
            "fetch session {} at epoch {}",
            req.session_id,
            session.epoch
        );
        let expected_epoch = session.epoch;
        self.touch(req.session_id, now);
        FetchContext::Incremental {
            session_id: req.session_id,
            expected_epoch,
        }
    }

    /// `FetchContext.updateAndGenerateResponseData`: `resp` answers every partition of `req`
    /// (as [`Self::new_context`] left it), in order; keep what the context sends.
    pub fn finish(
        &mut self,
        context: FetchContext,
        req: &FetchRequest,
        resp: &mut FetchResponse,
        now: Instant,
    ) {
        if let FetchContext::SessionError(error) = context {
            resp.error = error;
            resp.partitions.clear();
            resp.session_id = INVALID_SESSION_ID;
            return;
        }
        assert_eq!(
            resp.partitions.len(),
            req.partitions.len(),
            "a session's response answers other partitions than its request"
        );
        match context {
            FetchContext::Sessionless => resp.session_id = INVALID_SESSION_ID,
            FetchContext::Full { privileged } => {
                resp.session_id = self.maybe_create_session(now, privileged, req, resp);
            }
            FetchContext::Incremental {
                session_id,
                expected_epoch,
            } => {
                let session = self
                    .sessions
                    .get_mut(&session_id)
                    .filter(|s| s.epoch == expected_epoch);
                let Some(session) = session else {
                    // The session changed (or went) between the request and its answer.
                    resp.error = ErrorCode::InvalidFetchSessionEpoch;
                    resp.partitions.clear();
                    resp.session_id = session_id;
                    return;
                };
                let mut cached = session.partitions.iter_mut();
                resp.partitions.retain(|r| {
                    cached
                        .next()
                        .expect("one cached partition per answer")
                        .must_respond(r)
                });
                resp.session_id = session_id;
                self.touch(session_id, now);
            }
            FetchContext::SessionError(_) => unreachable!("answered above"),
        }
    }

    /// `FetchSessionCache.maybeCreateSession`: a session for a full fetch's partitions, as its
    /// response left them, if there is a free slot or one to evict.
    fn maybe_create_session(
        &mut self,
        now: Instant,
        privileged: bool,
        req: &FetchRequest,
        resp: &FetchResponse,
    ) -> u64 {
        let size = req.partitions.len();
        if self.sessions.len() >= self.max_entries && !self.try_evict(privileged, size, now) {
            return INVALID_SESSION_ID;
        }
        let partitions = req
            .partitions
            .iter()
            .zip(&resp.partitions)
            .map(|(fp, r)| {
                assert_eq!(fp.partition, r.partition, "a full response out of order");
                CachedPartition {
                    request: *fp,
                    // An errored partition's answer carries Kafka's invalid HW (-1).
                    high_watermark: (r.error == ErrorCode::None).then_some(r.high_watermark),
                    local_log_start_offset: Some(r.log_start_offset),
                }
            })
            .collect();
        self.next_id += 1;
        let id = self.id_base + self.next_id;
        assert!(
            !self.sessions.contains_key(&id),
            "fetch session id {id} given twice"
        );
        self.sessions.insert(
            id,
            FetchSession {
                privileged,
                partitions,
                creation: now,
                last_used: now,
                epoch: next_fetch_epoch(INITIAL_EPOCH),
                evictable_by_privileged: false,
                evictable_by_all: false,
            },
        );
        self.touch(id, now);
        assert!(
            self.sessions.len() <= self.max_entries,
            "{} fetch sessions in {} slots",
            self.sessions.len(),
            self.max_entries
        );
        id
    }

    /// `FetchSessionCache.touch`: the session was used now; its eviction classes are
    /// re-evaluated (a follower's session becomes evictable once it is older than
    /// [`EVICTION`]).
    fn touch(&mut self, id: u64, now: Instant) {
        let s = self.sessions.get_mut(&id).expect("touched session");
        assert!(now >= s.last_used, "fetch session {id} used back in time");
        s.last_used = now;
        let old = now.saturating_since(s.creation) > EVICTION;
        s.evictable_by_privileged = !s.privileged || old;
        s.evictable_by_all = old;
    }

    /// `FetchSessionCache.tryEvict`: evict the least recently used session if it is stale;
    /// otherwise the least valuable evictable one, `(privileged, size, id)` smallest, if the
    /// new session is worth at least as much.
    fn try_evict(&mut self, privileged: bool, size: usize, now: Instant) -> bool {
        let Some((&lru, s)) = self
            .sessions
            .iter()
            .min_by_key(|(id, s)| (s.last_used, **id))
        else {
            return false;
        };
        if now.saturating_since(s.last_used) > EVICTION {
            self.sessions.remove(&lru);
            return true;
        }
        let candidate = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                if privileged {
                    s.evictable_by_privileged
                } else {
                    s.evictable_by_all
                }
            })
            .map(|(id, s)| ((s.privileged, s.partitions.len(), *id), *id))
            .min();
        match candidate {
            // `EvictableKey(privileged, size, 0)` compared with the candidate's key.
            Some((key, id)) if (privileged, size, 0) >= key => {
                self.sessions.remove(&id);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::node::NodeId;
    use crate::record::TopicId;

    /// A follower's fetch of `partition` at `offset` in leader epoch 1 (also the session
    /// handler's tests).
    pub(crate) fn fp(partition: u32, offset: u64) -> FetchPartition {
        FetchPartition {
            partition: TopicPartition {
                topic: TopicId(1),
                partition,
            },
            fetch_offset: offset,
            current_leader_epoch: Some(1),
            last_fetched_epoch: Some(1),
            log_start_offset: 0,
            partition_max_bytes: 1 << 20,
        }
    }

    fn request(session_id: u64, epoch: i32, parts: Vec<FetchPartition>) -> FetchRequest {
        FetchRequest {
            correlation_id: 1,
            replica_id: Some(NodeId(2)),
            replica_epoch: 0,
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 1 << 20,
            isolation_level: IsolationLevel::ReadUncommitted,
            session_id,
            session_epoch: epoch,
            partitions: parts,
            forgotten: Vec::new(),
        }
    }

    /// What a leader reads for `req`: every partition at HW `hw(partition)`, no records.
    fn read(req: &FetchRequest, hw: impl Fn(u32) -> u64) -> FetchResponse {
        FetchResponse {
            correlation_id: req.correlation_id,
            error: ErrorCode::None,
            session_id: INVALID_SESSION_ID,
            partitions: req
                .partitions
                .iter()
                .map(|p| FetchPartitionResponse {
                    partition: p.partition,
                    error: ErrorCode::None,
                    high_watermark: hw(p.partition.partition),
                    last_stable_offset: 0,
                    log_start_offset: 0,
                    leader_epoch: 1,
                    diverging_epoch: None,
                    aborted_transactions: Vec::new(),
                    batches: Vec::new(),
                })
                .collect(),
        }
    }

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    /// A full fetch of partitions 0..3 answered; returns the session id.
    fn open(cache: &mut FetchSessionCache, now: Instant) -> u64 {
        let mut req = request(
            INVALID_SESSION_ID,
            INITIAL_EPOCH,
            (0..3).map(|p| fp(p, 5)).collect(),
        );
        let context = cache.new_context(&mut req, now);
        assert_eq!(context, FetchContext::Full { privileged: true });
        let mut resp = read(&req, |_| 5);
        cache.finish(context, &req, &mut resp, now);
        assert_eq!(resp.partitions.len(), 3, "a full fetch is answered in full");
        resp.session_id
    }

    #[test]
    fn an_incremental_fetch_reads_its_session_and_answers_what_changed() {
        let mut cache = FetchSessionCache::default();
        cache.set_id_base(7 << 40);
        let id = open(&mut cache, at(0));
        assert_eq!(id, (7 << 40) + 1);
        // Partition 1 moved its fetch offset; nothing else was named.
        let mut req = request(id, 1, vec![fp(1, 9)]);
        let context = cache.new_context(&mut req, at(10));
        assert_eq!(
            context,
            FetchContext::Incremental {
                session_id: id,
                expected_epoch: 2
            }
        );
        assert_eq!(req.partitions, vec![fp(0, 5), fp(1, 9), fp(2, 5)]);
        // Partition 2's HW moved; partition 1 errs: both answered, 0 left out.
        let mut resp = read(&req, |p| if p == 2 { 6 } else { 5 });
        resp.partitions[1].error = ErrorCode::NotLeaderOrFollower;
        cache.finish(context, &req, &mut resp, at(10));
        let answered: Vec<u32> = resp
            .partitions
            .iter()
            .map(|r| r.partition.partition)
            .collect();
        assert_eq!((answered, resp.session_id), (vec![1, 2], id));
        // Next time nothing changed but partition 1 recovered from its error: it is answered
        // again (its cached HW was forgotten), the others are not.
        let mut req = request(id, 2, Vec::new());
        let context = cache.new_context(&mut req, at(20));
        let mut resp = read(&req, |p| if p == 2 { 6 } else { 5 });
        cache.finish(context, &req, &mut resp, at(20));
        let answered: Vec<u32> = resp
            .partitions
            .iter()
            .map(|r| r.partition.partition)
            .collect();
        assert_eq!(answered, vec![1]);
    }

    #[test]
    fn unknown_sessions_and_wrong_epochs_are_session_errors() {
        let mut cache = FetchSessionCache::default();
        let id = open(&mut cache, at(0));
        let mut req = request(id + 1, 1, Vec::new());
        assert_eq!(
            cache.new_context(&mut req, at(1)),
            FetchContext::SessionError(ErrorCode::FetchSessionIdNotFound)
        );
        let mut req = request(id, 2, Vec::new());
        let context = cache.new_context(&mut req, at(1));
        assert_eq!(
            context,
            FetchContext::SessionError(ErrorCode::InvalidFetchSessionEpoch)
        );
        let mut resp = read(&request(id, 2, Vec::new()), |_| 0);
        cache.finish(context, &req, &mut resp, at(1));
        assert_eq!(resp.error, ErrorCode::InvalidFetchSessionEpoch);
        // A full fetch naming the session closes it and opens another.
        let again = open(&mut cache, at(2));
        assert_ne!(again, id);
        let mut req = request(id, INITIAL_EPOCH, vec![fp(0, 5)]);
        cache.new_context(&mut req, at(3));
        assert_eq!(cache.sessions.len(), 1, "the named session was closed");
        // Forgetting every partition closes a session too.
        let mut req = request(again, 1, Vec::new());
        req.forgotten = (0..3).map(|p| fp(p, 0).partition).collect();
        assert_eq!(
            cache.new_context(&mut req, at(4)),
            FetchContext::Sessionless
        );
        assert!(cache.sessions.is_empty());
    }

    #[test]
    fn a_full_cache_evicts_only_stale_sessions_of_followers() {
        let mut cache = FetchSessionCache::new(1);
        let first = open(&mut cache, at(0));
        assert_ne!(first, INVALID_SESSION_ID);
        // Another follower, 1 s later: the only slot is taken by a young follower session.
        assert_eq!(open(&mut cache, at(1_000)), INVALID_SESSION_ID);
        assert_eq!(cache.sessions.len(), 1);
        // Unused for longer than min.incremental.fetch.session.eviction.ms: evicted.
        let second = open(&mut cache, at(121_001));
        assert_ne!(second, INVALID_SESSION_ID);
        let mut req = request(first, 1, Vec::new());
        assert_eq!(
            cache.new_context(&mut req, at(121_002)),
            FetchContext::SessionError(ErrorCode::FetchSessionIdNotFound)
        );
        // No slots: no sessions at all (every fetch stays full).
        let mut none = FetchSessionCache::new(0);
        assert_eq!(open(&mut none, at(0)), INVALID_SESSION_ID);
    }
}
