//! What a partition knows of transactions: the open transaction of every producer, the
//! transactions whose end marker the high watermark has not yet passed, and the index of
//! aborted transactions that read_committed fetches return.
//!
//! Kafka keeps this in `ProducerStateManager` (`ongoingTxns`, `unreplicatedTxns`,
//! `firstUnstableOffset`, `completeTxn`, `onHighWatermarkUpdated`) and in each segment's
//! `TransactionIndex` of `AbortedTxn` entries (`LogSegment.updateTxnIndex`,
//! `UnifiedLog.collectAbortedTransactions`). Like the idempotence state it is rebuilt from the
//! log's batches when a log is loaded, on becoming leader and after truncation, never persisted
//! on its own in this model.
//!
//! - The first transactional batch of a producer opens its transaction at that batch's base
//!   offset; a control batch (commit / abort marker) of that producer closes it
//!   (`ProducerAppendInfo.appendEndTxnMarker`). A marker without an open transaction closes an
//!   empty one that starts at the marker itself.
//! - A closed transaction stays *unreplicated* until the high watermark passes its marker: a
//!   new leader without the marker would see it open again, so it must still hold the LSO.
//! - The last stable offset (LSO) is the first offset of the earliest open or unreplicated
//!   transaction, bounded by the high watermark (`UnifiedLog.lastStableOffset`).
//! - An aborted transaction enters the index as (producer id, first offset, marker offset).

use std::collections::BTreeMap;

/// One aborted transaction of the partition (Kafka's `AbortedTxn` without its cached LSO,
/// which only shortens Kafka's scan over segments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
    /// Offset of the abort marker.
    pub last_offset: u64,
}

/// A transaction whose marker is in the log but not yet below the high watermark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CompletedTxn {
    first_offset: u64,
    marker_offset: u64,
}

/// Most aborted transactions one partition indexes; a run that aborts more has a runaway
/// application (assert rather than grow without bound).
pub const MAX_ABORTED_TXNS: usize = 1 << 20;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransactionState {
    /// Producer id -> first offset of its open transaction.
    ongoing: BTreeMap<i64, u64>,
    /// Closed transactions whose marker is at or above the high watermark.
    unreplicated: Vec<CompletedTxn>,
    /// In marker-offset order.
    aborted: Vec<AbortedTxn>,
}

impl TransactionState {
    /// A transactional data batch of `producer_id` was appended at `base_offset`.
    pub fn on_data(&mut self, producer_id: i64, base_offset: u64) {
        let first = *self.ongoing.entry(producer_id).or_insert(base_offset);
        assert!(
            first <= base_offset,
            "producer {producer_id}: data at {base_offset} before its transaction's start {first}"
        );
    }

    /// A commit (`aborted = false`) or abort marker of `producer_id` was appended at `offset`.
    pub fn on_marker(&mut self, producer_id: i64, offset: u64, aborted: bool) {
        let first_offset = self.ongoing.remove(&producer_id).unwrap_or(offset);
        assert!(
            first_offset <= offset,
            "producer {producer_id}: marker at {offset} before its transaction's start {first_offset}"
        );
        assert!(
            self.unreplicated.len() < MAX_ABORTED_TXNS,
            "transaction state: more than {MAX_ABORTED_TXNS} transactions awaiting the HW"
        );
        self.unreplicated.push(CompletedTxn {
            first_offset,
            marker_offset: offset,
        });
        if aborted {
            assert!(
                self.aborted.len() < MAX_ABORTED_TXNS,
                "transaction index: more than {MAX_ABORTED_TXNS} aborted transactions"
            );
            assert!(
                self.aborted.last().is_none_or(|t| t.last_offset < offset),
                "transaction index: abort marker at {offset} not after the last one"
            );
            self.aborted.push(AbortedTxn {
                producer_id,
                first_offset,
                last_offset: offset,
            });
        }
    }

    /// The high watermark moved to `hw`: transactions whose marker is below it are complete
    /// on every ISR replica (`ProducerStateManager.onHighWatermarkUpdated`).
    pub fn on_high_watermark(&mut self, hw: u64) {
        self.unreplicated.retain(|t| t.marker_offset >= hw);
        assert!(
            self.unreplicated
                .iter()
                .all(|t| t.first_offset <= t.marker_offset),
            "transaction state: a completed transaction ends before it starts"
        );
    }

    /// Whether `producer_id` has an open transaction here, and where it starts.
    pub fn ongoing_first_offset(&self, producer_id: i64) -> Option<u64> {
        self.ongoing.get(&producer_id).copied()
    }

    /// Open transactions (producer id, first offset), for status and stall explanations.
    pub fn ongoing(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.ongoing.iter().map(|(p, o)| (*p, *o))
    }

    /// The first offset of the earliest transaction that is open, or closed by a marker the
    /// high watermark `hw` has not passed (`firstUnstableOffset`).
    pub fn first_unstable_offset(&self, hw: u64) -> Option<u64> {
        let open = self.ongoing.values().copied().min();
        let unreplicated = self
            .unreplicated
            .iter()
            .filter(|t| t.marker_offset >= hw)
            .map(|t| t.first_offset)
            .min();
        match (open, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The last stable offset given the high watermark: read_committed consumers read below it.
    pub fn last_stable_offset(&self, hw: u64) -> u64 {
        let lso = self.first_unstable_offset(hw).map_or(hw, |o| o.min(hw));
        assert!(
            lso <= hw,
            "last stable offset {lso} above the high watermark {hw}"
        );
        lso
    }

    /// Aborted transactions that overlap `[from, upper)` (`TransactionIndex.collectAbortedTxns`:
    /// last offset at or after the fetch offset, first offset below the end of the fetched data).
    pub fn collect_aborted(&self, from: u64, upper: u64) -> Vec<(i64, u64)> {
        assert!(
            from <= upper,
            "aborted transactions of the empty range {from}..{upper}"
        );
        self.aborted
            .iter()
            .filter(|t| t.last_offset >= from && t.first_offset < upper)
            .map(|t| (t.producer_id, t.first_offset))
            .collect()
    }

    /// Every indexed aborted transaction (tests and inspection).
    pub fn aborted(&self) -> &[AbortedTxn] {
        &self.aborted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lso_is_the_first_offset_of_the_earliest_open_transaction() {
        let mut t = TransactionState::default();
        assert_eq!(t.last_stable_offset(10), 10, "no transactions: LSO = HW");
        t.on_data(1, 3);
        t.on_data(2, 5);
        t.on_data(1, 7); // a later batch of the same transaction
        assert_eq!(t.last_stable_offset(10), 3);
        assert_eq!(t.last_stable_offset(2), 2, "never above the HW");
        t.on_marker(1, 8, false);
        assert_eq!(
            t.last_stable_offset(8),
            3,
            "the commit marker is not below the HW yet"
        );
        t.on_high_watermark(9);
        assert_eq!(t.last_stable_offset(9), 5, "producer 2 still open");
        t.on_marker(2, 9, true);
        t.on_high_watermark(10);
        assert_eq!(t.last_stable_offset(12), 12);
    }

    #[test]
    fn aborted_index_overlaps_the_fetched_range_only() {
        let mut t = TransactionState::default();
        t.on_data(1, 0);
        t.on_marker(1, 4, true);
        t.on_data(1, 5);
        t.on_marker(1, 6, false);
        t.on_data(2, 7);
        t.on_marker(2, 9, true);
        assert_eq!(t.collect_aborted(0, 3), vec![(1, 0)]);
        assert_eq!(
            t.collect_aborted(5, 7),
            vec![],
            "the committed one is not indexed"
        );
        assert_eq!(t.collect_aborted(4, 10), vec![(1, 0), (2, 7)]);
        assert_eq!(t.collect_aborted(10, 20), vec![]);
    }

    #[test]
    fn a_marker_without_an_open_transaction_closes_an_empty_one() {
        let mut t = TransactionState::default();
        t.on_marker(3, 4, true);
        assert_eq!(t.aborted()[0].first_offset, 4);
        assert_eq!(t.last_stable_offset(4), 4);
        assert_eq!(t.last_stable_offset(5), 5);
    }
}
