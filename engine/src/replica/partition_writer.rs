//! Appends on behalf of the coordinators on this broker (Kafka's `CoordinatorPartitionWriter`
//! and `ReplicaManager.appendRecords` with `AppendOrigin.COORDINATOR`): offsets, group
//! metadata, transaction state and transaction markers, and the whole-log reads a coordinator
//! loads from.

use super::purgatory::ProduceOrigin;
use super::ReplicaManager;
use crate::coordinator::OffsetsLog;
use crate::node::{Cx, NodeId};
use crate::protocol::*;
use crate::record::{Record, RecordBatch, TopicPartition};
use crate::time::{ms, Duration};

/// `offsets.commit.timeout.ms` (default 5000): how long a coordinator append may wait.
const OFFSETS_COMMIT_TIMEOUT: Duration = ms(5000);

impl ReplicaManager {
    /// Append a transaction marker for `producer_id` as the transaction coordinator asks
    /// (`WriteTxnMarkers`; Kafka's `ReplicaManager.appendRecords` with `AppendOrigin.COORDINATOR`
    /// and acks=all): fenced if the partition knows a newer epoch of the producer. The outcome
    /// comes back through [`Self::coordinator_done`] with `token` once the ISR has the marker.
    pub fn append_txn_marker(
        &mut self,
        cx: &mut Cx,
        tp: TopicPartition,
        producer_id: i64,
        producer_epoch: i16,
        marker: crate::record::ControlMarker,
        token: u64,
    ) -> Result<(), ErrorCode> {
        if !self.partitions.get(&tp).is_some_and(|p| p.is_leader()) {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        let ps = self.producer_states.entry(tp).or_default();
        ps.check_marker(producer_id, producer_epoch)?;
        let batch = RecordBatch::control_marker(producer_id, producer_epoch, marker);
        self.append_for_coordinator(cx, tp, batch, token)?;
        // The marker closed the producer's transaction on this partition.
        assert!(
            self.producer_states[&tp]
                .transactions()
                .ongoing_first_offset(producer_id)
                .is_none(),
            "{} {tp}: producer {producer_id}'s transaction open after its marker",
            cx.me()
        );
        Ok(())
    }

    /// A coordinator's acks=all append (offsets, group metadata, transaction state or a
    /// marker): appended on the leader, answered through [`Self::coordinator_done`] with
    /// `token` once the ISR has it or `OFFSETS_COMMIT_TIMEOUT` runs out.
    pub(super) fn append_for_coordinator(
        &mut self,
        cx: &mut Cx,
        tp: TopicPartition,
        batch: RecordBatch,
        token: u64,
    ) -> Result<(), ErrorCode> {
        match self.append_to_leader(cx, tp, batch, Acks::All, false) {
            Err(r) => {
                assert_ne!(
                    r.error,
                    ErrorCode::None,
                    "a refused append without an error"
                );
                Err(r.error)
            }
            Ok(pending) => {
                assert!(
                    pending.is_some(),
                    "an acks=all append that waits for nothing"
                );
                self.wake_fetches(cx, tp);
                let origin = ProduceOrigin::Coordinator { token };
                self.delay_produce(
                    cx,
                    origin,
                    pending.into_iter().collect(),
                    Vec::new(),
                    OFFSETS_COMMIT_TIMEOUT,
                );
                Ok(())
            }
        }
    }

    /// A coordinator loads its partition from the log start, without gaps: a missed record
    /// would be a lost commit or group generation.
    pub(super) fn assert_whole_log(&self, partition: TopicPartition, batches: &[RecordBatch]) {
        let start = self
            .partitions
            .get(&partition)
            .map_or(0, |p| p.log.log_start_offset());
        assert!(
            batches.first().is_none_or(|b| b.base_offset == start)
                && batches
                    .windows(2)
                    .all(|w| w[0].next_offset() == w[1].base_offset),
            "{partition}: a coordinator load does not read the whole log"
        );
    }
}

impl OffsetsLog for ReplicaManager {
    /// From the controller's metadata this broker holds (what MetadataRequest answers).
    fn leader_of(&self, partition: TopicPartition) -> Option<NodeId> {
        self.metadata.get(&partition).and_then(|s| s.leader)
    }

    fn leader_epoch(&self, partition: TopicPartition) -> Option<u32> {
        self.partitions
            .get(&partition)
            .filter(|p| p.is_leader())
            .and_then(|p| p.leader_epoch())
    }

    fn append(
        &mut self,
        cx: &mut Cx,
        partition: TopicPartition,
        records: Vec<Record>,
        token: u64,
    ) -> Result<(), ErrorCode> {
        assert!(
            !records.is_empty(),
            "{} {partition}: a coordinator append of nothing",
            cx.me()
        );
        let batch = RecordBatch::new(records.into());
        self.append_for_coordinator(cx, partition, batch, token)
    }

    fn append_transactional(
        &mut self,
        cx: &mut Cx,
        partition: TopicPartition,
        records: Vec<Record>,
        producer: (i64, i16),
        token: u64,
    ) -> Result<(), ErrorCode> {
        let (producer_id, producer_epoch) = producer;
        if !self
            .partitions
            .get(&partition)
            .is_some_and(|p| p.is_leader())
        {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        // `AppendOrigin.COORDINATOR`: no sequence check, only the epoch fence
        // (`ProducerAppendInfo.checkProducerEpoch`).
        let ps = self.producer_states.entry(partition).or_default();
        ps.check_marker(producer_id, producer_epoch)?;
        let mut batch = RecordBatch::new(records.into());
        batch.producer_id = producer_id;
        batch.producer_epoch = producer_epoch;
        batch.is_transactional = true;
        self.append_for_coordinator(cx, partition, batch, token)?;
        // The transactional batch opened (or extends) the producer's transaction here.
        assert!(
            self.producer_states[&partition]
                .transactions()
                .ongoing_first_offset(producer_id)
                .is_some(),
            "{} {partition}: producer {producer_id}'s offsets appended outside a transaction",
            cx.me()
        );
        Ok(())
    }

    fn committed_batches(&self, partition: TopicPartition) -> Vec<RecordBatch> {
        let batches = self
            .partitions
            .get(&partition)
            .map_or(Vec::new(), |p| p.log.read(0, u32::MAX, p.high_watermark));
        self.assert_whole_log(partition, &batches);
        batches
    }

    fn loadable_batches(&self, partition: TopicPartition) -> Vec<RecordBatch> {
        let batches = self.partitions.get(&partition).map_or(Vec::new(), |p| {
            p.log.read(0, u32::MAX, p.log.log_end_offset())
        });
        self.assert_whole_log(partition, &batches);
        batches
    }
}
