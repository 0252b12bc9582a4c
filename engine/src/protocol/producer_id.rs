//! InitProducerId: an idempotent or transactional producer obtains its id and epoch.

use super::ErrorCode;

#[derive(Clone, Debug)]
pub struct InitProducerIdRequest {
    pub correlation_id: u64,
    pub transactional_id: Option<String>,
    /// The producer's current id/epoch when it asks for an epoch bump (KIP-360), else -1/-1.
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` of a transactional producer (None for an idempotent one).
    pub transaction_timeout: Option<crate::time::Duration>,
    /// The client ends transactions with EndTxn v5+ (Java 4.0+), so KIP-890 part 2 applies
    /// to them when the cluster's `transaction.version` is 2 (Kafka's
    /// `TransactionVersion.transactionVersionForEndTxn`); sarama and older clients get
    /// part 2's coordinator only as far as their request versions reach (no epoch bump at
    /// the end of a transaction).
    pub transaction_version_2: bool,
}

#[derive(Clone, Debug)]
pub struct InitProducerIdResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
    pub producer_id: i64,
    pub producer_epoch: i16,
}
