//! The transaction coordinator's state of one `transactional.id` (Kafka's
//! `TransactionMetadata` and `TransactionState`) and the decisions the coordinator takes on it
//! (`TransactionCoordinator.handleInitProducerId`, `handleAddPartitionsToTransaction`,
//! `handleEndTransaction`, `abortTimedOutTransactions`).
//!
//! Pure state: no messages, no log. The coordinator that will host it (on the leader of the
//! `__transaction_state` partition of the id, as the group coordinator is hosted on the
//! `__consumer_offsets` leader) persists every transition before acting on it and sends the
//! markers (`TransactionMarkerChannelManager`); that hosting is not built yet.
//!
//! Transitions (`TransactionState.validPreviousStates`):
//! - `Empty` / `CompleteCommit` / `CompleteAbort` -> `Ongoing` when partitions are added;
//! - `Ongoing` -> `PrepareCommit` / `PrepareAbort` on EndTxn (or the timeout: abort);
//! - `Prepare*` -> `Complete*` once every partition has its marker;
//! - InitProducerId bumps the epoch from any complete state, and fences an `Ongoing`
//!   transaction: epoch bump, then `PrepareAbort` (the client retries on
//!   `ConcurrentTransactions` until the abort completes).
//!
//! `transaction.version` 2 (KIP-890 part 2) bumps the epoch at every EndTxn, so a delayed
//! EndTxn or produce of the previous transaction carries an old epoch and is fenced; with
//! version 1 the epoch stays, and a late EndTxn(commit) after CompleteCommit is answered as a
//! successful retry whatever transaction it belonged to (the root of KAFKA-17754).

use crate::protocol::ErrorCode;
use crate::record::TopicPartition;
use crate::time::{Duration, Instant};
use std::collections::BTreeSet;

/// Kafka's `TransactionState` (without `Dead`, used only for expiration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// Kafka's `TransactionState.validPreviousStates`: the states each state may follow
    /// (`PrepareEpochFence`, which this model folds into the abort it leads to, is one more
    /// way from `Ongoing` to `PrepareAbort`).
    pub fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
        }
    }

    fn is_complete(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// Most partitions one transaction may touch (a bound; Kafka has none).
pub const MAX_TXN_PARTITIONS: usize = 4096;

/// One transactional id's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub epoch: i16,
    /// Epoch before the last bump at an EndTxn (KIP-890 part 2 retries), -1 if none.
    pub last_epoch: i16,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    /// When the ongoing transaction began (its first AddPartitions).
    pub started: Instant,
    pub timeout: Duration,
    /// `transaction.version` >= 2 (KIP-890 part 2).
    pub bump_on_end: bool,
}

/// What the coordinator must do after a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnAction {
    /// Answer the request with this error (None = success) and the current id / epoch.
    Reply(ErrorCode),
    /// Write markers (`commit` or abort) with `epoch` to `partitions`, then complete; answer
    /// the EndTxn (if any) once the prepare state is persisted.
    WriteMarkers {
        commit: bool,
        epoch: i16,
        partitions: Vec<TopicPartition>,
    },
}

impl TxnMetadata {
    pub fn new(producer_id: i64, timeout: Duration, bump_on_end: bool) -> TxnMetadata {
        let meta = TxnMetadata {
            producer_id,
            epoch: 0,
            last_epoch: -1,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            started: Instant::ZERO,
            timeout,
            bump_on_end,
        };
        meta.check();
        meta
    }

    fn bump(&mut self) {
        // Kafka allocates a new producer id when the epoch would overflow; the model's runs
        // never get near i16::MAX transactions per id (assert rather than wrap).
        assert!(self.epoch < i16::MAX - 1, "producer epoch exhausted");
        self.last_epoch = self.epoch;
        self.epoch += 1;
        self.check();
    }

    /// Move to `to`, which must be a state Kafka allows after the current one
    /// (`TransactionMetadata.prepareTransitionTo` throws on any other).
    fn transition(&mut self, to: TxnState) {
        assert!(
            to.valid_previous().contains(&self.state),
            "producer {}: transaction state {:?} -> {to:?} is not a Kafka transition",
            self.producer_id,
            self.state
        );
        self.state = to;
        self.check();
    }

    /// What every transition leaves true: a real producer id; epochs that only grow (the one
    /// before the last bump is below the current); a complete transaction holds no
    /// partitions; at most [`MAX_TXN_PARTITIONS`] of them.
    pub fn check(&self) {
        assert!(
            self.producer_id >= 0 && self.epoch >= 0,
            "transaction of producer {} at epoch {}",
            self.producer_id,
            self.epoch
        );
        assert!(
            self.last_epoch < self.epoch,
            "producer {}: previous epoch {} not below the epoch {}",
            self.producer_id,
            self.last_epoch,
            self.epoch
        );
        assert!(
            !self.state.is_complete() || self.partitions.is_empty(),
            "producer {}: {:?} with partitions {:?}",
            self.producer_id,
            self.state,
            self.partitions
        );
        assert!(
            self.partitions.len() <= MAX_TXN_PARTITIONS,
            "producer {}: {} partitions in one transaction",
            self.producer_id,
            self.partitions.len()
        );
    }

    /// InitProducerId for an existing id (a restarted or second instance of the producer).
    pub fn init_producer_id(&mut self) -> TxnAction {
        let epoch = self.epoch;
        let action = self.init_producer_id_transition();
        assert!(
            matches!(action, TxnAction::Reply(ErrorCode::ConcurrentTransactions))
                || self.epoch > epoch,
            "producer {}: InitProducerId kept epoch {epoch}",
            self.producer_id
        );
        action
    }

    fn init_producer_id_transition(&mut self) -> TxnAction {
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                TxnAction::Reply(ErrorCode::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                // `prepareFenceProducerEpoch` then `endTransaction(abort)`: the previous
                // instance's transaction is aborted under a bumped epoch.
                self.bump();
                self.prepare(false)
            }
            _ => {
                self.partitions.clear();
                self.bump();
                self.transition(TxnState::Empty);
                TxnAction::Reply(ErrorCode::None)
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, which adds the group's offsets partition).
    pub fn add_partitions(
        &mut self,
        now: Instant,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
    ) -> TxnAction {
        if producer_id != self.producer_id {
            return TxnAction::Reply(ErrorCode::InvalidProducerIdMapping);
        }
        if epoch != self.epoch {
            return TxnAction::Reply(ErrorCode::ProducerFenced);
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                TxnAction::Reply(ErrorCode::ConcurrentTransactions)
            }
            _ => {
                if self.state != TxnState::Ongoing {
                    self.partitions.clear();
                    self.started = now;
                }
                if self.partitions.len() + partitions.len() > MAX_TXN_PARTITIONS {
                    return TxnAction::Reply(ErrorCode::InvalidRequest);
                }
                self.partitions.extend(partitions.iter().copied());
                self.transition(TxnState::Ongoing);
                assert!(
                    self.started <= now,
                    "producer {}: a transaction that starts in the future",
                    self.producer_id
                );
                assert!(
                    partitions.iter().all(|tp| self.partitions.contains(tp)),
                    "producer {}: added partitions missing",
                    self.producer_id
                );
                TxnAction::Reply(ErrorCode::None)
            }
        }
    }

    /// Whether `tp` is part of the ongoing transaction of `producer_id` at `epoch` (the
    /// verification of KIP-890 part 1, `AddPartitionsToTxn` with `verifyOnly`).
    pub fn verify(&self, producer_id: i64, epoch: i16, tp: TopicPartition) -> ErrorCode {
        self.check();
        if producer_id != self.producer_id || epoch != self.epoch {
            ErrorCode::ProducerFenced
        } else if self.state == TxnState::Ongoing && self.partitions.contains(&tp) {
            ErrorCode::None
        } else {
            ErrorCode::InvalidTxnState
        }
    }

    /// EndTxn from the producer (`handleEndTransaction`).
    pub fn end_txn(&mut self, producer_id: i64, epoch: i16, commit: bool) -> TxnAction {
        if producer_id != self.producer_id {
            return TxnAction::Reply(ErrorCode::InvalidProducerIdMapping);
        }
        // KIP-890 part 2: a retry of the EndTxn that bumped the epoch carries the old one.
        let retry_of_bumped =
            self.bump_on_end && epoch == self.last_epoch && epoch + 1 == self.epoch;
        if epoch != self.epoch && !retry_of_bumped {
            return TxnAction::Reply(ErrorCode::ProducerFenced);
        }
        let done = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        let preparing = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        match self.state {
            TxnState::Ongoing if !retry_of_bumped => {
                let before = self.epoch;
                if self.bump_on_end {
                    self.bump();
                }
                // KIP-890 part 2: transaction.version 2 ends every transaction with a new
                // epoch; version 1 keeps it.
                assert_eq!(
                    self.epoch,
                    before + i16::from(self.bump_on_end),
                    "producer {}: EndTxn epoch",
                    self.producer_id
                );
                self.prepare(commit)
            }
            // A retry of an EndTxn already decided: success if it asked the same.
            s if s == done || s == preparing => {
                assert!(
                    !retry_of_bumped || self.bump_on_end,
                    "producer {}: a bumped retry without transaction.version 2",
                    self.producer_id
                );
                if s == preparing {
                    TxnAction::Reply(ErrorCode::ConcurrentTransactions)
                } else {
                    TxnAction::Reply(ErrorCode::None)
                }
            }
            _ => TxnAction::Reply(ErrorCode::InvalidTxnState),
        }
    }

    fn prepare(&mut self, commit: bool) -> TxnAction {
        self.transition(if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        });
        assert!(
            self.epoch > self.last_epoch,
            "producer {}: markers under a stale epoch",
            self.producer_id
        );
        TxnAction::WriteMarkers {
            commit,
            epoch: self.epoch,
            partitions: self.partitions.iter().copied().collect(),
        }
    }

    /// Every marker of the prepared transaction is written: complete it.
    pub fn markers_written(&mut self) {
        let done = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            s => panic!("markers written in state {s:?}"),
        };
        self.partitions.clear();
        self.transition(done);
    }

    /// `transaction.timeout.ms`: an ongoing transaction older than its timeout is aborted by
    /// the coordinator under a bumped epoch, fencing the producer
    /// (`TransactionCoordinator.abortTimedOutTransactions`).
    pub fn maybe_time_out(&mut self, now: Instant) -> Option<TxnAction> {
        if self.state != TxnState::Ongoing || now.saturating_since(self.started) < self.timeout {
            return None;
        }
        assert!(
            now >= self.started,
            "producer {}: a transaction started in the future",
            self.producer_id
        );
        let epoch = self.epoch;
        self.bump();
        let action = self.prepare(false);
        // `abortTimedOutTransactions` fences the producer: a bumped epoch, then the abort.
        assert!(
            self.epoch > epoch && self.state == TxnState::PrepareAbort,
            "producer {}: a timed-out transaction not fenced and aborted",
            self.producer_id
        );
        Some(action)
    }

    /// Whether nothing is in flight for this id.
    pub fn is_idle(&self) -> bool {
        self.state.is_complete()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TopicId;
    use crate::time::ms;

    const A: TopicPartition = TopicPartition::new(TopicId(0), 0);
    const B: TopicPartition = TopicPartition::new(TopicId(0), 1);

    fn ongoing(bump_on_end: bool) -> TxnMetadata {
        let mut m = TxnMetadata::new(7, ms(60_000), bump_on_end);
        assert_eq!(
            m.add_partitions(Instant::ZERO, 7, 0, &[A, B]),
            TxnAction::Reply(ErrorCode::None)
        );
        m
    }

    #[test]
    fn commit_prepares_then_completes_and_a_retry_succeeds() {
        let mut m = ongoing(false);
        assert_eq!(m.verify(7, 0, A), ErrorCode::None);
        assert_eq!(
            m.end_txn(7, 0, true),
            TxnAction::WriteMarkers {
                commit: true,
                epoch: 0,
                partitions: vec![A, B]
            }
        );
        assert_eq!(
            m.add_partitions(Instant::ZERO, 7, 0, &[A]),
            TxnAction::Reply(ErrorCode::ConcurrentTransactions)
        );
        m.markers_written();
        assert_eq!(m.state, TxnState::CompleteCommit);
        assert_eq!(m.end_txn(7, 0, true), TxnAction::Reply(ErrorCode::None));
        assert_eq!(
            m.end_txn(7, 0, false),
            TxnAction::Reply(ErrorCode::InvalidTxnState)
        );
        assert_eq!(
            m.verify(7, 0, A),
            ErrorCode::InvalidTxnState,
            "not in a txn"
        );
    }

    #[test]
    fn pre_kip_890_a_late_commit_of_the_previous_transaction_commits_the_next() {
        // KAFKA-17754's root: with one epoch for every transaction, a delayed EndTxn of
        // transaction 1 cannot be told from one of transaction 2.
        let mut m = ongoing(false);
        m.end_txn(7, 0, false);
        m.markers_written();
        m.add_partitions(Instant::ZERO, 7, 0, &[A]);
        assert!(matches!(
            m.end_txn(7, 0, true),
            TxnAction::WriteMarkers { commit: true, .. }
        ));
    }

    #[test]
    fn kip_890_part_2_bumps_at_every_end_and_fences_the_late_request() {
        let mut m = ongoing(true);
        assert!(matches!(
            m.end_txn(7, 0, false),
            TxnAction::WriteMarkers { epoch: 1, .. }
        ));
        m.markers_written();
        assert_eq!(
            m.end_txn(7, 0, false),
            TxnAction::Reply(ErrorCode::None),
            "the producer's own retry"
        );
        m.add_partitions(Instant::ZERO, 7, 1, &[A]);
        assert_eq!(
            m.end_txn(7, 0, true),
            TxnAction::Reply(ErrorCode::InvalidTxnState),
            "a late EndTxn of the previous transaction does not end this one"
        );
        assert_eq!(
            m.add_partitions(Instant::ZERO, 7, 0, &[B]),
            TxnAction::Reply(ErrorCode::ProducerFenced)
        );
    }

    #[test]
    fn init_fences_the_previous_instance_and_aborts_its_transaction() {
        let mut m = ongoing(false);
        assert_eq!(
            m.init_producer_id(),
            TxnAction::WriteMarkers {
                commit: false,
                epoch: 1,
                partitions: vec![A, B]
            }
        );
        assert_eq!(
            m.init_producer_id(),
            TxnAction::Reply(ErrorCode::ConcurrentTransactions)
        );
        m.markers_written();
        assert_eq!(m.init_producer_id(), TxnAction::Reply(ErrorCode::None));
        assert_eq!(m.epoch, 2);
        assert_eq!(
            m.end_txn(7, 1, true),
            TxnAction::Reply(ErrorCode::ProducerFenced),
            "the zombie"
        );
    }

    #[test]
    fn the_timeout_aborts_an_open_transaction_under_a_new_epoch() {
        let mut m = ongoing(false);
        assert_eq!(m.maybe_time_out(Instant::from_millis(59_999)), None);
        assert_eq!(
            m.maybe_time_out(Instant::from_millis(60_000)),
            Some(TxnAction::WriteMarkers {
                commit: false,
                epoch: 1,
                partitions: vec![A, B]
            })
        );
        m.markers_written();
        assert!(m.is_idle());
        assert_eq!(
            m.end_txn(7, 0, true),
            TxnAction::Reply(ErrorCode::ProducerFenced)
        );
    }
}
