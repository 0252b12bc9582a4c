//! Unit tests of the nemesis: target resolution against up and down nodes, and the seeded
//! choices it makes.

use super::*;
use crate::scenario::{ScheduledFault, Target};
use rand::SeedableRng;

/// Three brokers and one consumer; `down` lists the nodes that are not up.
struct Cluster {
    down: Vec<NodeId>,
}

impl Resolver for Cluster {
    fn brokers(&self) -> Vec<NodeId> {
        vec![NodeId(0), NodeId(1), NodeId(2)]
    }
    fn broker(&self, index: u32) -> Option<NodeId> {
        self.brokers().get(index as usize).copied()
    }
    fn leader(&self, _topic: &str, _partition: u32) -> Option<NodeId> {
        Some(NodeId(0))
    }
    fn followers(&self, _topic: &str, _partition: u32) -> Vec<NodeId> {
        vec![NodeId(1), NodeId(2)]
    }
    fn controller(&self) -> Option<NodeId> {
        Some(NodeId(0))
    }
    fn consumer(&self, _group: &str, member: u32) -> Option<NodeId> {
        (member == 0).then_some(NodeId(3))
    }
    fn consumers(&self) -> Vec<NodeId> {
        vec![NodeId(3)]
    }
    fn producer(&self, _index: u32) -> Option<NodeId> {
        None
    }
    fn producers(&self) -> Vec<NodeId> {
        Vec::new()
    }
    fn partitions(&self) -> Vec<(String, u32)> {
        vec![("orders".into(), 0)]
    }
    fn is_up(&self, id: NodeId) -> bool {
        !self.down.contains(&id)
    }
}

fn stopped(kinds: Vec<FaultKind>, cluster: &Cluster) -> Vec<NodeId> {
    let spec = FaultSpec {
        random: true,
        kinds,
        mean_interval: Duration::from_millis(200),
        undo_after: None,
        schedule: Vec::new(),
    };
    let duration = Duration::from_secs(60);
    let mut nemesis = Nemesis::plan(&spec, duration, ChaCha8Rng::seed_from_u64(7));
    let ops = nemesis.fire(Instant::ZERO + duration, cluster);
    ops.iter()
        .filter(|op| matches!(op, Op::Crash(_) | Op::PowerLoss { .. } | Op::Pause(_)))
        .flat_map(op_nodes)
        .collect()
}

#[test]
fn random_faults_stop_only_nodes_that_are_up() {
    // One kind at a time, so the swarm draw always enables it.
    for (kind, victim) in [
        (FaultKind::Crash, NodeId(0)),
        (FaultKind::PowerLoss, NodeId(0)),
        (FaultKind::Pause, NodeId(0)),
        (FaultKind::ConsumerCrash, NodeId(3)),
    ] {
        // With everything up, the leader (or the only consumer) is hit.
        let hit = stopped(vec![kind], &Cluster { down: Vec::new() });
        assert!(hit.contains(&victim), "{kind}: {hit:?}");
        // Once it is down, no fault stops it again.
        let hit = stopped(vec![kind], &Cluster { down: vec![victim] });
        assert!(!hit.contains(&victim), "{kind}: {hit:?}");
        if kind != FaultKind::ConsumerCrash {
            assert!(hit.len() > 50, "{kind}: the draw fired {} times", hit.len());
        }
    }
}

/// A scripted fault whose target names no node when it is due (here a member that is not
/// running) is not applied, and the log says so instead of leaving it out silently.
/// A nemesis with only `schedule`, planned for a run of `secs` seconds.
fn scripted(schedule: Vec<ScheduledFault>, secs: u64) -> Nemesis {
    let spec = FaultSpec {
        random: false,
        kinds: Vec::new(),
        mean_interval: Duration::from_secs(5),
        undo_after: None,
        schedule,
    };
    Nemesis::plan(
        &spec,
        Duration::from_secs(secs),
        ChaCha8Rng::seed_from_u64(1),
    )
}

#[test]
fn a_scripted_fault_that_finds_no_target_says_it_was_skipped() {
    let crash = |member| ScheduledFault {
        at: Duration::from_secs(1),
        action: FaultAction::ConsumerCrash(Target::Consumer {
            group: "billing".into(),
            member,
        }),
        undo_after: Some(Duration::from_secs(1)),
        line: 1,
    };
    let mut nemesis = scripted(vec![crash(1), crash(0)], 10);
    let ops = nemesis.fire(
        Instant::ZERO + Duration::from_secs(1),
        &Cluster { down: Vec::new() },
    );
    assert_eq!(ops, vec![Op::Crash(vec![NodeId(3)])]);
    let skipped: Vec<&String> = nemesis
        .log
        .iter()
        .filter(|l| l.contains("skipped"))
        .collect();
    assert_eq!(skipped.len(), 1, "{:?}", nemesis.log);
    assert!(
        skipped[0].contains("skipped consumer-crash consumer:billing/1: no node matches"),
        "{skipped:?}"
    );
}

/// Each partition's undo lifts that partition only (`Op::Lift`), so overlapping partitions
/// each last their own time; a scheduled `heal` lifts all of them, and the log says which it
/// ends early and that their own undo later found nothing left.
#[test]
fn overlapping_partitions_end_on_their_own_and_a_heal_ends_them_all() {
    let isolate = |at, broker| ScheduledFault {
        at: Duration::from_secs(at),
        action: FaultAction::Partition {
            groups: vec![vec![Target::Broker(broker)]],
            one_way: false,
        },
        undo_after: Some(Duration::from_secs(10)),
        line: 1,
    };
    let up = Cluster { down: Vec::new() };
    let mut nemesis = scripted(vec![isolate(1, 0), isolate(4, 1)], 20);
    let first = nemesis.fire(Instant::ZERO + Duration::from_secs(1), &up);
    nemesis.fire(Instant::ZERO + Duration::from_secs(4), &up);
    let undo = nemesis.fire(Instant::ZERO + Duration::from_secs(11), &up);
    assert_eq!(undo, vec![Op::Lift(Box::new(first[0].clone()))]);
    assert!(
        nemesis.log[2].ends_with(&format!(
            "heal {}",
            nemesis.log[0]
                .split_once(' ')
                .unwrap()
                .1
                .split(" (undone")
                .next()
                .unwrap()
        )),
        "{:?}",
        nemesis.log
    );

    let heal = ScheduledFault {
        at: Duration::from_secs(7),
        action: FaultAction::Heal,
        undo_after: None,
        line: 1,
    };
    let mut nemesis = scripted(vec![isolate(1, 0), isolate(4, 1), heal], 20);
    for s in [1, 4, 7, 11, 14] {
        nemesis.fire(Instant::ZERO + Duration::from_secs(s), &up);
    }
    let log = &nemesis.log;
    assert!(
        log[2].ends_with("heal (a heal lifts every partition and slow link: it ends the partition of 1000.000ms 4s early, the partition of 4000.000ms 7s early)"),
        "{log:?}"
    );
    assert!(
        log[3].ends_with("(nothing left to lift: a heal ended it earlier)"),
        "{log:?}"
    );
    assert!(
        log[4].ends_with("(nothing left to lift: a heal ended it earlier)"),
        "{log:?}"
    );
}
