//! Controller failover (issue 3 priority g): a standby takes over with a higher controller
//! epoch when the active controller crashes and a majority of controllers remains (the
//! metadata quorum, `kafsim_engine::controller` module doc), brokers follow it, it elects
//! leaders on broker death, and the old controller returns as a standby. Without a majority
//! (one of two controllers down) metadata changes wait, as they do in KRaft.

use crate::support::*;
use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::controller::{Controller, Role};
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Instant, TopicId, TopicPartition};
use kafsim_sim::invariants::{self, InvariantScope};

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

#[test]
fn a_standby_takes_over_and_elects_leaders_while_a_majority_of_controllers_remains() {
    let (mut w, c) = Harness::new(31)
        .controllers(3)
        .partitions(2)
        .offsets_partitions(3)
        .min_insync_replicas(2)
        .invariants(InvariantScope {
            correlated_power_loss: false,
        })
        .build();
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(45_000));
    w.run_until(Instant::from_millis(3000));
    let c0 = c.controllers[0];
    assert_eq!(c.active_controller(&w), Some(c0));
    w.crash(c0);
    w.run_until(Instant::from_millis(15_000));
    let new = c.active_controller(&w).expect("a standby took over");
    assert_ne!(new, c0);
    // Epoch 2, or higher when both standbys ran at once and split the vote.
    assert!(w.node::<Controller>(new).unwrap().state().controller_epoch >= 2);

    let leader = c.leader_of(&w, TP).unwrap();
    w.crash(leader);
    w.run_until(Instant::from_millis(30_000));
    let new_leader = c
        .leader_of(&w, TP)
        .expect("the new controller elected a leader");
    assert_ne!(new_leader, leader);
    let acked_mid = acked(&w, TP).len();
    w.restart(c0);
    w.restart(leader);
    w.run_until(Instant::from_millis(45_000));
    assert!(
        acked(&w, TP).len() > acked_mid,
        "produce continued under the new controller"
    );
    assert_eq!(w.node::<Controller>(c0).unwrap().role(), Role::Standby);
    assert_eq!(c.active_controller(&w), Some(new));
    settle(&mut w, &c, TP, kafsim_engine::Duration::from_secs(10));
    assert_eq!(lost_acked(&w, &c, TP), Some(vec![]));
    assert!(invariants::check_divergence(&w, &c).is_empty());
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

/// Two controllers are a quorum of two: with either one down nothing commits. The active
/// controller fences a dead leader's broker and elects another leader in its own state, but
/// no broker hears of it until the standby is back and holds that state (KRaft: a majority
/// of two voters is both). With the active controller down, the standby never takes over:
/// it cannot win a vote alone.
#[test]
fn two_controllers_halt_metadata_changes_while_either_is_down() {
    let (mut w, c) = Harness::new(34)
        .controllers(2)
        .invariants(InvariantScope {
            correlated_power_loss: false,
        })
        .build();
    add_probe(
        &mut w,
        &c,
        0,
        TP,
        Acks::Leader,
        Instant::from_millis(60_000),
    );
    w.run_until(Instant::from_millis(3000));
    let (c0, c1) = (c.controllers[0], c.controllers[1]);
    assert_eq!(c.active_controller(&w), Some(c0));
    let committed = w.node::<Controller>(c0).unwrap().committed_version();
    assert!(committed.is_some());

    w.crash(c1);
    let leader = c.leader_of(&w, TP).unwrap();
    w.crash(leader);
    w.run_until(Instant::from_millis(20_000));
    let ctl = w.node::<Controller>(c0).unwrap();
    assert_eq!(c.active_controller(&w), Some(c0));
    let decided = ctl.state().partition(TP).unwrap().leader;
    assert!(
        decided.is_some() && decided != Some(leader),
        "the active controller moved the leadership in its own state: {decided:?}"
    );
    assert_eq!(ctl.committed_version(), committed, "nothing committed");
    assert_eq!(c.leader_of(&w, TP), None, "no broker was told to lead");

    w.restart(c1);
    w.run_until(Instant::from_millis(25_000));
    assert_eq!(
        c.leader_of(&w, TP),
        decided,
        "published once the standby holds it"
    );
    let acked_mid = acked(&w, TP).len();

    // Now the active controller: the standby stays a standby.
    w.crash(c0);
    w.run_until(Instant::from_millis(45_000));
    assert_eq!(c.active_controller(&w), None);
    assert_eq!(w.node::<Controller>(c1).unwrap().role(), Role::Standby);
    // Brokers keep their leaders meanwhile: produce to a live leader goes on.
    assert!(acked(&w, TP).len() > acked_mid);
    w.restart(c0);
    w.restart(leader);
    w.run_until(Instant::from_millis(60_000));
    assert!(c.active_controller(&w).is_some());
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn a_lone_controller_recovers_its_state_from_disk_after_a_crash() {
    let config = BrokerConfig::default();
    let (mut w, c) = Harness::new(32)
        .partitions(2)
        .broker_config(config)
        .invariants(InvariantScope {
            correlated_power_loss: false,
        })
        .build();
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(30_000));
    w.run_until(Instant::from_millis(3000));
    let ctl = c.controllers[0];
    let before = w.node::<Controller>(ctl).unwrap().state().clone();
    w.power_loss(ctl, true);
    w.restart(ctl);
    w.run_until(Instant::from_millis(4000));
    let after = w.node::<Controller>(ctl).unwrap().state();
    assert_eq!(after.controller_epoch, before.controller_epoch + 1);
    assert_eq!(after.partitions.len(), before.partitions.len());
    assert_eq!(
        after.partition(TP).unwrap().leader,
        before.partition(TP).unwrap().leader
    );
    let leader = c.leader_of(&w, TP).unwrap();
    w.crash(leader);
    w.run_until(Instant::from_millis(20_000));
    assert_ne!(
        c.leader_of(&w, TP),
        Some(leader),
        "the recovered controller elects"
    );
    w.restart(leader);
    settle(&mut w, &c, TP, kafsim_engine::Duration::from_secs(15));
    assert_eq!(lost_acked(&w, &c, TP), Some(vec![]));
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

/// Asks a broker for a producer id twice (new id, then an epoch bump of it).
struct PidClient {
    broker: kafsim_engine::NodeId,
    got: Vec<(i64, i16)>,
}

impl kafsim_engine::Node for PidClient {
    fn on_start(&mut self, cx: &mut kafsim_engine::Cx) {
        cx.set_timer_after(
            kafsim_engine::Duration::from_millis(2000),
            kafsim_engine::Timer::new(1, 0),
        );
    }
    fn on_message(
        &mut self,
        cx: &mut kafsim_engine::Cx,
        _from: kafsim_engine::NodeId,
        msg: kafsim_engine::protocol::Message,
    ) {
        if let kafsim_engine::protocol::Message::InitProducerIdResponse(r) = msg {
            assert_eq!(r.correlation_id, 7 + self.got.len() as u64);
            self.got.push((r.producer_id, r.producer_epoch));
            if self.got.len() == 1 {
                self.ask(cx, r.producer_id, r.producer_epoch);
            }
        }
    }
    fn on_timer(&mut self, cx: &mut kafsim_engine::Cx, _t: kafsim_engine::Timer) {
        self.ask(cx, -1, -1);
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl PidClient {
    fn ask(&mut self, cx: &mut kafsim_engine::Cx, producer_id: i64, producer_epoch: i16) {
        cx.send(
            self.broker,
            kafsim_engine::protocol::Message::InitProducerIdRequest(
                kafsim_engine::protocol::InitProducerIdRequest {
                    correlation_id: 7 + self.got.len() as u64,
                    transactional_id: None,
                    producer_id,
                    producer_epoch,
                    transaction_timeout: None,
                    transaction_version_2: false,
                },
            ),
        );
    }
}

#[test]
fn brokers_forward_init_producer_id_to_the_controller() {
    let (mut w, c) = Harness::new(33).build();
    let broker = c.brokers[1];
    let client = w.add_node("pid-client", move || {
        Box::new(PidClient {
            broker,
            got: Vec::new(),
        }) as Box<dyn kafsim_engine::Node>
    });
    w.run_until(Instant::from_millis(3000));
    let got = &w.node::<PidClient>(client).unwrap().got;
    assert_eq!(got.len(), 2);
    assert!(got[0].0 >= 0 && got[0].1 == 0, "{got:?}");
    assert_eq!(got[1], (got[0].0, 1), "the epoch bump keeps the id");
    let ctl = w.node::<Controller>(c.controllers[0]).unwrap();
    assert_eq!(ctl.state().next_producer_id, got[0].0 + 1);
}

/// `add-partitions`: the admin client's CreatePartitions grows the topic on the controller
/// and every replica's broker, the new partitions get leaders, a repeated (retried) request is
/// refused with InvalidPartitions, and a request while too few brokers are unfenced is
/// refused with InvalidReplicationFactor (KRaft `ReplicationControlManager.createPartitions`).
#[test]
fn create_partitions_grows_a_topic_once() {
    use kafsim_engine::admin::Admin;
    use kafsim_engine::broker::Broker;
    use kafsim_engine::protocol::ErrorCode;
    use kafsim_engine::Node;

    let (mut w, c) = Harness::new(33).controllers(2).partitions(2).build();
    let controllers = c.controllers.clone();
    let admin = w.add_node("admin", move || -> Box<dyn Node> {
        Box::new(Admin::new(controllers.clone()))
    });
    w.run_until(Instant::from_millis(3_000));
    let t = TopicId(0);
    w.signal(admin, Admin::command_timer(t, 5));
    w.run_until(Instant::from_millis(4_000));
    let active = c.active_controller(&w).unwrap();
    let state = w.node::<Controller>(active).unwrap().state();
    assert!(state.topics.contains(&(t, 5)), "{:?}", state.topics);
    for p in 2..5 {
        let tp = TopicPartition::new(t, p);
        let ps = state.partition(tp).expect("a new partition");
        assert_eq!(ps.replicas.len(), 3);
        assert_eq!(ps.isr, ps.replicas);
        let leader = c.leader_of(&w, tp).expect("a leader on a broker");
        assert_eq!(Some(leader), ps.leader);
        for r in &ps.replicas {
            assert!(w.node::<Broker>(*r).unwrap().partition(tp).is_some());
        }
    }
    // The same total again (a retry after a lost answer): refused, nothing changes.
    w.signal(admin, Admin::command_timer(t, 5));
    w.run_until(Instant::from_millis(5_000));
    // Two brokers fenced: three replicas cannot be placed.
    w.crash(c.brokers[1]);
    w.crash(c.brokers[2]);
    w.run_until(Instant::from_millis(30_000));
    w.signal(admin, Admin::command_timer(t, 6));
    w.run_until(Instant::from_millis(31_000));
    let results = &w.node::<Admin>(admin).unwrap().results;
    assert_eq!(
        results,
        &vec![
            (t, 5, ErrorCode::None),
            (t, 5, ErrorCode::InvalidPartitions),
            (t, 6, ErrorCode::InvalidReplicationFactor),
        ]
    );
    let state = w.node::<Controller>(active).unwrap().state();
    assert!(state.topics.contains(&(t, 5)), "{:?}", state.topics);
}

/// The chain of `replication_sweep` seed 167, scripted with three controllers: controller-0
/// crashes, another controller takes over (with the third one's vote); controller-0 restarts
/// from its disk (epoch 1) without hearing from its peers, and then the new controller is cut
/// off. With two controllers and no quorum, controller-0 took over at the epoch the brokers
/// followed and both handed out leader epochs. Now controller-0's log is behind the third
/// controller's, which refuses it its vote and wins itself, above the cut-off controller's
/// epoch; after the heal the cut-off controller gives way.
#[test]
fn a_controller_restarted_from_disk_cannot_win_with_a_stale_log() {
    let (mut w, c) = Harness::new(167)
        .controllers(3)
        .invariants(InvariantScope {
            correlated_power_loss: false,
        })
        .build();
    let (c0, c1, c2) = (c.controllers[0], c.controllers[1], c.controllers[2]);
    let epoch = |w: &kafsim_sim::world::World, n| {
        let ctl = w.node::<Controller>(n).unwrap();
        (ctl.role(), ctl.state().controller_epoch)
    };
    w.run_until(Instant::from_millis(1000));
    w.crash(c0);
    w.run_until(Instant::from_millis(15_000));
    let new = c.active_controller(&w).expect("a takeover");
    let won = epoch(&w, new).1;
    assert!(new != c0 && won >= 2);
    let other = if new == c1 { c2 } else { c1 };
    // controller-0 restarts from its disk while its peers cannot reach it; the brokers can.
    w.net().partition(&[c0], &[c1, c2]);
    w.restart(c0);
    w.run_for(kafsim_engine::Duration::from_secs(3));
    assert_eq!(
        epoch(&w, c0),
        (Role::Standby, 1),
        "controller-0's log is stale"
    );
    // Its peer comes back; the new controller is cut off from everyone.
    w.net().heal();
    let others: Vec<_> = c.brokers.iter().copied().chain([c0, other]).collect();
    w.net().partition(&[new], &others);
    w.run_for(kafsim_engine::Duration::from_secs(15));
    assert_eq!(
        epoch(&w, new),
        (Role::Active, won),
        "the cut-off controller"
    );
    let (role, e) = epoch(&w, other);
    assert!(
        role == Role::Active && e > won,
        "the up-to-date standby took over above epoch {won}: {:?}",
        (role, e)
    );
    assert_eq!(epoch(&w, c0), (Role::Standby, e), "controller-0 follows it");
    // After the heal the older controller gives way and takes the newer one's state (once
    // TCP's retransmission backoff lets the syncs through).
    w.net().heal();
    w.run_for(kafsim_engine::Duration::from_secs(5));
    assert_eq!(epoch(&w, new).0, Role::Standby);
    w.run_for(kafsim_engine::Duration::from_secs(20));
    assert_eq!(epoch(&w, new), (Role::Standby, e));
    assert_eq!(c.active_controller(&w), Some(other));
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

/// The chain of `replication_sweep` seed 195, scripted: the active controller is cut off from
/// the other controllers but not from the brokers. It goes on deciding (it fences a dead
/// leader's broker and elects another leader) but cannot commit, so no broker hears of it; the
/// others elect a new controller, which decides for itself. Without the quorum the old
/// controller published its leader epoch and the new one gave the same epoch to another
/// leader: a broker was told two leaders for one epoch.
#[test]
fn a_controller_cut_off_from_its_quorum_publishes_nothing() {
    let (mut w, c) = Harness::new(195)
        .controllers(3)
        .invariants(InvariantScope {
            correlated_power_loss: false,
        })
        .build();
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(40_000));
    w.run_until(Instant::from_millis(3000));
    let (c0, c1, c2) = (c.controllers[0], c.controllers[1], c.controllers[2]);
    assert_eq!(c.active_controller(&w), Some(c0));
    let committed = w.node::<Controller>(c0).unwrap().committed_version();
    w.net().partition(&[c0], &[c1, c2]);
    let leader = c.leader_of(&w, TP).unwrap();
    w.crash(leader);
    w.run_until(Instant::from_millis(30_000));
    let old = w.node::<Controller>(c0).unwrap();
    assert!(
        old.state().version > committed.unwrap(),
        "the cut-off controller decided something"
    );
    assert_eq!(
        old.committed_version(),
        None,
        "and resigned, publishing none of it"
    );
    let new = c.active_controller(&w).expect("a new controller");
    assert!(new == c1 || new == c2);
    let new_leader = c
        .leader_of(&w, TP)
        .expect("the new controller elected a leader");
    assert_ne!(new_leader, leader);
    w.net().heal();
    w.restart(leader);
    w.run_until(Instant::from_millis(40_000));
    assert_eq!(w.node::<Controller>(c0).unwrap().role(), Role::Standby);
    settle(&mut w, &c, TP, kafsim_engine::Duration::from_secs(10));
    assert_eq!(lost_acked(&w, &c, TP), Some(vec![]));
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}
