//! The wire protocol between nodes: Kafka's request and response types, by Kafka's names.
//!
//! Each family lives in its own file. Every request carries a `correlation_id` chosen by the
//! sender and echoed by the response, as Kafka's request header does. [`Message::wire_size`]
//! models the bytes a message occupies on a TCP connection; the network charges bandwidth
//! and serialisation delay by it.

mod controller;
mod database;
mod fetch;
mod group;
mod metadata;
mod produce;
mod producer_id;
mod transaction;

pub use controller::*;
pub use database::*;
pub use fetch::*;
pub use group::*;
pub use metadata::*;
pub use produce::*;
pub use producer_id::*;
pub use transaction::*;

/// Request header bytes (api key, version, correlation id, client id) plus response framing.
pub const HEADER_BYTES: u32 = 24;

/// Kafka error codes used by the engine (names as in `org.apache.kafka.common.protocol.Errors`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorCode {
    None,
    UnknownTopicOrPartition,
    NotLeaderOrFollower,
    NotEnoughReplicas,
    NotEnoughReplicasAfterAppend,
    RequestTimedOut,
    NetworkException,
    OffsetOutOfRange,
    FencedLeaderEpoch,
    UnknownLeaderEpoch,
    OutOfOrderSequenceNumber,
    DuplicateSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    ProducerFenced,
    CoordinatorNotAvailable,
    NotCoordinator,
    CoordinatorLoadInProgress,
    IllegalGeneration,
    UnknownMemberId,
    RebalanceInProgress,
    MemberIdRequired,
    InconsistentGroupProtocol,
    StaleControllerEpoch,
    StaleBrokerEpoch,
    BrokerNotAvailable,
    InvalidRequest,
    RecordListTooLarge,
    InvalidUpdateVersion,
    FencedInstanceId,
    TransactionCoordinatorFenced,
    InvalidTxnState,
    InvalidProducerIdMapping,
    ConcurrentTransactions,
    /// `INVALID_PARTITIONS`: a CreatePartitions count not above the topic's current count.
    InvalidPartitions,
    /// `INVALID_REPLICATION_FACTOR`: fewer usable brokers than the topic's replicas.
    InvalidReplicationFactor,
    /// INVALID_TRANSACTION_TIMEOUT: a producer's `transaction.timeout.ms` above the broker's
    /// `transaction.max.timeout.ms`.
    InvalidTransactionTimeout,
    /// KRaft's `DUPLICATE_BROKER_REGISTRATION`: another incarnation of this broker id still
    /// holds a valid session (`ClusterControlManager.registerBroker`).
    DuplicateBrokerRegistration,
    /// `UNSTABLE_OFFSET_COMMIT` (KIP-447): an OffsetFetch with `require_stable` for a partition
    /// whose transactional offset commit is still pending; the consumer retries.
    UnstableOffsetCommit,
    /// `FETCH_SESSION_ID_NOT_FOUND` (KIP-227): an incremental fetch named a session the leader
    /// does not hold (it restarted, or evicted the session); the fetcher goes back to a full
    /// fetch (`FetchSessionHandler.handleResponse`).
    FetchSessionIdNotFound,
    /// `INVALID_FETCH_SESSION_EPOCH` (KIP-227): an incremental fetch's epoch is not the one
    /// the session expects; the fetcher closes the session with a full fetch.
    InvalidFetchSessionEpoch,
    /// Not a wire error: the Java producer fails the records of an aborted transaction that
    /// were never sent with `TransactionAbortedException` (`RecordAccumulator
    /// .abortUndrainedBatches`).
    TransactionAborted,
}

impl ErrorCode {
    /// Errors a client may retry after refreshing metadata or backing off.
    pub fn is_retriable(self) -> bool {
        use ErrorCode::*;
        matches!(
            self,
            UnknownTopicOrPartition
                | NotLeaderOrFollower
                | NotEnoughReplicas
                | NotEnoughReplicasAfterAppend
                | RequestTimedOut
                | NetworkException
                | FencedLeaderEpoch
                | UnknownLeaderEpoch
                | CoordinatorNotAvailable
                | NotCoordinator
                | CoordinatorLoadInProgress
                | BrokerNotAvailable
                | ConcurrentTransactions
                | UnstableOffsetCommit
        )
    }

    /// Errors after which a client should refresh its metadata (leader moved).
    pub fn needs_metadata_refresh(self) -> bool {
        use ErrorCode::*;
        matches!(
            self,
            UnknownTopicOrPartition
                | NotLeaderOrFollower
                | FencedLeaderEpoch
                | UnknownLeaderEpoch
                | NotEnoughReplicas
                | BrokerNotAvailable
        )
    }
}

/// Every message that crosses the network.
#[derive(Clone, Debug)]
pub enum Message {
    /// Not sent by nodes: the host delivers it when the peer's process died and the
    /// operating system reset the TCP connection. Requests in flight to that peer are lost.
    ConnectionReset,
    /// Not sent by nodes: the host delivers it when a message reached a host whose process is
    /// down (its kernel refuses the connection attempt: ECONNREFUSED). Unlike a reset, it says
    /// that nothing sent on that connection reached the peer.
    ConnectionRefused,

    MetadataRequest(MetadataRequest),
    MetadataResponse(MetadataResponse),
    ProduceRequest(ProduceRequest),
    ProduceResponse(ProduceResponse),
    FetchRequest(FetchRequest),
    FetchResponse(FetchResponse),
    ListOffsetsRequest(ListOffsetsRequest),
    ListOffsetsResponse(ListOffsetsResponse),
    OffsetsForLeaderEpochRequest(OffsetsForLeaderEpochRequest),
    OffsetsForLeaderEpochResponse(OffsetsForLeaderEpochResponse),
    InitProducerIdRequest(InitProducerIdRequest),
    InitProducerIdResponse(InitProducerIdResponse),
    AddPartitionsToTxnRequest(AddPartitionsToTxnRequest),
    AddPartitionsToTxnResponse(AddPartitionsToTxnResponse),
    EndTxnRequest(EndTxnRequest),
    EndTxnResponse(EndTxnResponse),
    WriteTxnMarkersRequest(WriteTxnMarkersRequest),
    WriteTxnMarkersResponse(WriteTxnMarkersResponse),
    AddOffsetsToTxnRequest(AddOffsetsToTxnRequest),
    AddOffsetsToTxnResponse(AddOffsetsToTxnResponse),
    TxnOffsetCommitRequest(TxnOffsetCommitRequest),
    TxnOffsetCommitResponse(TxnOffsetCommitResponse),

    FindCoordinatorRequest(FindCoordinatorRequest),
    FindCoordinatorResponse(FindCoordinatorResponse),
    JoinGroupRequest(JoinGroupRequest),
    JoinGroupResponse(JoinGroupResponse),
    SyncGroupRequest(SyncGroupRequest),
    SyncGroupResponse(SyncGroupResponse),
    HeartbeatRequest(HeartbeatRequest),
    HeartbeatResponse(HeartbeatResponse),
    LeaveGroupRequest(LeaveGroupRequest),
    LeaveGroupResponse(LeaveGroupResponse),
    OffsetCommitRequest(OffsetCommitRequest),
    OffsetCommitResponse(OffsetCommitResponse),
    OffsetFetchRequest(OffsetFetchRequest),
    OffsetFetchResponse(OffsetFetchResponse),

    BrokerRegistrationRequest(BrokerRegistrationRequest),
    BrokerRegistrationResponse(BrokerRegistrationResponse),
    BrokerHeartbeatRequest(BrokerHeartbeatRequest),
    BrokerHeartbeatResponse(BrokerHeartbeatResponse),
    LeaderAndIsrRequest(LeaderAndIsrRequest),
    LeaderAndIsrResponse(LeaderAndIsrResponse),
    AlterPartitionRequest(AlterPartitionRequest),
    AlterPartitionResponse(AlterPartitionResponse),
    CreateTopicsRequest(CreateTopicsRequest),
    CreateTopicsResponse(CreateTopicsResponse),
    CreatePartitionsRequest(CreatePartitionsRequest),
    CreatePartitionsResponse(CreatePartitionsResponse),
    /// Active controller -> standby controllers: the replicated controller state.
    ControllerSync(ControllerSync),
    ControllerSyncAck(ControllerSyncAck),
    /// Candidate controller -> the other controllers: a request for their vote.
    VoteRequest(VoteRequest),
    VoteResponse(VoteResponse),

    /// A consumer's statement to its group's database (not Kafka: see [`database`]).
    DatabaseRequest(DatabaseRequest),
    DatabaseResponse(DatabaseResponse),
}

/// A message's place in a request/response exchange on one connection, for a host that
/// delivers a response only on the connection its request came on (TCP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// A request. `answered`: the receiver will send a response with the same correlation id
    /// (`acks=0` produce requests get none).
    Request { correlation_id: u64, answered: bool },
    /// The response to the request with this correlation id.
    Response { correlation_id: u64 },
    /// Neither (a host notice, replicated controller state).
    Other,
}

impl Message {
    /// Modelled size on the wire, in bytes.
    pub fn wire_size(&self) -> u32 {
        use Message::*;
        let body = match self {
            ConnectionReset | ConnectionRefused => 0,
            MetadataRequest(m) => m.wire_size(),
            MetadataResponse(m) => m.wire_size(),
            ProduceRequest(m) => m.wire_size(),
            ProduceResponse(m) => m.wire_size(),
            FetchRequest(m) => m.wire_size(),
            FetchResponse(m) => m.wire_size(),
            ListOffsetsRequest(m) => 16 * m.partitions.len() as u32,
            ListOffsetsResponse(m) => 24 * m.partitions.len() as u32,
            OffsetsForLeaderEpochRequest(m) => 16 * m.partitions.len() as u32,
            OffsetsForLeaderEpochResponse(m) => 24 * m.partitions.len() as u32,
            InitProducerIdRequest(_) | InitProducerIdResponse(_) => 32,
            AddPartitionsToTxnRequest(m) => {
                24 + m.transactional_id.len() as u32 + 8 * m.partitions.len() as u32
            }
            AddPartitionsToTxnResponse(_) => 8,
            EndTxnRequest(m) => 24 + m.transactional_id.len() as u32,
            EndTxnResponse(_) => 16,
            WriteTxnMarkersRequest(m) => 24 + 8 * m.partitions.len() as u32,
            WriteTxnMarkersResponse(m) => 16 + 12 * m.results.len() as u32,
            AddOffsetsToTxnRequest(m) => {
                24 + m.transactional_id.len() as u32 + m.group.len() as u32
            }
            AddOffsetsToTxnResponse(_) => 8,
            TxnOffsetCommitRequest(m) => {
                40 + m.transactional_id.len() as u32
                    + m.group.len() as u32
                    + m.member_id.len() as u32
                    + 24 * m.offsets.len() as u32
            }
            TxnOffsetCommitResponse(m) => 8 + 12 * m.results.len() as u32,
            FindCoordinatorRequest(m) => 8 + m.key.len() as u32,
            FindCoordinatorResponse(_) => 32,
            JoinGroupRequest(m) => m.wire_size(),
            JoinGroupResponse(m) => m.wire_size(),
            SyncGroupRequest(m) => m.wire_size(),
            SyncGroupResponse(m) => m.wire_size(),
            HeartbeatRequest(m) => {
                16 + m.group.len() as u32
                    + m.member_id.len() as u32
                    + group::instance_id_bytes(&m.group_instance_id)
            }
            HeartbeatResponse(_) => 8,
            LeaveGroupRequest(m) => {
                16 + m.group.len() as u32
                    + m.member_id.len() as u32
                    + group::instance_id_bytes(&m.group_instance_id)
            }
            LeaveGroupResponse(_) => 8,
            OffsetCommitRequest(m) => {
                32 + m.group.len() as u32
                    + group::instance_id_bytes(&m.group_instance_id)
                    + 24 * m.offsets.len() as u32
            }
            OffsetCommitResponse(m) => 8 + 12 * m.results.len() as u32,
            OffsetFetchRequest(m) => 8 + m.group.len() as u32 + 8 * m.partitions.len() as u32,
            OffsetFetchResponse(m) => 8 + 24 * m.offsets.len() as u32,
            BrokerRegistrationRequest(_) | BrokerRegistrationResponse(_) => 32,
            BrokerHeartbeatRequest(_) | BrokerHeartbeatResponse(_) => 24,
            LeaderAndIsrRequest(m) => m.wire_size(),
            LeaderAndIsrResponse(m) => 8 + 8 * m.partitions.len() as u32,
            AlterPartitionRequest(m) => 24 + 4 * m.new_isr.len() as u32,
            AlterPartitionResponse(m) => 24 + 4 * m.isr.len() as u32,
            CreateTopicsRequest(m) => 16 * m.topics.len() as u32,
            CreateTopicsResponse(_) => 16,
            CreatePartitionsRequest(_) => 24,
            CreatePartitionsResponse(_) => 16,
            ControllerSync(m) => 64 + 32 * m.partitions.len() as u32,
            ControllerSyncAck(_) => 16,
            VoteRequest(_) => 24,
            VoteResponse(_) => 16,
            DatabaseRequest(_) => STATEMENT_BYTES,
            DatabaseResponse(m) => match &m.result {
                StatementResult::Offsets(o) => 16 + 16 * o.len() as u32,
                _ => 16,
            },
        };
        HEADER_BYTES + body
    }

    /// A short stable name of the message type, for traces and the trace hash.
    pub fn kind(&self) -> &'static str {
        use Message::*;
        match self {
            ConnectionReset => "ConnectionReset",
            ConnectionRefused => "ConnectionRefused",
            MetadataRequest(_) => "MetadataRequest",
            MetadataResponse(_) => "MetadataResponse",
            ProduceRequest(_) => "ProduceRequest",
            ProduceResponse(_) => "ProduceResponse",
            FetchRequest(_) => "FetchRequest",
            FetchResponse(_) => "FetchResponse",
            ListOffsetsRequest(_) => "ListOffsetsRequest",
            ListOffsetsResponse(_) => "ListOffsetsResponse",
            OffsetsForLeaderEpochRequest(_) => "OffsetsForLeaderEpochRequest",
            OffsetsForLeaderEpochResponse(_) => "OffsetsForLeaderEpochResponse",
            InitProducerIdRequest(_) => "InitProducerIdRequest",
            InitProducerIdResponse(_) => "InitProducerIdResponse",
            AddPartitionsToTxnRequest(_) => "AddPartitionsToTxnRequest",
            AddPartitionsToTxnResponse(_) => "AddPartitionsToTxnResponse",
            EndTxnRequest(_) => "EndTxnRequest",
            EndTxnResponse(_) => "EndTxnResponse",
            WriteTxnMarkersRequest(_) => "WriteTxnMarkersRequest",
            WriteTxnMarkersResponse(_) => "WriteTxnMarkersResponse",
            AddOffsetsToTxnRequest(_) => "AddOffsetsToTxnRequest",
            AddOffsetsToTxnResponse(_) => "AddOffsetsToTxnResponse",
            TxnOffsetCommitRequest(_) => "TxnOffsetCommitRequest",
            TxnOffsetCommitResponse(_) => "TxnOffsetCommitResponse",
            FindCoordinatorRequest(_) => "FindCoordinatorRequest",
            FindCoordinatorResponse(_) => "FindCoordinatorResponse",
            JoinGroupRequest(_) => "JoinGroupRequest",
            JoinGroupResponse(_) => "JoinGroupResponse",
            SyncGroupRequest(_) => "SyncGroupRequest",
            SyncGroupResponse(_) => "SyncGroupResponse",
            HeartbeatRequest(_) => "HeartbeatRequest",
            HeartbeatResponse(_) => "HeartbeatResponse",
            LeaveGroupRequest(_) => "LeaveGroupRequest",
            LeaveGroupResponse(_) => "LeaveGroupResponse",
            OffsetCommitRequest(_) => "OffsetCommitRequest",
            OffsetCommitResponse(_) => "OffsetCommitResponse",
            OffsetFetchRequest(_) => "OffsetFetchRequest",
            OffsetFetchResponse(_) => "OffsetFetchResponse",
            BrokerRegistrationRequest(_) => "BrokerRegistrationRequest",
            BrokerRegistrationResponse(_) => "BrokerRegistrationResponse",
            BrokerHeartbeatRequest(_) => "BrokerHeartbeatRequest",
            BrokerHeartbeatResponse(_) => "BrokerHeartbeatResponse",
            LeaderAndIsrRequest(_) => "LeaderAndIsrRequest",
            LeaderAndIsrResponse(_) => "LeaderAndIsrResponse",
            AlterPartitionRequest(_) => "AlterPartitionRequest",
            AlterPartitionResponse(_) => "AlterPartitionResponse",
            CreateTopicsRequest(_) => "CreateTopicsRequest",
            CreateTopicsResponse(_) => "CreateTopicsResponse",
            CreatePartitionsRequest(_) => "CreatePartitionsRequest",
            CreatePartitionsResponse(_) => "CreatePartitionsResponse",
            ControllerSync(_) => "ControllerSync",
            ControllerSyncAck(_) => "ControllerSyncAck",
            VoteRequest(_) => "VoteRequest",
            VoteResponse(_) => "VoteResponse",
            DatabaseRequest(_) => "DatabaseRequest",
            DatabaseResponse(_) => "DatabaseResponse",
        }
    }
}

/// Generates [`Message::exchange`] and [`Message::correlation_id_mut`] from one table of the
/// request and response variants, so the two cannot disagree.
macro_rules! exchanges {
    (requests: [$($req:ident),* $(,)?], responses: [$($resp:ident),* $(,)?] $(,)?) => {
        impl Message {
            /// Whether this is a request (and answered) or a response, with its correlation id.
            pub fn exchange(&self) -> Exchange {
                match self {
                    Message::ProduceRequest(m) => Exchange::Request {
                        correlation_id: m.correlation_id,
                        answered: m.acks != Acks::None,
                    },
                    $(Message::$req(m) => Exchange::Request {
                        correlation_id: m.correlation_id,
                        answered: true,
                    },)*
                    $(Message::$resp(m) => Exchange::Response {
                        correlation_id: m.correlation_id,
                    },)*
                    Message::ConnectionReset
                    | Message::ConnectionRefused
                    | Message::ControllerSync(_)
                    | Message::ControllerSyncAck(_)
                    | Message::VoteRequest(_)
                    | Message::VoteResponse(_) => Exchange::Other,
                }
            }

            /// The correlation id of a request or response, to rewrite (a host that tells
            /// connections apart gives each request read an id of its own, and restores the
            /// client's id on the response).
            pub fn correlation_id_mut(&mut self) -> Option<&mut u64> {
                match self {
                    Message::ProduceRequest(m) => Some(&mut m.correlation_id),
                    $(Message::$req(m) => Some(&mut m.correlation_id),)*
                    $(Message::$resp(m) => Some(&mut m.correlation_id),)*
                    Message::ConnectionReset
                    | Message::ConnectionRefused
                    | Message::ControllerSync(_)
                    | Message::ControllerSyncAck(_)
                    | Message::VoteRequest(_)
                    | Message::VoteResponse(_) => None,
                }
            }
        }
    };
}

exchanges! {
    requests: [
        MetadataRequest, FetchRequest, ListOffsetsRequest, OffsetsForLeaderEpochRequest,
        InitProducerIdRequest, FindCoordinatorRequest, JoinGroupRequest, SyncGroupRequest,
        HeartbeatRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest,
        BrokerRegistrationRequest, BrokerHeartbeatRequest, LeaderAndIsrRequest,
        AlterPartitionRequest, CreateTopicsRequest, CreatePartitionsRequest, DatabaseRequest,
        AddPartitionsToTxnRequest, EndTxnRequest, WriteTxnMarkersRequest,
        AddOffsetsToTxnRequest, TxnOffsetCommitRequest,
    ],
    responses: [
        MetadataResponse, ProduceResponse, FetchResponse, ListOffsetsResponse,
        OffsetsForLeaderEpochResponse, InitProducerIdResponse, FindCoordinatorResponse,
        JoinGroupResponse, SyncGroupResponse, HeartbeatResponse, LeaveGroupResponse,
        OffsetCommitResponse, OffsetFetchResponse, BrokerRegistrationResponse,
        BrokerHeartbeatResponse, LeaderAndIsrResponse, AlterPartitionResponse,
        CreateTopicsResponse, CreatePartitionsResponse, DatabaseResponse,
        AddPartitionsToTxnResponse, EndTxnResponse, WriteTxnMarkersResponse,
        AddOffsetsToTxnResponse, TxnOffsetCommitResponse,
    ],
}
