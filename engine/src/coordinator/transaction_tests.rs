//! Unit tests of the hosted transaction coordinator, driven by hand over a fake
//! `__transaction_state` log: the commit path, failover with the partition leader, the
//! transaction timeout, fencing by InitProducerId, and marker retries.

use super::*;
use crate::coordinator::testkit::FakeLog;
use crate::coordinator::CoordinatorPartitions;
use crate::node::NodeTimer;
use crate::protocol::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, InitProducerIdRequest,
    WriteTxnMarkersResponse,
};
use crate::record::ControlMarker;
use crate::testkit::Host;
use crate::time::{ms, Instant};

const STATE: TopicId = TopicId(9);
const DATA: TopicId = TopicId(1);
const A: TopicPartition = TopicPartition::new(DATA, 0);
const B: TopicPartition = TopicPartition::new(DATA, 1);
const CLIENT: NodeId = NodeId(50);
const CONTROLLER: NodeId = NodeId(100);

fn config() -> TxnCoordinatorConfig {
    TxnCoordinatorConfig {
        topic: Some(STATE),
        partitions: 1,
        offsets_topic: crate::record::TopicId(99),
        offsets_partitions: 1,
        bump_on_end: false,
        max_timeout: ms(900_000),
        abort_check_interval: ms(10_000),
        retry_backoff: ms(100),
        request_timeout: ms(30_000),
    }
}

struct Rig {
    coord: TransactionCoordinator,
    host: Host,
    log: FakeLog,
    corr: u64,
    /// Timers set and not fired yet.
    timers: Vec<(Instant, Timer)>,
}

/// Messages to the client, and the WriteTxnMarkers sent to leaders.
fn split(sent: Vec<(NodeId, Message)>) -> (Vec<Message>, Vec<WriteTxnMarkersRequest>) {
    let mut replies = Vec::new();
    let mut markers = Vec::new();
    for (to, m) in sent {
        match m {
            Message::WriteTxnMarkersRequest(r) => markers.push(r),
            other => {
                assert_eq!(to, CLIENT, "{other:?}");
                replies.push(other);
            }
        }
    }
    (replies, markers)
}

impl Rig {
    /// Broker 0 leads `__transaction_state`-0 at epoch 1; A is led by broker 1, B by 2.
    fn new(bump_on_end: bool) -> Rig {
        let mut log = FakeLog::default();
        let state = TopicPartition::new(STATE, 0);
        log.epochs.insert(state, 1);
        log.leaders.insert(state, NodeId(0));
        log.leaders.insert(A, NodeId(1));
        log.leaders.insert(B, NodeId(2));
        let mut rig = Rig {
            coord: TransactionCoordinator::new(TxnCoordinatorConfig {
                bump_on_end,
                ..config()
            }),
            host: Host::new(NodeId(0)),
            log,
            corr: 0,
            timers: Vec::new(),
        };
        rig.lead(Some(1));
        rig
    }

    fn lead(&mut self, epoch: Option<u32>) {
        let (c, log) = (&mut self.coord, &mut self.log);
        let tp = TopicPartition::new(STATE, 0);
        self.host.call(|cx| c.on_leadership(cx, tp, epoch, log));
    }

    fn send(&mut self, msg: Message) -> Vec<(NodeId, Message)> {
        let (c, log) = (&mut self.coord, &mut self.log);
        self.host
            .call(|cx| c.handle(cx, CLIENT, msg, Some(CONTROLLER), log));
        self.host.sent()
    }

    /// The ISR acknowledges every append in flight.
    fn commit_appends(&mut self) -> Vec<(NodeId, Message)> {
        for token in self.log.commit_all() {
            let (c, log) = (&mut self.coord, &mut self.log);
            self.host
                .call(|cx| c.on_append_done(cx, token, ErrorCode::None, log));
        }
        self.host.sent()
    }

    fn next_corr(&mut self) -> u64 {
        self.corr += 1;
        self.corr
    }

    /// InitProducerId of "t" through the controller's fresh id 7: the client's answer.
    /// A rig whose producer (epoch 0) has an open transaction over `partitions`.
    fn in_transaction(bump_on_end: bool, partitions: &[TopicPartition]) -> Rig {
        let mut rig = Rig::new(bump_on_end);
        rig.init_new();
        assert_eq!(rig.add(0, partitions), ErrorCode::None);
        rig
    }

    /// InitProducerId of "t" (no id yet, a 60 s transaction timeout, KIP-890 part 2): what
    /// the coordinator sent at once.
    fn send_init_producer_id(&mut self) -> Vec<(NodeId, Message)> {
        let correlation_id = self.next_corr();
        self.send(Message::InitProducerIdRequest(InitProducerIdRequest {
            correlation_id,
            transactional_id: Some("t".into()),
            producer_id: -1,
            producer_epoch: -1,
            transaction_timeout: Some(ms(60_000)),
            transaction_version_2: true,
        }))
    }

    fn init_new(&mut self) -> InitProducerIdResponse {
        let sent = self.send_init_producer_id();
        let [(to, Message::InitProducerIdRequest(ask))] = sent.as_slice() else {
            panic!("asks the controller for an id: {sent:?}");
        };
        assert_eq!((*to, ask.transactional_id.as_ref()), (CONTROLLER, None));
        let resp = InitProducerIdResponse {
            correlation_id: ask.correlation_id,
            error: ErrorCode::None,
            producer_id: 7,
            producer_epoch: 0,
        };
        let (c, log) = (&mut self.coord, &mut self.log);
        self.host
            .call(|cx| c.on_init_producer_id_response(cx, resp, log));
        assert!(
            self.host.sent().is_empty(),
            "answers once the state is in the log"
        );
        init_reply(split(self.commit_appends()).0)
    }

    /// InitProducerId of "t" when it exists: the answer and the markers sent with it.
    fn init_again(&mut self) -> (InitProducerIdResponse, Vec<WriteTxnMarkersRequest>) {
        let mut sent = self.send_init_producer_id();
        sent.extend(self.commit_appends());
        let (replies, markers) = split(sent);
        (init_reply(replies), markers)
    }

    fn add(&mut self, epoch: i16, partitions: &[TopicPartition]) -> ErrorCode {
        let correlation_id = self.next_corr();
        let mut sent = self.send(Message::AddPartitionsToTxnRequest(
            AddPartitionsToTxnRequest {
                correlation_id,
                transactional_id: "t".into(),
                producer_id: 7,
                producer_epoch: epoch,
                partitions: partitions.to_vec(),
                verify_only: false,
            },
        ));
        sent.extend(self.commit_appends());
        match sent.as_slice() {
            [(CLIENT, Message::AddPartitionsToTxnResponse(r))] => r.error,
            other => panic!("one answer: {other:?}"),
        }
    }

    /// EndTxn: the answer and the markers sent with it.
    fn end(&mut self, epoch: i16, commit: bool) -> (EndTxnResponse, Vec<WriteTxnMarkersRequest>) {
        let correlation_id = self.next_corr();
        let mut sent = self.send(Message::EndTxnRequest(EndTxnRequest {
            correlation_id,
            transactional_id: "t".into(),
            producer_id: 7,
            producer_epoch: epoch,
            commit,
        }));
        sent.extend(self.commit_appends());
        let (replies, markers) = split(sent);
        match replies.as_slice() {
            [Message::EndTxnResponse(r)] => (r.clone(), markers),
            other => panic!("one EndTxn answer: {other:?}"),
        }
    }

    fn answer_markers(&mut self, markers: &[WriteTxnMarkersRequest], error: ErrorCode) {
        for m in markers {
            let resp = WriteTxnMarkersResponse {
                correlation_id: m.correlation_id,
                producer_id: m.producer_id,
                results: m.partitions.iter().map(|p| (*p, error)).collect(),
            };
            let (c, log) = (&mut self.coord, &mut self.log);
            self.host
                .call(|cx| c.on_write_txn_markers_response(cx, resp, log));
        }
    }

    fn markers_sent(&mut self) -> Vec<(NodeId, WriteTxnMarkersRequest)> {
        self.host
            .sent()
            .into_iter()
            .filter_map(|(to, m)| match m {
                Message::WriteTxnMarkersRequest(r) => Some((to, r)),
                _ => None,
            })
            .collect()
    }

    /// Fire every timer of `kind` due by now.
    fn fire(&mut self, kind: u16) {
        let now = self.host.now;
        self.timers.extend(self.host.timers());
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.timers)
            .into_iter()
            .partition(|(at, t)| *at <= now && t.kind == kind);
        self.timers = rest;
        let due: Vec<Timer> = due.into_iter().map(|(_, t)| t).collect();
        assert!(!due.is_empty(), "a timer of kind {kind:#x} is due");
        for t in due {
            let (c, log) = (&mut self.coord, &mut self.log);
            self.host
                .call(|cx| c.on_timer(cx, TxnTimer::decode(t), log));
        }
    }
}

fn init_reply(replies: Vec<Message>) -> InitProducerIdResponse {
    match replies.as_slice() {
        [Message::InitProducerIdResponse(r)] => r.clone(),
        other => panic!("one InitProducerId answer: {other:?}"),
    }
}

#[test]
fn the_partition_is_the_hash_of_the_transactional_id() {
    let c = TransactionCoordinator::new(TxnCoordinatorConfig {
        partitions: 50,
        ..config()
    });
    // Java: "t".hashCode() = 116; "my-txn-1".hashCode() = -1894316499.
    assert_eq!(c.partition_for("t"), Some(TopicPartition::new(STATE, 16)));
    assert_eq!(
        c.partition_for("my-txn-1"),
        Some(TopicPartition::new(STATE, 1_894_316_499 % 50))
    );
    let none = TransactionCoordinator::new(TxnCoordinatorConfig {
        topic: None,
        ..config()
    });
    assert_eq!(none.partition_for("t"), None, "no topic, no coordinator");
}

#[test]
fn a_committed_transaction_writes_its_markers_then_completes() {
    let mut rig = Rig::new(false);
    let init = rig.init_new();
    assert_eq!(
        (init.error, init.producer_id, init.producer_epoch),
        (ErrorCode::None, 7, 0)
    );
    assert_eq!(rig.add(0, &[A, B]), ErrorCode::None);
    assert_eq!(
        rig.add(0, &[A]),
        ErrorCode::None,
        "already in: nothing written"
    );
    assert!(rig.log.appended.is_empty());
    assert_eq!(rig.coord.state("t"), Some((7, 0, TxnState::Ongoing)));
    let (reply, markers) = rig.end(0, true);
    assert_eq!(reply.error, ErrorCode::None);
    assert_eq!(rig.coord.state("t"), Some((7, 0, TxnState::PrepareCommit)));
    let mut targets: Vec<(Vec<TopicPartition>, ControlMarker, i16)> = markers
        .iter()
        .map(|m| (m.partitions.clone(), m.marker, m.producer_epoch))
        .collect();
    targets.sort_by_key(|t| t.0.clone());
    assert_eq!(
        targets,
        vec![
            (vec![A], ControlMarker::Commit, 0),
            (vec![B], ControlMarker::Commit, 0)
        ]
    );
    rig.answer_markers(&markers[..1], ErrorCode::None);
    assert!(
        rig.log.appended.is_empty(),
        "one partition still owes its marker"
    );
    rig.answer_markers(&markers[1..], ErrorCode::None);
    rig.commit_appends();
    assert_eq!(rig.coord.state("t"), Some((7, 0, TxnState::CompleteCommit)));
    let (retry, markers) = rig.end(0, true);
    assert_eq!(
        (retry.error, markers.len()),
        (ErrorCode::None, 0),
        "a retry succeeds"
    );
}

#[test]
fn a_new_leader_of_the_state_partition_reloads_and_resends_the_markers() {
    let mut rig = Rig::in_transaction(false, &[A, B]);
    let (_, markers) = rig.end(0, false);
    assert_eq!(markers.len(), 2);
    // Broker 0 loses the partition before any marker is answered; broker 3 takes over.
    rig.lead(None);
    assert_eq!(rig.coord.state("t"), None);
    rig.answer_markers(&markers, ErrorCode::None);
    assert!(
        rig.log.appended.is_empty(),
        "the old coordinator completes nothing"
    );
    let state = TopicPartition::new(STATE, 0);
    rig.log.epochs.insert(state, 2);
    let mut new = Rig {
        coord: TransactionCoordinator::new(config()),
        host: Host::new(NodeId(3)),
        log: std::mem::take(&mut rig.log),
        corr: 100,
        timers: Vec::new(),
    };
    new.lead(Some(2));
    assert_eq!(new.coord.state("t"), Some((7, 0, TxnState::PrepareAbort)));
    let resent = new.markers_sent();
    assert_eq!(resent.len(), 2);
    assert!(resent
        .iter()
        .all(|(_, m)| m.marker == ControlMarker::Abort && m.coordinator_epoch == 2));
    let resent: Vec<WriteTxnMarkersRequest> = resent.into_iter().map(|(_, m)| m).collect();
    new.answer_markers(&resent, ErrorCode::None);
    new.commit_appends();
    assert_eq!(new.coord.state("t"), Some((7, 0, TxnState::CompleteAbort)));
}

#[test]
fn the_timeout_aborts_an_open_transaction_under_a_bumped_epoch() {
    let mut rig = Rig::in_transaction(false, &[A]);
    rig.host.now = Instant::from_millis(10_000);
    rig.fire(TIMER_ABORT_CHECK);
    assert!(rig.log.appended.is_empty(), "not timed out at 10 s");
    rig.host.now = Instant::from_millis(70_000);
    rig.fire(TIMER_ABORT_CHECK);
    let (_, markers) = split(rig.commit_appends());
    assert_eq!(rig.coord.state("t"), Some((7, 1, TxnState::PrepareAbort)));
    assert_eq!(markers.len(), 1);
    assert_eq!(
        (markers[0].marker, markers[0].producer_epoch),
        (ControlMarker::Abort, 1)
    );
    let (late, _) = rig.end(0, true);
    assert_eq!(
        late.error,
        ErrorCode::ProducerFenced,
        "the producer that left it open"
    );
}

#[test]
fn init_producer_id_fences_the_previous_instance_and_aborts_its_transaction() {
    let mut rig = Rig::in_transaction(false, &[A]);
    let (fenced, markers) = rig.init_again();
    assert_eq!(fenced.error, ErrorCode::ConcurrentTransactions);
    assert_eq!(
        (markers.len(), markers[0].marker, markers[0].producer_epoch),
        (1, ControlMarker::Abort, 1)
    );
    assert_eq!(rig.add(0, &[B]), ErrorCode::ProducerFenced, "the zombie");
    rig.answer_markers(&markers, ErrorCode::None);
    rig.commit_appends();
    let (again, _) = rig.init_again();
    assert_eq!((again.error, again.producer_epoch), (ErrorCode::None, 2));
}

#[test]
fn markers_are_retried_with_the_new_leader_and_cancelled_when_fenced() {
    let mut rig = Rig::in_transaction(false, &[A]);
    let (_, markers) = rig.end(0, true);
    rig.answer_markers(&markers, ErrorCode::NotLeaderOrFollower);
    rig.log.leaders.insert(A, NodeId(4));
    rig.host.now = Instant::from_millis(100);
    rig.fire(TIMER_MARKER_RETRY);
    let resent = rig.markers_sent();
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].0, NodeId(4), "to the partition's new leader");
    // No answer within the request timeout: asked again.
    rig.host.now = Instant::from_millis(30_100);
    rig.fire(TIMER_MARKER_TIMEOUT);
    rig.host.now = Instant::from_millis(30_200);
    rig.fire(TIMER_MARKER_RETRY);
    let again: Vec<WriteTxnMarkersRequest> = rig.markers_sent().into_iter().map(|m| m.1).collect();
    assert_eq!(again.len(), 1);
    rig.answer_markers(&again, ErrorCode::InvalidProducerEpoch);
    assert!(rig.log.appended.is_empty(), "cancelled: nothing completes");
    assert_eq!(rig.coord.state("t"), Some((7, 0, TxnState::PrepareCommit)));
}

/// Markers for partitions on two leaders that both keep failing: each round sends one
/// request per leader and leaves one retry due, however many rounds. Before the retry was
/// deduplicated per id, each failed request scheduled a retry of its own and each retry sent
/// to both leaders, so the requests doubled every round (a `__transaction_state` leader's
/// event queue grew past 1 GiB in a 30 s scenario whose partitions lost their leaders).
/// Kafka re-enqueues each failed partition once (`TransactionMarkerRequestCompletionHandler`
/// -> `TransactionMarkerChannelManager.addTxnMarkersToBrokerQueue`).
#[test]
fn failing_markers_keep_one_retry_per_transaction() {
    let mut rig = Rig::in_transaction(false, &[A, B]);
    let (_, mut markers) = rig.end(0, true);
    assert_eq!(markers.len(), 2, "one WriteTxnMarkers per leader");
    for round in 1..=12u64 {
        rig.answer_markers(&markers, ErrorCode::NotLeaderOrFollower);
        rig.timers.extend(rig.host.timers());
        let retries = (rig.timers.iter())
            .filter(|(_, t)| t.kind == TIMER_MARKER_RETRY)
            .count();
        assert_eq!(retries, 1, "round {round}: one retry due");
        rig.host.now = Instant::from_millis(100 * round);
        rig.fire(TIMER_MARKER_RETRY);
        markers = rig.markers_sent().into_iter().map(|m| m.1).collect();
        assert_eq!(markers.len(), 2, "round {round}: one request per leader");
    }
    rig.answer_markers(&markers, ErrorCode::None);
    rig.commit_appends();
    assert_eq!(rig.coord.state("t"), Some((7, 0, TxnState::CompleteCommit)));
}

#[test]
fn kip_890_part_2_answers_end_txn_with_the_bumped_epoch() {
    let mut rig = Rig::in_transaction(true, &[A]);
    let (reply, markers) = rig.end(0, true);
    assert_eq!((reply.error, reply.producer_epoch), (ErrorCode::None, 1));
    assert_eq!(markers[0].producer_epoch, 1);
}

#[test]
fn requests_to_a_broker_that_does_not_coordinate_the_id_are_refused() {
    let mut rig = Rig::new(false);
    rig.lead(None);
    let sent = rig.send(Message::EndTxnRequest(EndTxnRequest {
        correlation_id: 1,
        transactional_id: "t".into(),
        producer_id: 7,
        producer_epoch: 0,
        commit: true,
    }));
    assert!(matches!(
        sent.as_slice(),
        [(CLIENT, Message::EndTxnResponse(r))] if r.error == ErrorCode::NotCoordinator
    ));
    // A failed append leaves the state as it was and answers COORDINATOR_NOT_AVAILABLE.
    let mut rig = Rig::new(false);
    rig.init_new();
    rig.log.fail_appends = Some(ErrorCode::NotEnoughReplicas);
    let correlation_id = 9;
    let sent = rig.send(Message::AddPartitionsToTxnRequest(
        AddPartitionsToTxnRequest {
            correlation_id,
            transactional_id: "t".into(),
            producer_id: 7,
            producer_epoch: 0,
            partitions: vec![A],
            verify_only: false,
        },
    ));
    assert!(matches!(
        sent.as_slice(),
        [(CLIENT, Message::AddPartitionsToTxnResponse(r))]
            if r.error == ErrorCode::CoordinatorNotAvailable
    ));
    assert_eq!(rig.coord.state("t"), Some((7, 0, TxnState::Empty)));
}

#[test]
fn add_offsets_puts_the_groups_offsets_partition_in_the_transaction_and_its_marker_goes_there() {
    let mut rig = Rig::new(false);
    let offsets = TopicPartition::new(TopicId(99), 0);
    rig.log.leaders.insert(offsets, NodeId(3));
    assert_eq!(rig.init_new().error, ErrorCode::None);
    assert_eq!(rig.add(0, &[A]), ErrorCode::None);
    let correlation_id = rig.next_corr();
    let add_offsets = |epoch| {
        Message::AddOffsetsToTxnRequest(AddOffsetsToTxnRequest {
            correlation_id,
            transactional_id: "t".into(),
            producer_id: 7,
            producer_epoch: epoch,
            group: "billing".into(),
        })
    };
    let mut sent = rig.send(add_offsets(0));
    sent.extend(rig.commit_appends());
    match sent.as_slice() {
        [(CLIENT, Message::AddOffsetsToTxnResponse(r))] => assert_eq!(r.error, ErrorCode::None),
        other => panic!("one answer: {other:?}"),
    }
    // A stale epoch is fenced like an AddPartitionsToTxn.
    match rig.send(add_offsets(-1)).as_slice() {
        [(CLIENT, Message::AddOffsetsToTxnResponse(r))] => {
            assert_ne!(r.error, ErrorCode::None)
        }
        other => panic!("one answer: {other:?}"),
    }
    let (resp, markers) = rig.end(0, true);
    assert_eq!(resp.error, ErrorCode::None);
    let mut marked: Vec<TopicPartition> =
        markers.iter().flat_map(|m| m.partitions.clone()).collect();
    marked.sort();
    assert_eq!(
        marked,
        vec![A, offsets],
        "the offsets partition gets the marker too"
    );
}
