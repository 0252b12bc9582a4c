//! The metadata quorum driven by hand: what an active controller publishes before and after a
//! majority holds a version, what a standby acknowledges, how votes are granted, and what a
//! deposed controller does with what it had not committed.

use super::state::{LOG_FILE, VOTE_FILE};
use super::*;
use crate::node::DiskDone;
use crate::testkit::Host;

const C0: NodeId = NodeId(100);
const C1: NodeId = NodeId(101);
const C2: NodeId = NodeId(102);
const BROKERS: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];

fn config(controllers: &[NodeId]) -> ControllerConfig {
    ControllerConfig {
        controllers: controllers.to_vec(),
        brokers: BROKERS.to_vec(),
        topics: vec![NewTopic {
            topic: crate::record::TopicId(0),
            partitions: 1,
            replication_factor: 3,
        }],
        broker: BrokerConfig::default(),
    }
}

/// The kinds of messages sent, with their destinations.
fn kinds(sent: &[(NodeId, Message)]) -> Vec<(NodeId, &'static str)> {
    sent.iter().map(|(to, m)| (*to, m.kind())).collect()
}

fn leader_and_isr_to_brokers(sent: &[(NodeId, Message)]) -> Vec<(NodeId, u32, u64)> {
    sent.iter()
        .filter_map(|(to, m)| match m {
            Message::LeaderAndIsrRequest(r) => Some((*to, r.controller_epoch, r.correlation_id)),
            _ => None,
        })
        .collect()
}

fn ack(epoch: u32, version: u64) -> Message {
    Message::ControllerSyncAck(ControllerSyncAck {
        controller_epoch: epoch,
        version,
    })
}

fn new_producer_id(correlation_id: u64) -> Message {
    Message::InitProducerIdRequest(InitProducerIdRequest {
        correlation_id,
        transactional_id: None,
        producer_id: -1,
        producer_epoch: -1,
        transaction_timeout: None,
        transaction_version_2: false,
    })
}

/// The first controller of `controllers`, started: active at epoch 1 with version 1 appended.
fn started_primary(controllers: &[NodeId]) -> (Controller, Host) {
    let mut ctl = Controller::new(config(controllers));
    let mut host = Host::new(controllers[0]);
    host.call(|cx| ctl.on_start(cx));
    (ctl, host)
}

#[test]
fn a_change_reaches_brokers_only_once_a_majority_of_controllers_holds_it() {
    let (mut ctl, mut host) = started_primary(&[C0, C1]);
    assert!(ctl.is_active());
    assert_eq!(ctl.state().position(), (1, 1));
    let sent = host.sent();
    assert_eq!(
        kinds(&sent),
        vec![(C1, "ControllerSync")],
        "nothing to brokers yet"
    );
    assert_eq!(ctl.committed_version(), None);

    host.call(|cx| ctl.on_message(cx, C1, ack(1, 1)));
    let sent = host.sent();
    let expected: Vec<_> = BROKERS.iter().map(|b| (*b, 1, 1)).collect();
    assert_eq!(
        leader_and_isr_to_brokers(&sent),
        expected,
        "committed: published"
    );
    assert_eq!(ctl.committed_version(), Some(1));

    // A new producer id is a change: answered only once the standby holds it.
    host.call(|cx| ctl.on_message(cx, BROKERS[0], new_producer_id(9)));
    assert_eq!(kinds(&host.sent()), vec![(C1, "ControllerSync")]);
    // An ack of an older version or of another epoch commits nothing.
    host.call(|cx| ctl.on_message(cx, C1, ack(1, 1)));
    host.call(|cx| ctl.on_message(cx, C1, ack(0, 2)));
    assert_eq!(host.sent().len(), 0);
    assert_eq!(ctl.committed_version(), Some(1));
    host.call(|cx| ctl.on_message(cx, C1, ack(1, 2)));
    let sent = host.sent();
    assert!(
        matches!(&sent[..], [(to, Message::InitProducerIdResponse(r))]
            if *to == BROKERS[0] && r.correlation_id == 9 && r.producer_id == 1000),
        "{sent:?}"
    );
    assert_eq!(ctl.committed_version(), Some(2));
}

#[test]
fn a_lone_controller_commits_at_once() {
    let (mut ctl, mut host) = started_primary(&[C0]);
    let sent = host.sent();
    let expected: Vec<_> = BROKERS.iter().map(|b| (*b, 1, 1)).collect();
    assert_eq!(leader_and_isr_to_brokers(&sent), expected);
    host.call(|cx| ctl.on_message(cx, BROKERS[0], new_producer_id(3)));
    assert!(matches!(
        &host.sent()[..],
        [(_, Message::InitProducerIdResponse(_))]
    ));
}

/// A standby's copy of version `version` of epoch `epoch`, pushed by `leader`.
fn sync_of(ctl: &Controller, epoch: u32, version: u64) -> Message {
    let s = ctl.state();
    Message::ControllerSync(ControllerSync {
        controller_epoch: epoch,
        version,
        topics: s.topics.clone(),
        partitions: s.partitions.values().cloned().collect(),
        next_producer_id: s.next_producer_id,
        broker_incarnations: Vec::new(),
    })
}

fn flushed(file: FileId, token: u64) -> DiskDone {
    DiskDone { file, token }
}

use crate::node::FileId;

#[test]
fn a_standby_acknowledges_a_version_once_it_is_durable() {
    let (primary, _) = started_primary(&[C0, C1]);
    let mut ctl = Controller::new(config(&[C0, C1]));
    let mut host = Host::new(C1);
    host.call(|cx| ctl.on_start(cx));
    assert!(!ctl.is_active());
    host.sent();
    host.call(|cx| ctl.on_message(cx, C0, sync_of(&primary, 1, 1)));
    assert_eq!(host.sent().len(), 0, "not durable yet");
    // The fsync of an older write says nothing of this one.
    host.call(|cx| ctl.on_disk(cx, flushed(LOG_FILE, 0)));
    assert_eq!(host.sent().len(), 0);
    host.call(|cx| ctl.on_disk(cx, flushed(LOG_FILE, 1)));
    let sent = host.sent();
    assert!(
        matches!(&sent[..], [(C0, Message::ControllerSyncAck(a))]
            if a.controller_epoch == 1 && a.version == 1),
        "{sent:?}"
    );
    // The periodic repeat of a durable version is acknowledged again (a lost ack).
    host.call(|cx| ctl.on_message(cx, C0, sync_of(&primary, 1, 1)));
    assert_eq!(kinds(&host.sent()), vec![(C0, "ControllerSyncAck")]);
}

fn vote(epoch: u32, last_epoch: u32, last_version: u64) -> Message {
    Message::VoteRequest(VoteRequest {
        candidate_epoch: epoch,
        last_epoch,
        last_version,
    })
}

fn granted(sent: &[(NodeId, Message)]) -> Vec<(NodeId, u32, bool)> {
    sent.iter()
        .filter_map(|(to, m)| match m {
            Message::VoteResponse(r) => Some((*to, r.candidate_epoch, r.granted)),
            _ => None,
        })
        .collect()
}

/// A standby of three controllers holding version 3 of epoch 1, durably.
fn synced_standby(me: NodeId) -> (Controller, Host) {
    let (primary, _) = started_primary(&[C0, C1, C2]);
    let mut ctl = Controller::new(config(&[C0, C1, C2]));
    let mut host = Host::new(me);
    host.call(|cx| ctl.on_start(cx));
    host.call(|cx| ctl.on_message(cx, C0, sync_of(&primary, 1, 3)));
    host.call(|cx| ctl.on_disk(cx, flushed(LOG_FILE, 3)));
    host.sent();
    (ctl, host)
}

#[test]
fn a_voter_grants_one_vote_per_epoch_and_only_to_an_up_to_date_log() {
    let (mut ctl, mut host) = synced_standby(C1);
    // A log behind this voter's: refused, though the epoch is new.
    host.call(|cx| ctl.on_message(cx, C2, vote(2, 1, 2)));
    assert_eq!(granted(&host.sent()), vec![(C2, 2, false)]);
    // An up-to-date log: granted once the vote is durable.
    host.call(|cx| ctl.on_message(cx, C0, vote(2, 1, 3)));
    assert_eq!(host.sent().len(), 0, "the vote is not durable yet");
    host.call(|cx| ctl.on_disk(cx, flushed(VOTE_FILE, 2)));
    assert_eq!(granted(&host.sent()), vec![(C0, 2, true)]);
    // Another candidate in the same epoch, even with a longer log: refused.
    host.call(|cx| ctl.on_message(cx, C2, vote(2, 1, 9)));
    assert_eq!(granted(&host.sent()), vec![(C2, 2, false)]);
    // The same candidate asking again gets the same answer.
    host.call(|cx| ctl.on_message(cx, C0, vote(2, 1, 3)));
    assert_eq!(granted(&host.sent()), vec![(C0, 2, true)]);
    // A sync of the epoch this voter voted past is refused.
    host.call(|cx| ctl.on_message(cx, C2, vote(3, 1, 3)));
    host.call(|cx| ctl.on_disk(cx, flushed(VOTE_FILE, 3)));
    host.sent();
    let (primary, _) = started_primary(&[C0, C1, C2]);
    host.call(|cx| ctl.on_message(cx, C0, sync_of(&primary, 2, 4)));
    assert_eq!(host.sent().len(), 0);
    assert_eq!(ctl.state().position(), (1, 3));
}

#[test]
fn a_voter_remembers_its_vote_across_a_restart() {
    let (mut ctl, mut host) = synced_standby(C1);
    host.call(|cx| ctl.on_message(cx, C0, vote(2, 1, 3)));
    host.call(|cx| ctl.on_disk(cx, flushed(VOTE_FILE, 2)));
    host.sent();
    let mut restarted = Controller::new(config(&[C0, C1, C2]));
    host.call(|cx| restarted.on_start(cx));
    host.call(|cx| restarted.on_message(cx, C2, vote(2, 1, 3)));
    assert_eq!(granted(&host.sent()), vec![(C2, 2, false)]);
}

#[test]
fn a_candidate_wins_with_a_majority_and_publishes_after_its_first_commit() {
    let (mut ctl, mut host) = synced_standby(C1);
    let session = BrokerConfig::default().broker_session_timeout;
    // The brokers still reach this controller; the active one has gone silent.
    let later = session.as_millis() as u64 + 100;
    for b in BROKERS {
        host.at(later, |cx| {
            ctl.on_message(
                cx,
                b,
                Message::BrokerHeartbeatRequest(BrokerHeartbeatRequest {
                    correlation_id: 1,
                    broker: b,
                    broker_epoch: 1,
                    controller_epoch: 1,
                }),
            )
        });
    }
    let effects = host.at(later, |cx| ctl.on_timer(cx, ControllerTimer::Sync.into()));
    let votes: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            crate::node::Effect::Send {
                to,
                msg: Message::VoteRequest(r),
            } => Some((*to, r.candidate_epoch, r.last_epoch, r.last_version)),
            _ => None,
        })
        .collect();
    assert_eq!(votes, vec![(C0, 2, 1, 3), (C2, 2, 1, 3)]);
    assert!(!ctl.is_active());
    // One other vote is not a majority of three until its own vote is durable.
    host.call(|cx| {
        ctl.on_message(
            cx,
            C2,
            Message::VoteResponse(VoteResponse {
                candidate_epoch: 2,
                granted: true,
            }),
        )
    });
    assert!(!ctl.is_active());
    host.call(|cx| ctl.on_disk(cx, flushed(VOTE_FILE, 2)));
    assert!(ctl.is_active());
    assert_eq!(ctl.state().position(), (2, 4));
    let sent = host.sent();
    assert_eq!(leader_and_isr_to_brokers(&sent), vec![]);
    host.call(|cx| ctl.on_message(cx, C2, ack(2, 4)));
    let expected: Vec<_> = BROKERS.iter().map(|b| (*b, 2, 4)).collect();
    assert_eq!(leader_and_isr_to_brokers(&host.sent()), expected);
}

#[test]
fn a_deposed_controller_never_publishes_what_it_had_not_committed() {
    let (mut ctl, mut host) = started_primary(&[C0, C1, C2]);
    host.call(|cx| ctl.on_message(cx, C1, ack(1, 1)));
    host.sent();
    host.call(|cx| ctl.on_message(cx, BROKERS[0], new_producer_id(5)));
    assert_eq!(ctl.state().position(), (1, 2));
    // A candidate of a newer epoch (whose log lacks version 2): this controller resigns and
    // refuses its vote.
    host.call(|cx| ctl.on_message(cx, C2, vote(2, 1, 1)));
    assert!(!ctl.is_active());
    assert_eq!(granted(&host.sent()), vec![(C2, 2, false)]);
    // The ack that would have committed version 2 arrives late: nothing goes out.
    host.call(|cx| ctl.on_message(cx, C1, ack(1, 2)));
    host.call(|cx| ctl.on_timer(cx, ControllerTimer::Liveness.into()));
    let sent = host.sent();
    assert!(
        sent.iter().all(|(to, _)| !BROKERS.contains(to)),
        "a deposed controller told brokers: {sent:?}"
    );
    assert_eq!(ctl.committed_version(), None);
    // Heartbeats are not answered with metadata either.
    host.at(1000, |cx| {
        ctl.on_message(
            cx,
            BROKERS[1],
            Message::BrokerHeartbeatRequest(BrokerHeartbeatRequest {
                correlation_id: 2,
                broker: BROKERS[1],
                broker_epoch: 0,
                controller_epoch: 1,
            }),
        )
    });
    assert_eq!(host.sent().len(), 0);
}
