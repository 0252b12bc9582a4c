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
}

#[derive(Clone, Debug)]
pub struct InitProducerIdResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
    pub producer_id: i64,
    pub producer_epoch: i16,
}
