//! A replica fetcher's side of its incremental fetch session (KIP-227; Kafka's
//! `FetchSessionHandler`, which `ReplicaFetcherThread` uses through `RemoteLeaderEndPoint`).
//! The leader's side is [`super::fetch_session`].
//!
//! The handler remembers the partitions its session holds as it last sent them
//! (`sessionPartitions`) and the metadata of the next request (`nextMetadata`: session id and
//! epoch). A full request names every partition; an incremental one names only partitions
//! added or whose fetch state (fetch offset, log start offset, epochs, max bytes) changed,
//! and forgets those no longer fetched. A session error, a malformed response or a failed
//! request sends the next fetch back to full.

use crate::protocol::*;
use crate::record::TopicPartition;

#[derive(Clone, Debug)]
pub struct FetchSessionHandler {
    /// `nextMetadata.sessionId`.
    session_id: u64,
    /// `nextMetadata.epoch`: `INITIAL_EPOCH` makes the next request full.
    epoch: i32,
    /// `sessionPartitions`, in `TopicPartition` order.
    partitions: Vec<FetchPartition>,
}

impl Default for FetchSessionHandler {
    fn default() -> Self {
        FetchSessionHandler {
            session_id: INVALID_SESSION_ID,
            epoch: INITIAL_EPOCH,
            partitions: Vec::new(),
        }
    }
}

/// What one request carries (`FetchRequestData`).
#[derive(Debug, PartialEq, Eq)]
pub struct FetchRequestData {
    pub session_id: u64,
    pub epoch: i32,
    pub partitions: Vec<FetchPartition>,
    pub forgotten: Vec<TopicPartition>,
    /// Partitions the session holds after this request (`sessionPartitions`), sent or not.
    pub session_partitions: usize,
}

impl FetchRequestData {
    /// `ReplicaFetcherThread.buildFetch`: no partition in the session and nothing to forget,
    /// no request. (An incremental fetch that names nothing still fetches its session.)
    pub fn is_empty(&self) -> bool {
        self.session_partitions == 0 && self.forgotten.is_empty()
    }
}

impl FetchSessionHandler {
    fn is_full(&self) -> bool {
        self.epoch == INITIAL_EPOCH || self.epoch == FINAL_EPOCH
    }

    /// `Builder.build`: the request for `next`, every partition to fetch now (in order), and
    /// the session's partitions become `next`.
    pub fn build(&mut self, next: Vec<FetchPartition>) -> FetchRequestData {
        debug_assert!(
            next.windows(2).all(|w| w[0].partition < w[1].partition),
            "a fetch's partitions out of order"
        );
        if self.is_full() {
            self.partitions.clone_from(&next);
            return FetchRequestData {
                session_id: self.session_id,
                epoch: self.epoch,
                session_partitions: next.len(),
                partitions: next,
                forgotten: Vec::new(),
            };
        }
        // Both lists are in partition order: one merge walk finds the added and changed
        // partitions (sent) and the removed ones (forgotten).
        let mut send = Vec::new();
        let mut forgotten = Vec::new();
        let mut old = self.partitions.iter().peekable();
        for fp in &next {
            while let Some(o) = old.next_if(|o| o.partition < fp.partition) {
                forgotten.push(o.partition);
            }
            match old.next_if(|o| o.partition == fp.partition) {
                Some(o) if o == fp => {}
                _ => send.push(*fp),
            }
        }
        forgotten.extend(old.map(|o| o.partition));
        // The leader applies a request's partitions before its forgotten ones: a partition
        // in both would leave the session.
        assert!(
            forgotten
                .iter()
                .all(|tp| next.binary_search_by_key(tp, |p| p.partition).is_err()),
            "an incremental fetch forgets a partition it fetches"
        );
        self.partitions = next;
        FetchRequestData {
            session_id: self.session_id,
            epoch: self.epoch,
            partitions: send,
            forgotten,
            session_partitions: self.partitions.len(),
        }
    }

    /// `handleResponse`: whether the response's partitions are to be processed. The next
    /// request's metadata follows from it.
    pub fn handle_response(&mut self, resp: &FetchResponse) -> bool {
        if resp.error != ErrorCode::None {
            if resp.error == ErrorCode::FetchSessionIdNotFound {
                // `FetchMetadata.INITIAL`
                self.session_id = INVALID_SESSION_ID;
            }
            // else `nextCloseExistingAttemptNew`: a full fetch closing this session.
            self.epoch = INITIAL_EPOCH;
            return false;
        }
        if self.is_full() {
            // `verifyFullFetchResponsePartitions`: a full response answers every partition.
            // kafsim's leader answers a full fetch in full, and only the response to the
            // request in flight gets here, so anything else is a modelling error.
            assert!(
                resp.partitions
                    .iter()
                    .map(|r| r.partition)
                    .eq(self.partitions.iter().map(|p| p.partition)),
                "a full fetch response answers other partitions than its session's"
            );
            if resp.session_id == INVALID_SESSION_ID {
                self.session_id = INVALID_SESSION_ID;
                self.epoch = INITIAL_EPOCH;
            } else {
                // `FetchMetadata.newIncremental`: the leader created a session.
                self.session_id = resp.session_id;
                self.epoch = next_fetch_epoch(INITIAL_EPOCH);
            }
            return true;
        }
        assert!(
            self.session_id != INVALID_SESSION_ID,
            "an incremental fetch without a session"
        );
        // `verifyIncrementalFetchResponsePartitions`: an incremental response answers only
        // partitions of the session.
        let known = resp.partitions.iter().all(|r| {
            self.partitions
                .binary_search_by_key(&r.partition, |p| p.partition)
                .is_ok()
        });
        if !known {
            self.epoch = INITIAL_EPOCH;
            return false;
        }
        if resp.session_id == INVALID_SESSION_ID {
            // The leader closed the session (every partition forgotten).
            self.session_id = INVALID_SESSION_ID;
            self.epoch = INITIAL_EPOCH;
        } else {
            self.epoch = next_fetch_epoch(self.epoch);
        }
        true
    }

    /// `handleError`: the request failed (timed out, its connection lost); the next fetch is
    /// full and closes the session (`nextCloseExistingAttemptNew`).
    pub fn handle_error(&mut self) {
        self.epoch = INITIAL_EPOCH;
    }

    /// Partitions of the session that a response leaves out (implied: nothing new).
    pub fn implied(&self, answered: usize) -> usize {
        assert!(
            answered <= self.partitions.len(),
            "a fetch response answers {answered} of a session of {}",
            self.partitions.len()
        );
        self.partitions.len() - answered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::fetch_session::tests::fp;

    fn answer(session_id: u64, parts: &[FetchPartition]) -> FetchResponse {
        FetchResponse {
            correlation_id: 1,
            error: ErrorCode::None,
            session_id,
            partitions: parts
                .iter()
                .map(|p| FetchPartitionResponse {
                    partition: p.partition,
                    error: ErrorCode::None,
                    high_watermark: 0,
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

    #[test]
    fn a_session_sends_only_what_changed_and_forgets_what_left() {
        let mut h = FetchSessionHandler::default();
        let all = vec![fp(0, 5), fp(1, 7), fp(2, 9)];
        let first = h.build(all.clone());
        assert_eq!((first.epoch, first.partitions.len()), (INITIAL_EPOCH, 3));
        assert!(h.handle_response(&answer(42, &all)));
        // Partition 1 moved, 2 left, 3 joined; 0 is unchanged and not sent.
        let next = h.build(vec![fp(0, 5), fp(1, 8), fp(3, 0)]);
        assert_eq!(next.session_id, 42);
        assert_eq!(next.epoch, 1);
        assert_eq!(next.partitions, vec![fp(1, 8), fp(3, 0)]);
        assert_eq!(next.forgotten, vec![fp(2, 9).partition]);
        assert!(h.handle_response(&answer(42, &[])));
        let idle = h.build(vec![fp(0, 5), fp(1, 8), fp(3, 0)]);
        assert!(idle.partitions.is_empty() && idle.forgotten.is_empty() && idle.epoch == 2);
        assert!(!idle.is_empty(), "an idle session still fetches");
        assert_eq!(h.implied(0), 3);
        assert!(h.build(Vec::new()).forgotten.len() == 3);
    }

    #[test]
    fn session_errors_and_failures_go_back_to_a_full_fetch() {
        let mut h = FetchSessionHandler::default();
        let all = vec![fp(0, 5), fp(1, 7)];
        h.build(all.clone());
        assert!(h.handle_response(&answer(42, &all)));
        let mut err = answer(INVALID_SESSION_ID, &[]);
        err.error = ErrorCode::InvalidFetchSessionEpoch;
        h.build(all.clone());
        assert!(!h.handle_response(&err));
        // Closes session 42 and asks for a new one, naming every partition.
        let full = h.build(all.clone());
        assert_eq!((full.session_id, full.epoch), (42, INITIAL_EPOCH));
        assert_eq!(full.partitions, all);
        err.error = ErrorCode::FetchSessionIdNotFound;
        assert!(!h.handle_response(&err));
        let full = h.build(all.clone());
        assert_eq!(
            (full.session_id, full.epoch),
            (INVALID_SESSION_ID, INITIAL_EPOCH)
        );
        assert!(h.handle_response(&answer(43, &all)));
        assert_eq!(h.build(all.clone()).epoch, 1);
        h.handle_error();
        assert_eq!(h.build(all.clone()).partitions, all);
        // An incremental answer naming a partition outside the session is refused.
        assert!(h.handle_response(&answer(44, &all)));
        h.build(vec![fp(0, 5)]);
        assert!(!h.handle_response(&answer(44, &[fp(1, 7)])));
        assert_eq!(h.build(vec![fp(0, 5)]).epoch, INITIAL_EPOCH);
    }
}
