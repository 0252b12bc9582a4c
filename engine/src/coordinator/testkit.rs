//! Test support of the coordinators: a fake `__consumer_offsets` / `__transaction_state` log
//! (the replica manager as [`OffsetsLog`] sees it). The host and disk are the engine's
//! ([`crate::testkit`]).

use super::OffsetsLog;
use crate::node::{Cx, NodeId};
use crate::protocol::ErrorCode;
use crate::record::{Record, RecordBatch, TopicPartition};
use std::collections::BTreeMap;

/// A fake replica manager: leads the partitions in `epochs`; appends wait for `complete`.
#[derive(Default)]
pub struct FakeLog {
    pub epochs: BTreeMap<TopicPartition, u32>,
    pub leaders: BTreeMap<TopicPartition, NodeId>,
    pub appended: Vec<(TopicPartition, Vec<Record>, u64)>,
    pub committed: BTreeMap<TopicPartition, Vec<RecordBatch>>,
    pub fail_appends: Option<ErrorCode>,
    /// Transactional appends: the producer (id, epoch) of an append's token.
    pub transactional: BTreeMap<u64, (i64, i16)>,
}

impl FakeLog {
    /// Make every in-flight append committed (as the ISR acknowledging it) and return tokens.
    pub fn commit_all(&mut self) -> Vec<u64> {
        let mut tokens = Vec::new();
        for (tp, records, token) in self.appended.drain(..) {
            let batches = self.committed.entry(tp).or_default();
            let mut batch = RecordBatch::new(records.into());
            batch.base_offset = batches.last().map_or(0, |b| b.next_offset());
            if let Some((pid, epoch)) = self.transactional.remove(&token) {
                batch.producer_id = pid;
                batch.producer_epoch = epoch;
                batch.is_transactional = true;
            }
            batches.push(batch);
            tokens.push(token);
        }
        tokens
    }
}

impl OffsetsLog for FakeLog {
    fn leader_epoch(&self, partition: TopicPartition) -> Option<u32> {
        self.epochs.get(&partition).copied()
    }
    fn leader_of(&self, partition: TopicPartition) -> Option<NodeId> {
        self.leaders.get(&partition).copied()
    }
    fn append(
        &mut self,
        _cx: &mut Cx,
        partition: TopicPartition,
        records: Vec<Record>,
        token: u64,
    ) -> Result<(), ErrorCode> {
        if let Some(e) = self.fail_appends {
            return Err(e);
        }
        if !self.epochs.contains_key(&partition) {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        self.appended.push((partition, records, token));
        Ok(())
    }
    fn append_transactional(
        &mut self,
        cx: &mut Cx,
        partition: TopicPartition,
        records: Vec<Record>,
        producer: (i64, i16),
        token: u64,
    ) -> Result<(), ErrorCode> {
        self.append(cx, partition, records, token)?;
        self.transactional.insert(token, producer);
        Ok(())
    }
    fn committed_batches(&self, partition: TopicPartition) -> Vec<RecordBatch> {
        self.committed.get(&partition).cloned().unwrap_or_default()
    }
}
