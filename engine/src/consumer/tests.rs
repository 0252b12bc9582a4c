//! Unit tests of the consumer's commit logic: what each client's auto-commit would commit.

use super::*;
use crate::app::{CommitMode, Mark};
use crate::protocol::ErrorCode;
use crate::record::TopicId;
use crate::testkit::Host;

const TP0: TopicPartition = TopicPartition::new(TopicId(1), 0);
const TP1: TopicPartition = TopicPartition::new(TopicId(1), 1);

fn consumer(client: &str, commit: CommitMode) -> Consumer {
    let spec = ConsumerSpec {
        group_index: 0,
        member_index: 0,
        group: "g".into(),
        topics: vec![TopicId(1)],
        topic_names: BTreeMap::new(),
        handler: HandlerSpec {
            commit,
            mark: Mark::AfterProcess,
            ..HandlerSpec::default()
        },
        bootstrap: vec![NodeId(0)],
        dlq_topic: None,
        database: None,
        fetch_paused_until: Instant::ZERO,
        standalone: None,
        produce_to: None,
    };
    let mut c = Consumer::new(spec, ConsumerConfig::for_client(client, None).unwrap());
    // Position 100 (records up to 99 returned by poll), marks at 60 (processed up to 59).
    for (tp, committed) in [(TP0, Some(50)), (TP1, Some(100))] {
        c.parts.insert(
            tp,
            PartState {
                position: Some(100),
                committed,
                marked: Some(60),
                need: Need::Nothing,
                ..PartState::default()
            },
        );
        c.group.owned.push(tp);
    }
    c
}

#[test]
fn java_auto_commit_commits_positions_not_marks() {
    let c = consumer("java", CommitMode::Auto);
    assert!(c.auto_commit_enabled());
    let offsets = c.auto_commit_offsets(&[TP0, TP1]);
    // TP1 is already committed at its position: nothing newer to commit there.
    assert_eq!(offsets, vec![(TP0, 100, None)]);
}

#[test]
fn sarama_and_librdkafka_auto_commit_commit_marks() {
    for client in ["sarama", "librdkafka"] {
        let c = consumer(client, CommitMode::Auto);
        let offsets = c.auto_commit_offsets(&[TP0, TP1]);
        assert_eq!(offsets, vec![(TP0, 60, None)], "{client}");
    }
}

#[test]
fn manual_commit_modes_turn_auto_commit_off() {
    let c = consumer("sarama", CommitMode::Sync);
    assert!(!c.auto_commit_enabled());
    assert_eq!(c.marked_offsets(), vec![(TP0, 60, None)]);
}

#[test]
fn kafka_go_commits_per_message_unless_given_an_interval() {
    let c = consumer("kafka-go", CommitMode::Auto);
    assert_eq!(c.auto_style, AutoCommitStyle::PerRecordSync);
    let mut cfg = ConsumerConfig::for_client("kafka-go", None).unwrap();
    crate::config::Configurable::set(
        &mut cfg,
        "auto.commit.interval.ms",
        &crate::config::ConfigValue::Int(1000),
    )
    .unwrap();
    assert_eq!(cfg.auto_commit_style(), AutoCommitStyle::Timer);
}

#[test]
fn sync_commits_merge_to_the_newest_offset_per_partition() {
    let mut c = consumer("java", CommitMode::Sync);
    c.start_sync_commit(vec![(TP0, 70, None)]);
    c.start_sync_commit(vec![(TP0, 65, None), (TP1, 120, Some(3))]);
    let sc = c.sync_commit.as_ref().expect("queued");
    assert_eq!(sc.offsets(), &[(TP0, 70, None), (TP1, 120, Some(3))]);
}

// ------------------------------------------------------------ connections and correlation

const ME: NodeId = NodeId(9);
const BROKER: NodeId = NodeId(0);
const OTHER: NodeId = NodeId(1);

/// Drives one consumer (node n9) by hand: its rng stream continues across incarnations, as
/// the simulator's does.
fn host() -> Host {
    Host::with_seed(ME, 3)
}

fn java_consumer() -> Consumer {
    let mut c = consumer("java", CommitMode::Sync);
    c.parts.clear();
    c.group.owned.clear();
    c
}

/// The correlation id of the metadata request among `effects`.
fn metadata_request(effects: &[crate::node::Effect]) -> Option<u64> {
    effects.iter().find_map(|e| match e {
        crate::node::Effect::Send {
            to,
            msg: Message::MetadataRequest(r),
        } if *to == BROKER => Some(r.correlation_id),
        _ => None,
    })
}

fn metadata_response(corr: u64) -> Message {
    Message::MetadataResponse(crate::protocol::MetadataResponse {
        correlation_id: corr,
        brokers: vec![BROKER, OTHER],
        controller: None,
        topics: vec![(TopicId(1), 2)],
        partitions: Vec::new(),
    })
}

fn closed(effects: &[crate::node::Effect]) -> Vec<NodeId> {
    effects
        .iter()
        .filter_map(|e| match e {
            crate::node::Effect::CloseConnection { peer } => Some(*peer),
            _ => None,
        })
        .collect()
}

#[test]
fn a_restarted_consumer_ignores_answers_meant_for_its_previous_process() {
    let mut host = host();
    let mut old = java_consumer();
    let effects = host.at(0, |cx| old.on_start(cx));
    let old_corr = metadata_request(&effects).expect("the first incarnation asks for metadata");
    // The process restarts: a fresh value, as the host builds it.
    let mut new = java_consumer();
    let effects = host.at(5, |cx| new.on_start(cx));
    let new_corr = metadata_request(&effects).expect("the second incarnation asks too");
    assert_ne!(old_corr, new_corr, "incarnations number requests apart");
    // The answer to the old process's request: not taken for the new one.
    host.at(6, |cx| {
        new.on_message(cx, BROKER, metadata_response(old_corr))
    });
    assert!(new.meta.brokers.is_empty());
    assert!(new.inflight.contains_key(&new_corr));
    // An answer with the right id from a broker the request did not go to: not taken either.
    host.at(7, |cx| {
        new.on_message(cx, OTHER, metadata_response(new_corr))
    });
    assert!(new.meta.brokers.is_empty());
    // The real answer is.
    host.at(8, |cx| {
        new.on_message(cx, BROKER, metadata_response(new_corr))
    });
    assert_eq!(new.meta.brokers, vec![BROKER, OTHER]);
    assert!(!new.inflight.contains_key(&new_corr));
}

#[test]
fn a_timed_out_request_closes_its_connection_and_the_retry_waits_for_the_backoff() {
    let mut host = host();
    let mut c = java_consumer();
    host.unreachable.0.insert(BROKER);
    let effects = host.at(0, |cx| c.on_start(cx));
    let corr = metadata_request(&effects).expect("metadata request");
    // No handshake: Java's connection setup timeout (10 s +-20 %) is not over at 7.9 s, and
    // is over at 12 s.
    let effects = host.at(7_900, |cx| {
        c.on_timer(cx, timer::ConsumerTimer::Tick.into())
    });
    assert!(closed(&effects).is_empty(), "{effects:?}");
    let effects = host.at(12_000, |cx| {
        c.on_timer(cx, timer::ConsumerTimer::Tick.into())
    });
    assert_eq!(closed(&effects), vec![BROKER]);
    assert!(!c.inflight.contains_key(&corr));
    // The next request to that broker waits for Java's reconnect backoff (50 ms +-20 %)
    // instead of going out at once.
    let effects = host.at(12_001, |cx| {
        let msg = Message::MetadataRequest(crate::protocol::MetadataRequest {
            correlation_id: c.take_corr(),
            topics: vec![TopicId(1)],
        });
        c.send(cx, BROKER, Duration::from_secs(30), Req::Metadata, msg);
    });
    assert!(metadata_request(&effects).is_none(), "held by the backoff");
    let retry = *c.held.keys().next().expect("held request");
    let effects = host.at(12_100, |cx| {
        c.on_timer(cx, timer::ConsumerTimer::Reconnect(BROKER).into())
    });
    assert_eq!(metadata_request(&effects), Some(retry));
    assert!(c.held.is_empty());
    // The second attempt waits twice as long (20 s +-20 %): not over 15.9 s after it began.
    let effects = host.at(28_000, |cx| {
        c.on_timer(cx, timer::ConsumerTimer::Tick.into())
    });
    assert!(closed(&effects).is_empty(), "{effects:?}");
    let effects = host.at(36_200, |cx| {
        c.on_timer(cx, timer::ConsumerTimer::Tick.into())
    });
    assert_eq!(closed(&effects), vec![BROKER], "24 s at most");
    // The abandoned request's late answer changes nothing.
    host.at(36_201, |cx| {
        c.on_message(cx, BROKER, metadata_response(corr))
    });
    assert!(c.meta.brokers.is_empty());
}

#[test]
fn a_reachable_broker_that_does_not_answer_gets_the_request_timeout() {
    // The handshake completed (a paused broker's kernel still accepts): no setup timeout,
    // the request waits its request.timeout.ms (30 s), as Java's `NetworkClient` does.
    let mut host = host();
    let mut c = java_consumer();
    let effects = host.at(0, |cx| c.on_start(cx));
    let corr = metadata_request(&effects).expect("metadata request");
    let effects = host.at(20_000, |cx| {
        c.on_timer(cx, timer::ConsumerTimer::Tick.into())
    });
    assert!(closed(&effects).is_empty(), "{effects:?}");
    assert!(c.inflight.contains_key(&corr));
    let effects = host.at(30_000, |cx| {
        c.on_timer(cx, timer::ConsumerTimer::Tick.into())
    });
    assert_eq!(closed(&effects), vec![BROKER]);
}

#[test]
fn each_client_gives_up_on_an_unreachable_broker_after_its_own_setup_timeout() {
    // (client, not yet at, over at) in ms: sarama Net.DialTimeout 30 s, librdkafka 30 s,
    // kafka-go's Reader Dialer 10 s, Java 10 s +-20 %.
    for (client, before, after) in [
        ("sarama", 29_900, 30_000),
        ("librdkafka", 29_900, 30_000),
        ("kafka-go", 9_900, 10_000),
        ("java", 7_900, 12_000),
    ] {
        let mut host = host();
        host.unreachable.0.insert(BROKER);
        let mut c = consumer(client, CommitMode::Sync);
        c.parts.clear();
        c.group.owned.clear();
        host.at(0, |cx| c.on_start(cx));
        let effects = host.at(before, |cx| {
            c.on_timer(cx, timer::ConsumerTimer::Tick.into())
        });
        assert!(closed(&effects).is_empty(), "{client}: {effects:?}");
        let effects = host.at(after, |cx| {
            c.on_timer(cx, timer::ConsumerTimer::Tick.into())
        });
        assert_eq!(closed(&effects), vec![BROKER], "{client}");
    }
}

#[test]
fn an_answered_request_closes_nothing() {
    let mut host = host();
    let mut c = java_consumer();
    let effects = host.at(0, |cx| c.on_start(cx));
    let corr = metadata_request(&effects).expect("metadata request");
    let effects = host.at(1, |cx| c.on_message(cx, BROKER, metadata_response(corr)));
    assert!(closed(&effects).is_empty());
    let find = c
        .inflight
        .iter()
        .find(|(_, f)| matches!(f.req, Req::FindCoordinator))
        .map(|(corr, f)| (*corr, f.to))
        .expect("looks for the coordinator");
    let answer = Message::FindCoordinatorResponse(crate::protocol::FindCoordinatorResponse {
        correlation_id: find.0,
        error: ErrorCode::None,
        coordinator: Some(BROKER),
    });
    host.at(2, |cx| c.on_message(cx, find.1, answer));
    let effects = host.at(10_000, |cx| {
        c.on_timer(cx, timer::ConsumerTimer::Tick.into())
    });
    assert!(closed(&effects).is_empty(), "{effects:?}");
}

/// The subscription a member of `client` sends in its JoinGroup at generation 3.
fn join_subscription(client: &str) -> crate::protocol::Subscription {
    let mut host = host();
    let mut c = consumer(client, CommitMode::Sync);
    c.group.generation = 3;
    let effects = host.at(0, |cx| c.send_join(cx, BROKER));
    effects
        .into_iter()
        .find_map(|e| match e {
            crate::node::Effect::Send {
                msg: Message::JoinGroupRequest(r),
                ..
            } => Some(r.protocols[0].1.clone()),
            _ => None,
        })
        .expect("a JoinGroup")
}

#[test]
fn sarama_and_kafka_go_join_metadata_carries_no_generation_or_ownership() {
    for client in ["sarama", "kafka-go"] {
        let sub = join_subscription(client);
        assert_eq!(sub.generation, -1, "{client}");
        assert!(sub.owned_partitions.is_empty(), "{client}");
    }
    let java = join_subscription("java");
    assert_eq!(java.generation, 3);
    assert_eq!(java.owned_partitions, vec![TP0, TP1]);
}

// ------------------------------------------------------------ each client's commit failures

fn delivered(offset: u64) -> Delivered {
    Delivered {
        partition: TP0,
        offset,
        value: crate::record::ValueId(offset),
        key: None,
        size: 10,
        leader_epoch: 0,
    }
}

/// A sync commit for a record waiting on the poll loop, answered with `error` after
/// `attempts` attempts, `after_ms` after it started.
fn failed_sync_commit(
    client: &str,
    read_message: bool,
    attempts: u32,
    after_ms: u64,
    error: ErrorCode,
) -> Consumer {
    let mut host = host();
    let mut c = consumer(client, CommitMode::Auto);
    c.procs.all[0].queue.push_back(delivered(99));
    c.start_sync_commit(vec![(TP0, 100, None)]);
    let sc = c.sync_commit.as_mut().expect("queued");
    sc.drops_delivery_on_failure = read_message;
    sc.inflight = true;
    sc.attempts = attempts;
    sc.started = Some(Instant::ZERO);
    let ctx = commit::CommitCtx {
        sync: true,
        generation: c.group.generation,
        offsets: vec![(TP0, 100, None)],
    };
    host.at(after_ms, |cx| c.on_commit_result(cx, ctx, &[], error));
    c
}

#[test]
fn kafka_go_read_message_drops_its_message_when_the_commit_fails_three_times() {
    let e = ErrorCode::RebalanceInProgress;
    // kafka-go retries whatever the error until its third attempt...
    let c = failed_sync_commit("kafka-go", true, 2, 10, e);
    assert!(c.sync_commit.is_some(), "retried");
    assert_eq!(c.procs.all[0].queue.len(), 1);
    // ...then ReadMessage returns the error: the application never gets the message.
    let c = failed_sync_commit("kafka-go", true, 3, 10, e);
    assert!(c.sync_commit.is_none());
    assert!(c.procs.all[0].queue.is_empty(), "the message was dropped");
    // A FetchMessage + CommitMessages application keeps the message it fetched.
    let c = failed_sync_commit("kafka-go", false, 3, 10, e);
    assert_eq!(c.procs.all[0].queue.len(), 1);
}

/// A kafka-go member fenced in the middle of ReadMessage's commit (ILLEGAL_GENERATION: it
/// is now unjoined, generation -1) retries that commit, and its tries, refused before they
/// reach the wire for want of a stable membership, count as attempts: after the third,
/// ReadMessage returns the error, the message is dropped, and the rejoin the commit held
/// back goes out (kafka-go `commitOffsetsWithRetry`: 3 attempts with the commit's own
/// generation). Before, the tries were not counted: the commit was retried every 100 ms for
/// ever and the member never rejoined.
#[test]
fn kafka_go_commit_of_a_fenced_member_ends_after_three_tries_and_the_member_rejoins() {
    let mut host = host();
    let mut c = consumer("kafka-go", CommitMode::Auto);
    c.group.coordinator = Some(BROKER);
    c.procs.all[0].queue.push_back(delivered(99));
    c.start_sync_commit(vec![(TP0, 100, None)]);
    c.sync_commit
        .as_mut()
        .expect("queued")
        .drops_delivery_on_failure = true;
    // The member is fenced: unjoined, waiting to rejoin.
    c.group.generation = -1;
    c.group.state = membership::MemberState::Unjoined;
    c.group.rejoin = true;
    c.meta.counts.insert(TopicId(1), 2);
    let mut ms = 1;
    for _ in 0..3 {
        assert!(c.sync_commit.is_some(), "not given up before its third try");
        host.at(ms, |cx| c.drive_sync_commit(cx));
        ms += 1_000;
    }
    assert!(c.sync_commit.is_none(), "ReadMessage returned the error");
    assert!(c.procs.all[0].queue.is_empty(), "the message was dropped");
    let effects = host.at(ms, |cx| c.drive_membership(cx));
    assert!(
        effects.iter().any(|e| matches!(
            e,
            crate::node::Effect::Send {
                msg: Message::JoinGroupRequest(_),
                ..
            }
        )),
        "the member rejoins once the commit is over"
    );
}

/// kafka-go `ReadMessage` commits the message it returns and nothing else: a mark whose
/// commit failed earlier (TP0's 60, above its committed 50) is not repeated with a message
/// of another partition, since `CommitMessages(ctx, m)` commits `m` alone and
/// `commitLoopImmediate` resets its offset stash after every attempt (kafka-go `reader.go`).
#[test]
fn kafka_go_read_message_commits_only_the_message_it_returns() {
    let mut host = host();
    let mut c = consumer("kafka-go", CommitMode::Auto);
    c.mark_at = consume_loop::MarkAt::Delivery;
    let mut rec = delivered(100);
    rec.partition = TP1;
    host.at(1, |cx| c.deliver(cx, vec![rec]));
    let sc = c
        .sync_commit
        .as_ref()
        .expect("ReadMessage commits before returning");
    assert_eq!(sc.offsets(), &[(TP1, 101, None)], "not TP0's failed 60");
    assert!(sc.drops_delivery_on_failure);
}

#[test]
fn java_commit_sync_retries_until_the_default_api_timeout() {
    let e = ErrorCode::CoordinatorNotAvailable;
    let c = failed_sync_commit("java", false, 50, 59_000, e);
    assert!(
        c.sync_commit.is_some(),
        "retried within 60 s whatever the attempts"
    );
    let c = failed_sync_commit("java", false, 2, 60_000, e);
    assert!(
        c.sync_commit.is_none(),
        "given up at default.api.timeout.ms"
    );
    // Not retriable: surfaced at once.
    let c = failed_sync_commit("java", false, 1, 10, ErrorCode::RebalanceInProgress);
    assert!(c.sync_commit.is_none());
}

#[test]
fn illegal_generation_keeps_the_member_id_in_java_3_1_and_later() {
    let fenced = |client: &str, version: Option<&str>, error: ErrorCode| {
        let mut host = host();
        let mut c = consumer(client, CommitMode::Auto);
        c.config = ConsumerConfig::for_client(client, version).unwrap();
        c.group.member_id = "m-1".into();
        c.group.generation = 4;
        let ctx = commit::CommitCtx {
            sync: false,
            generation: 4,
            offsets: vec![(TP0, 70, None)],
        };
        host.at(1, |cx| c.on_commit_result(cx, ctx, &[], error));
        assert_eq!(c.group.generation, -1);
        assert!(c.group.rejoin && c.group.owned.is_empty());
        c.group.member_id.clone()
    };
    let ig = ErrorCode::IllegalGeneration;
    assert_eq!(fenced("java", Some("3.7"), ig), "m-1");
    assert_eq!(fenced("java", Some("2.8"), ig), "");
    assert_eq!(fenced("java", Some("3.7"), ErrorCode::UnknownMemberId), "");
    assert_eq!(fenced("sarama", None, ig), "");
}

/// FENCED_INSTANCE_ID is fatal (Java's `FencedInstanceIdException` from poll, librdkafka's
/// "Fatal consumer error"): the static member drops its partitions and sends nothing more.
/// UNKNOWN_MEMBER_ID only makes a member rejoin.
#[test]
fn a_fenced_static_member_stops_for_good() {
    use crate::protocol::HeartbeatResponse;
    for (error, fenced) in [
        (ErrorCode::FencedInstanceId, true),
        (ErrorCode::UnknownMemberId, false),
    ] {
        let mut host = host();
        let mut c = consumer("java", CommitMode::Auto);
        c.config.group_instance_id = Some("pod-0".into());
        c.group.member_id = "pod-0-n5-0-1".into();
        c.group.generation = 3;
        c.group.state = membership::MemberState::Stable;
        c.group.coordinator = Some(NodeId(0));
        let resp = HeartbeatResponse {
            correlation_id: 1,
            error,
        };
        host.at(1, |cx| c.on_heartbeat(cx, NodeId(0), resp));
        assert!(c.group.owned.is_empty() && c.parts.is_empty(), "{error:?}");
        assert_eq!(c.group.fenced, fenced, "{error:?}");
        assert_eq!(
            c.group.rejoin, !fenced,
            "{error:?}: only a live member rejoins"
        );
        host.at(200, |cx| c.drive(cx));
        assert_eq!(
            c.group.state,
            membership::MemberState::Unjoined,
            "{error:?}"
        );
    }
}
