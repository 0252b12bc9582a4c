//! The transaction protocol between a transactional producer, its transaction coordinator and
//! the partition leaders (Kafka's AddPartitionsToTxn, EndTxn and WriteTxnMarkers; the
//! coordinator is found with FindCoordinator of type Transaction and the producer id obtained
//! with InitProducerId carrying the transactional.id).

use super::ErrorCode;
use crate::record::{ControlMarker, TopicPartition};

/// AddPartitionsToTxn: the producer declares the partitions its ongoing transaction writes
/// (before the first produce to each). `verify_only` is KIP-890 part 1's broker-side check
/// (`AddPartitionsToTxnManager`): is the partition already in the transaction?
#[derive(Clone, Debug)]
pub struct AddPartitionsToTxnRequest {
    pub correlation_id: u64,
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub partitions: Vec<TopicPartition>,
    pub verify_only: bool,
}

/// One error for the whole request (Kafka answers per partition with the same error unless
/// a partition is unknown, which the model does not produce).
#[derive(Clone, Debug)]
pub struct AddPartitionsToTxnResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
}

/// EndTxn: commit (`commit` true) or abort the ongoing transaction.
#[derive(Clone, Debug)]
pub struct EndTxnRequest {
    pub correlation_id: u64,
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
}

/// With KIP-890 part 2 the response carries the bumped epoch the producer goes on with.
#[derive(Clone, Debug)]
pub struct EndTxnResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// WriteTxnMarkers (coordinator -> partition leader): append `marker` for `producer_id` at
/// `producer_epoch` to each of `partitions` this broker leads. `coordinator_epoch` is the
/// leader epoch of the coordinator's `__transaction_state` partition.
#[derive(Clone, Debug)]
pub struct WriteTxnMarkersRequest {
    pub correlation_id: u64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: u32,
    pub marker: ControlMarker,
    pub partitions: Vec<TopicPartition>,
}

/// Per partition: None once the marker is in the ISR, else why not.
#[derive(Clone, Debug)]
pub struct WriteTxnMarkersResponse {
    pub correlation_id: u64,
    pub producer_id: i64,
    pub results: Vec<(TopicPartition, ErrorCode)>,
}

/// AddOffsetsToTxn (producer -> transaction coordinator): the `__consumer_offsets` partition
/// of `group` joins the ongoing transaction, so its commit / abort marker goes there too
/// (`TransactionCoordinator.handleAddPartitionsToTransaction` with
/// `groupCoordinator.partitionFor(groupId)`).
#[derive(Clone, Debug)]
pub struct AddOffsetsToTxnRequest {
    pub correlation_id: u64,
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub group: String,
}

#[derive(Clone, Debug)]
pub struct AddOffsetsToTxnResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
}

/// TxnOffsetCommit (producer -> group coordinator): offsets the transaction commits for
/// `group`. They stay pending until the transaction's marker lands on the group's
/// `__consumer_offsets` partition. KIP-447: the consumer's group metadata (member id,
/// generation) is checked as an OffsetCommit's is, so a zombie member's producer is refused.
#[derive(Clone, Debug)]
pub struct TxnOffsetCommitRequest {
    pub correlation_id: u64,
    pub transactional_id: String,
    pub group: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub member_id: String,
    pub generation: i32,
    /// (partition, next offset to consume, leader epoch of the last consumed record).
    pub offsets: Vec<(TopicPartition, u64, Option<u32>)>,
}

#[derive(Clone, Debug)]
pub struct TxnOffsetCommitResponse {
    pub correlation_id: u64,
    pub results: Vec<(TopicPartition, ErrorCode)>,
}
