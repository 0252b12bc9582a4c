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

/// The cluster of [`Cluster`] with no leader for any partition: `named` is what the
/// controller's metadata says (see [`Resolver::named_leader`]).
struct Leaderless {
    cluster: Cluster,
    named: Option<Option<NodeId>>,
}

impl Resolver for Leaderless {
    fn brokers(&self) -> Vec<NodeId> {
        self.cluster.brokers()
    }
    fn broker(&self, index: u32) -> Option<NodeId> {
        self.cluster.broker(index)
    }
    fn leader(&self, _topic: &str, _partition: u32) -> Option<NodeId> {
        None
    }
    fn named_leader(&self, _topic: &str, _partition: u32) -> Option<Option<NodeId>> {
        self.named
    }
    fn followers(&self, topic: &str, partition: u32) -> Vec<NodeId> {
        self.cluster.followers(topic, partition)
    }
    fn controller(&self) -> Option<NodeId> {
        self.cluster.controller()
    }
    fn consumer(&self, group: &str, member: u32) -> Option<NodeId> {
        self.cluster.consumer(group, member)
    }
    fn consumers(&self) -> Vec<NodeId> {
        self.cluster.consumers()
    }
    fn producer(&self, index: u32) -> Option<NodeId> {
        self.cluster.producer(index)
    }
    fn producers(&self) -> Vec<NodeId> {
        self.cluster.producers()
    }
    fn partitions(&self) -> Vec<(String, u32)> {
        self.cluster.partitions()
    }
    fn is_up(&self, id: NodeId) -> bool {
        self.cluster.is_up(id)
    }
}

/// A scripted fault whose `leader:` target names no node is a warning that says why, from
/// the controller's metadata and the fault that stopped the leader; a partition with one side
/// left empty cuts nothing, and a crash of nobody is not applied.
#[test]
fn a_target_that_names_no_node_is_a_warning_with_its_reason() {
    let leader = || Target::Leader {
        topic: "orders".into(),
        partition: 0,
    };
    let schedule = vec![
        ScheduledFault {
            at: Duration::from_secs(1),
            action: FaultAction::Pause(Target::Broker(0)),
            undo_after: None,
            line: 1,
        },
        ScheduledFault {
            at: Duration::from_secs(2),
            action: FaultAction::Partition {
                groups: vec![
                    vec![leader()],
                    vec![Target::Consumer {
                        group: "billing".into(),
                        member: 0,
                    }],
                ],
                one_way: true,
            },
            undo_after: Some(Duration::from_secs(5)),
            line: 2,
        },
        ScheduledFault {
            at: Duration::from_secs(3),
            action: FaultAction::Crash(leader()),
            undo_after: None,
            line: 3,
        },
    ];
    let why = |named| {
        let mut nemesis = scripted(schedule.clone(), 10);
        let r = Leaderless {
            cluster: Cluster {
                down: vec![NodeId(0)],
            },
            named,
        };
        for s in 1..=3 {
            nemesis.fire(Instant::ZERO + Duration::from_secs(s), &r);
        }
        let w = &nemesis.warnings;
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(
            w[0].what,
            "scripted partition at 2s ([leader:orders/0] -> [consumer:billing/0]): \
             leader:orders/0 named no node when it fired"
        );
        assert_eq!(
            w[1].what,
            "scripted crash at 3s (leader:orders/0): leader:orders/0 named no node when it fired"
        );
        assert!(w[1].why.ends_with(", so it was not applied"), "{w:?}");
        w[0].why.clone()
    };
    assert_eq!(
        why(Some(Some(NodeId(0)))),
        "orders/0 had no leader at 2000.000ms: n0, its leader in the controller's metadata, \
         was paused since 1000.000ms, so the partition cut nothing"
    );
    assert_eq!(
        why(Some(Some(NodeId(1)))),
        "orders/0 had no leader at 2000.000ms: the controller had elected n1, which had not \
         taken the leadership yet, so the partition cut nothing"
    );
    assert_eq!(
        why(Some(None)),
        "orders/0 had no leader at 2000.000ms: it was offline (no replica in its ISR the \
         controller could elect) (n0 was paused since 1000.000ms), so the partition cut nothing"
    );
}

/// A scripted fault whose `duration` runs past the load phase is a warning naming its
/// requested end and the end of the load phase; one that ended in time is not.
#[test]
fn a_scripted_duration_cut_by_the_heal_is_a_warning() {
    let pause = |at, node, secs| ScheduledFault {
        at: Duration::from_secs(at),
        action: FaultAction::Pause(Target::Broker(node)),
        undo_after: Some(Duration::from_secs(secs)),
        line: 1,
    };
    let mut nemesis = scripted(vec![pause(1, 0, 2), pause(5, 1, 20)], 10);
    let up = Cluster { down: Vec::new() };
    for s in [1, 3, 5] {
        nemesis.fire(Instant::ZERO + Duration::from_secs(s), &up);
    }
    assert!(nemesis.warnings.is_empty(), "{:?}", nemesis.warnings);
    nemesis.end_all(Instant::ZERO + Duration::from_secs(10), &|n| n.to_string());
    assert_eq!(
        nemesis.warnings,
        [FaultWarning {
            what: "scripted pause at 5s (broker:1) was to last 20s, until 25s, but the load \
                   phase ends at 10s: the heal there lifted it early"
                .to_string(),
            why: "it ended at 10000.000ms, 15s early".to_string(),
        }]
    );
}

/// How early the heal ends a fault is a measured span: printed as the report prints spans
/// (`4.235s`), not in whole nanoseconds (`4.234567891s`).
#[test]
fn the_heal_says_how_early_to_the_millisecond() {
    let pause = ScheduledFault {
        at: Duration::from_nanos(1_234_567_891),
        action: FaultAction::Pause(Target::Broker(0)),
        undo_after: Some(Duration::from_secs(5)),
        line: 1,
    };
    let mut nemesis = scripted(vec![pause], 10);
    let up = Cluster { down: Vec::new() };
    nemesis.fire(Instant::ZERO + Duration::from_nanos(1_234_567_891), &up);
    assert_eq!(
        nemesis.end_all(Instant::ZERO + Duration::from_secs(2), &|n| n.to_string()),
        " (ends pause n0 of 1234.567ms 4.235s early)"
    );
}
