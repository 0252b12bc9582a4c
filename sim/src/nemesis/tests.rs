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
            "heal {} (ends the partition of 1000.000ms)",
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
        log[2].ends_with("heal (a heal lifts every partition and slow link: it ends partition [n0] | [n1,n2,n3] of 1000.000ms 4s early, partition [n1] | [n0,n2,n0,n3] of 4000.000ms 7s early)"),
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

/// Every end names the fault it ends. Two slow disks of one broker overlap: each ends on its
/// own (its own factor lifted, `Op::Lift`), and the log line of each end says which one it
/// is (kind, target, factor and when it began), instead of a bare `x1.0` that ended both.
#[test]
fn overlapping_slow_disks_each_end_on_their_own_and_say_which() {
    let slow = |at, factor, secs| ScheduledFault {
        at: Duration::from_secs(at),
        action: FaultAction::SlowDisk {
            target: Target::Broker(0),
            factor,
        },
        undo_after: Some(Duration::from_secs(secs)),
        line: 1,
    };
    let up = Cluster { down: Vec::new() };
    let mut nemesis = scripted(vec![slow(1, 10.0, 10), slow(4, 40.0, 2)], 20);
    let mut ops = Vec::new();
    for s in [1, 4, 6, 11] {
        ops.extend(nemesis.fire(Instant::ZERO + Duration::from_secs(s), &up));
    }
    let x = |factor| Op::SlowDisk {
        nodes: vec![NodeId(0)],
        factor,
    };
    assert_eq!(
        ops,
        vec![
            x(10.0),
            x(40.0),
            Op::Lift(Box::new(x(40.0))),
            Op::Lift(Box::new(x(10.0)))
        ]
    );
    assert_eq!(
        nemesis.log[2..],
        [
            "6000.000ms heal slow-disk n0 x40.0 (ends the slow-disk of 4000.000ms)",
            "11000.000ms heal slow-disk n0 x10.0 (ends the slow-disk of 1000.000ms)",
        ]
    );
    assert_eq!(
        nemesis.applied[3].note,
        " (ends the slow-disk of 1000.000ms)"
    );
    assert!(nemesis.in_force(&|n| n.to_string()).is_empty());
}

/// A restart or resume names the crash or pause it ends (and the nodes, when it restarts
/// only some of a fault's); faults still in force at the end of the safety phase are named
/// by its heal, with how early it ends them.
#[test]
fn restarts_resumes_and_the_last_heal_name_what_they_end() {
    let at = |secs, action, undo: Option<u64>| ScheduledFault {
        at: Duration::from_secs(secs),
        action,
        undo_after: undo.map(Duration::from_secs),
        line: 1,
    };
    let up = Cluster { down: Vec::new() };
    let mut nemesis = scripted(
        vec![
            at(1, FaultAction::Crash(Target::Brokers(vec![0, 1])), None),
            at(2, FaultAction::Pause(Target::Broker(2)), Some(3)),
            at(3, FaultAction::Restart(Target::Broker(1)), None),
            at(4, FaultAction::Restart(Target::Broker(0)), None),
            at(6, FaultAction::Pause(Target::Broker(2)), Some(30)),
        ],
        20,
    );
    for s in [1, 2, 3, 4, 5, 6] {
        nemesis.fire(Instant::ZERO + Duration::from_secs(s), &up);
    }
    let log = &nemesis.log;
    assert!(
        log[2].ends_with("restart n1 (ends the crash of n1 at 1000.000ms)"),
        "{log:?}"
    );
    assert!(
        log[3].ends_with("restart n0 (ends the crash of 1000.000ms)"),
        "{log:?}"
    );
    assert!(
        log[4].ends_with("resume n2 (ends the pause of 2000.000ms)"),
        "{log:?}"
    );
    assert_eq!(
        nemesis.in_force(&|n| n.to_string()),
        ["pause n2 since 6000.000ms (pause, its own end due at 36000.000ms)"]
    );
    let end = Instant::ZERO + Duration::from_secs(20);
    assert_eq!(
        nemesis.end_all(end, &|n| n.to_string()),
        " (ends pause n2 of 6000.000ms 16s early)"
    );
    assert_eq!(nemesis.end_all(end, &|n| n.to_string()), "");
}
