//! The transaction coordinator hosted on the brokers (issue 14, step 2), driven by a scripted
//! transactional client over the simulated network: a commit writes the data and its commit
//! marker; the coordinator fails over with the leader of its `__transaction_state` partition
//! and the new one finishes the transaction from the state in the log; a transaction left
//! open is aborted by the coordinator after `transaction.timeout.ms`, which moves the last
//! stable offset past it.

use crate::harness::Harness;
use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::broker::Broker;
use kafsim_engine::coordinator::txn_metadata::TxnState;
use kafsim_engine::protocol::*;
use kafsim_engine::record::{ControlMarker, Record, RecordBatch};
use kafsim_engine::{Cx, Duration, Instant, Node, NodeId, Timer};
use kafsim_engine::{TopicId, TopicPartition, ValueId};
use kafsim_sim::cluster::{Cluster, TRANSACTION_TOPIC};
use kafsim_sim::world::World;
use std::any::Any;

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);
const TICK: u16 = 1;

/// Where the scripted client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Find,
    Init,
    Add,
    Metadata,
    Produce,
    /// Waits until `end_at` before EndTxn.
    Hold,
    End,
    Done,
}

/// A transactional producer reduced to its requests, one at a time, retried every tick:
/// FindCoordinator, InitProducerId, AddPartitionsToTxn, Produce (one transactional batch),
/// EndTxn(commit).
struct TxnScript {
    brokers: Vec<NodeId>,
    step: Step,
    /// The step to return to after finding the coordinator again.
    resume: Step,
    coordinator: Option<NodeId>,
    leader: Option<NodeId>,
    producer: (i64, i16),
    outstanding: Option<(u64, Instant)>,
    correlation: u64,
    end_at: Instant,
    /// `transaction.timeout.ms`.
    timeout: Duration,
    end_error: Option<ErrorCode>,
    /// Produce without adding the partition first (a delayed produce of an earlier
    /// transaction looks like this to the leader).
    skip_add: bool,
    /// A produce error that ended the script.
    produce_error: Option<ErrorCode>,
}

impl TxnScript {
    fn new(brokers: Vec<NodeId>, end_at: Instant, timeout: Duration) -> TxnScript {
        TxnScript {
            brokers,
            step: Step::Find,
            resume: Step::Init,
            coordinator: None,
            leader: None,
            producer: (-1, -1),
            outstanding: None,
            correlation: 0,
            end_at,
            timeout,
            end_error: None,
            skip_add: false,
            produce_error: None,
        }
    }

    fn refind(&mut self, resume: Step) {
        self.coordinator = None;
        self.resume = resume;
        self.step = Step::Find;
    }

    fn request(&mut self, cx: &mut Cx) {
        if let Some((_, since)) = self.outstanding {
            if cx.now().saturating_since(since) < Duration::from_millis(3000) {
                return;
            }
            // No answer (a crashed or cut-off broker): find the coordinator again.
            self.outstanding = None;
            if self.step != Step::Find {
                let resume = self.step;
                self.refind(resume);
            }
        }
        self.correlation += 1;
        let correlation_id = self.correlation;
        let (to, msg) = match self.step {
            Step::Find => {
                let to = self.brokers[(correlation_id as usize) % self.brokers.len()];
                let req = FindCoordinatorRequest {
                    correlation_id,
                    key: "t".into(),
                    key_type: CoordinatorType::Transaction,
                };
                (to, Message::FindCoordinatorRequest(req))
            }
            Step::Init => {
                let req = InitProducerIdRequest {
                    correlation_id,
                    transactional_id: Some("t".into()),
                    producer_id: -1,
                    producer_epoch: -1,
                    transaction_timeout: Some(self.timeout),
                    transaction_version_2: true,
                };
                (
                    self.coordinator.unwrap(),
                    Message::InitProducerIdRequest(req),
                )
            }
            Step::Add => {
                let req = AddPartitionsToTxnRequest {
                    correlation_id,
                    transactional_id: "t".into(),
                    producer_id: self.producer.0,
                    producer_epoch: self.producer.1,
                    partitions: vec![TP],
                    verify_only: false,
                };
                (
                    self.coordinator.unwrap(),
                    Message::AddPartitionsToTxnRequest(req),
                )
            }
            Step::Metadata => {
                let to = self.brokers[(correlation_id as usize) % self.brokers.len()];
                let req = MetadataRequest {
                    correlation_id,
                    topics: vec![TP.topic],
                };
                (to, Message::MetadataRequest(req))
            }
            Step::Produce => {
                let records: Vec<Record> = (1..=3)
                    .map(|v| Record {
                        value: ValueId(v),
                        key: None,
                        size: 100,
                        create_time: cx.now(),
                        payload: None,
                    })
                    .collect();
                let mut batch = RecordBatch::new(records.into());
                batch.producer_id = self.producer.0;
                batch.producer_epoch = self.producer.1;
                batch.base_sequence = 0;
                batch.is_transactional = true;
                let req = ProduceRequest {
                    correlation_id,
                    acks: Acks::All,
                    timeout: Duration::from_millis(2000),
                    transactional_id: Some("t".into()),
                    batches: vec![(TP, batch)],
                };
                (self.leader.unwrap(), Message::ProduceRequest(req))
            }
            Step::Hold if cx.now() >= self.end_at => {
                self.step = Step::End;
                return self.request(cx);
            }
            Step::End => {
                let req = EndTxnRequest {
                    correlation_id,
                    transactional_id: "t".into(),
                    producer_id: self.producer.0,
                    producer_epoch: self.producer.1,
                    commit: true,
                };
                (self.coordinator.unwrap(), Message::EndTxnRequest(req))
            }
            Step::Hold | Step::Done => return,
        };
        self.outstanding = Some((correlation_id, cx.now()));
        cx.send(to, msg);
    }
}

impl Node for TxnScript {
    fn on_start(&mut self, cx: &mut Cx) {
        cx.set_timer_after(Duration::from_millis(3000), Timer::new(TICK, 0));
    }

    fn on_message(&mut self, _cx: &mut Cx, _from: NodeId, msg: Message) {
        let Some(correlation_id) = msg.exchange_correlation() else {
            return;
        };
        if self.outstanding.map(|o| o.0) != Some(correlation_id) {
            return;
        }
        self.outstanding = None;
        match msg {
            Message::FindCoordinatorResponse(r) if r.error == ErrorCode::None => {
                self.coordinator = r.coordinator;
                self.step = self.resume;
            }
            Message::InitProducerIdResponse(r) if r.error == ErrorCode::None => {
                self.producer = (r.producer_id, r.producer_epoch);
                self.step = if self.skip_add {
                    Step::Metadata
                } else {
                    Step::Add
                };
            }
            Message::AddPartitionsToTxnResponse(r) if r.error == ErrorCode::None => {
                self.step = Step::Metadata;
            }
            Message::MetadataResponse(r) => {
                self.leader = r
                    .partitions
                    .iter()
                    .find(|p| p.state.partition == TP)
                    .and_then(|p| p.state.leader);
                if self.leader.is_some() {
                    self.step = Step::Produce;
                }
            }
            Message::ProduceResponse(r) => {
                let refused = r.partitions.iter().map(|p| p.error).find(|e| {
                    matches!(
                        e,
                        ErrorCode::InvalidTxnState | ErrorCode::InvalidProducerEpoch
                    )
                });
                if r.partitions.iter().all(|p| p.error == ErrorCode::None) {
                    self.step = Step::Hold;
                } else if let Some(e) = refused {
                    self.produce_error = Some(e);
                    self.step = Step::Done;
                } else {
                    self.step = Step::Metadata;
                }
            }
            Message::EndTxnResponse(r) => match r.error {
                ErrorCode::None => self.step = Step::Done,
                ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::ConcurrentTransactions => self.refind(Step::End),
                other => {
                    self.end_error = Some(other);
                    self.step = Step::Done;
                }
            },
            Message::InitProducerIdResponse(_) => self.refind(Step::Init),
            Message::AddPartitionsToTxnResponse(_) => self.refind(Step::Add),
            _ => {}
        }
    }

    fn on_timer(&mut self, cx: &mut Cx, timer: Timer) {
        self.request(cx);
        cx.set_timer_after(Duration::from_millis(100), timer);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

trait CorrelationOf {
    fn exchange_correlation(&self) -> Option<u64>;
}

impl CorrelationOf for Message {
    fn exchange_correlation(&self) -> Option<u64> {
        match self.exchange() {
            Exchange::Response { correlation_id } => Some(correlation_id),
            _ => None,
        }
    }
}

/// Three brokers with `__transaction_state` (3 partitions) and min.insync.replicas 2;
/// `verification`: KIP-890 part 1's partition verification.
fn harness(seed: u64, verification: bool) -> Harness {
    let config = BrokerConfig {
        transaction_partition_verification: verification,
        min_insync_replicas: 2,
        transaction_state_partitions: 3,
        ..BrokerConfig::default()
    };
    Harness::new(seed)
        .broker_config(config)
        .topic(TRANSACTION_TOPIC, 3, 3)
}

fn script(w: &World, id: NodeId) -> &TxnScript {
    w.node::<TxnScript>(id).unwrap()
}

/// The broker that coordinates "t" and its state there.
fn coordinator_state(w: &World, c: &Cluster) -> Option<(NodeId, (i64, i16, TxnState))> {
    c.brokers.iter().filter(|b| w.is_up(**b)).find_map(|b| {
        let state = w.node::<Broker>(*b)?.transaction_coordinator().state("t")?;
        Some((*b, state))
    })
}

/// Data and control batches of `TP` on its current leader: (values, markers).
fn data_partition(w: &World, c: &Cluster) -> (Vec<u64>, Vec<ControlMarker>, u64) {
    let leader = c.leader_of(w, TP).expect("TP has a leader");
    let p = w.node::<Broker>(leader).unwrap().partition(TP).unwrap();
    let batches = p.log.read(0, u32::MAX, p.log.log_end_offset());
    let values = batches
        .iter()
        .flat_map(|b| b.records.iter().map(|r| r.value.0))
        .collect();
    let markers = batches.iter().filter_map(|b| b.control).collect();
    (values, markers, p.high_watermark)
}

/// The scripted client; it ends its transaction at `end_at`, with `transaction.timeout.ms`
/// 60 s (Java's default) or `timeout`.
fn add_script(w: &mut World, c: &Cluster, end_at: Instant, timeout: Option<Duration>) -> NodeId {
    let brokers = c.brokers.clone();
    let timeout = timeout.unwrap_or(Duration::from_millis(60_000));
    w.add_node("txn-client", move || {
        Box::new(TxnScript::new(brokers.clone(), end_at, timeout)) as Box<dyn Node>
    })
}

#[test]
fn a_committed_transaction_leaves_its_data_and_a_commit_marker() {
    let (mut w, c) = harness(41, true).build();
    let client = add_script(&mut w, &c, Instant::ZERO, None);
    w.run_until(Instant::from_millis(15_000));
    assert_eq!(script(&w, client).step, Step::Done);
    assert_eq!(script(&w, client).end_error, None);
    let (_, (pid, epoch, state)) = coordinator_state(&w, &c).expect("a coordinator owns t");
    assert!(pid >= 0);
    // transaction.version 2 (KIP-890 part 2): EndTxn bumped the epoch.
    assert_eq!((epoch, state), (1, TxnState::CompleteCommit));
    let (values, markers, _) = data_partition(&w, &c);
    assert_eq!(values, vec![1, 2, 3]);
    assert_eq!(markers, vec![ControlMarker::Commit]);
}

#[test]
fn the_coordinator_fails_over_with_its_state_partition_and_finishes_the_transaction() {
    let (mut w, c) = harness(42, true).build();
    let client = add_script(&mut w, &c, Instant::from_millis(9_000), None);
    w.run_until(Instant::from_millis(8_000));
    assert_eq!(
        script(&w, client).step,
        Step::Hold,
        "data written, not ended"
    );
    let (old, (_, _, state)) = coordinator_state(&w, &c).unwrap();
    assert_eq!(state, TxnState::Ongoing);
    w.crash(old);
    w.run_until(Instant::from_millis(40_000));
    assert_eq!(script(&w, client).end_error, None);
    assert_eq!(script(&w, client).step, Step::Done);
    let (new, (_, _, state)) = coordinator_state(&w, &c).expect("a new coordinator owns t");
    assert_ne!(new, old);
    assert_eq!(
        state,
        TxnState::CompleteCommit,
        "loaded Ongoing from the log, then ended it"
    );
    let (values, markers, _) = data_partition(&w, &c);
    assert_eq!(values, vec![1, 2, 3]);
    assert_eq!(markers, vec![ControlMarker::Commit]);
}

#[test]
fn a_transaction_left_open_is_aborted_after_its_timeout() {
    let (mut w, c) = harness(43, true).build();
    let client = add_script(
        &mut w,
        &c,
        Instant::from_millis(3_600_000),
        Some(Duration::from_millis(10_000)),
    );
    w.run_until(Instant::from_millis(8_000));
    assert_eq!(script(&w, client).step, Step::Hold);
    let (values, markers, hw) = data_partition(&w, &c);
    assert_eq!((values.len(), markers.len()), (3, 0));
    let leader = c.leader_of(&w, TP).unwrap();
    let lso = |w: &World| {
        w.node::<Broker>(leader)
            .unwrap()
            .last_stable_offset(TP)
            .unwrap()
    };
    assert_eq!(
        lso(&w),
        0,
        "the open transaction holds the LSO at its first offset"
    );
    assert_eq!(hw, 3);
    // transaction.timeout.ms = 10 s from the AddPartitions at ~3 s; checked every 10 s.
    w.run_until(Instant::from_millis(40_000));
    let (_, (_, epoch, state)) = coordinator_state(&w, &c).unwrap();
    assert_eq!(
        (epoch, state),
        (1, TxnState::CompleteAbort),
        "aborted under a bumped epoch"
    );
    let (_, markers, _) = data_partition(&w, &c);
    assert_eq!(markers, vec![ControlMarker::Abort]);
    assert_eq!(lso(&w), 4, "past the abort marker");
}

/// KIP-890 part 1: a transactional produce to a partition the transaction never added (what
/// a produce delayed past its transaction's end looks like) opens a transaction on the
/// partition that no coordinator knows, so nothing ever ends it and the last stable offset
/// stays behind it for good (a hanging transaction). With
/// `transaction.partition.verification.enable` the leader asks the coordinator first and
/// refuses the batch.
#[test]
fn a_produce_outside_the_transaction_hangs_it_unless_the_leader_verifies() {
    for verification in [false, true] {
        let (mut w, c) = harness(44, verification).build();
        let brokers = c.brokers.clone();
        let client = w.add_node("txn-client", move || {
            let mut s = TxnScript::new(
                brokers.clone(),
                Instant::from_millis(3_600_000),
                Duration::from_millis(10_000),
            );
            s.skip_add = true;
            Box::new(s) as Box<dyn Node>
        });
        w.run_until(Instant::from_millis(60_000));
        let leader = c.leader_of(&w, TP).unwrap();
        let lso = w.node::<Broker>(leader).unwrap().last_stable_offset(TP);
        let (values, markers, hw) = data_partition(&w, &c);
        if verification {
            assert_eq!(
                script(&w, client).produce_error,
                Some(ErrorCode::InvalidTxnState)
            );
            assert!(values.is_empty() && markers.is_empty());
            assert_eq!(lso, Some(hw));
        } else {
            assert_eq!(script(&w, client).step, Step::Hold);
            assert_eq!((values.len(), markers.len(), hw), (3, 0, 3));
            assert_eq!(
                lso,
                Some(0),
                "past transaction.timeout.ms, the hanging transaction still holds the LSO"
            );
        }
    }
}
