//! The group coordinator under faults (issue 5 part 1): committed offsets live in a replicated
//! `__consumer_offsets` partition, so a coordinator crash loses nothing acknowledged, while an
//! unreplicated, unflushed offsets partition loses commits on power loss. Also measures how
//! often a 3-member group rebalances under consumer crashes and what a rebalance costs.

use crate::consumer_support::*;
use crate::harness::Harness;
use kafsim_engine::app::{CommitMode, HandlerSpec};
use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::config::ConfigValue;
use kafsim_engine::coordinator::java_string_hash_abs;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::ErrorCode;
use kafsim_engine::{Duration, Instant, NodeId, TopicPartition};
use kafsim_sim::cluster::Cluster;
use kafsim_sim::world::{World, WorldConfig};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

const MS: fn(u64) -> Duration = Duration::from_millis;
const OFFSETS_PARTITIONS: u32 = 4;

/// Three brokers, topic "t" of 3 partitions, `__consumer_offsets` of
/// [`OFFSETS_PARTITIONS`] partitions replicated `rf` times.
fn harness_with_offsets_rf(seed: u64, rf: u32) -> Harness {
    let config = BrokerConfig {
        offsets_topic_replication_factor: rf,
        ..BrokerConfig::default()
    };
    Harness::new(seed)
        .partitions(3)
        .offsets_partitions(OFFSETS_PARTITIONS)
        .broker_config(config)
}

fn coordinator_of(w: &World, c: &Cluster, group: &str) -> Option<NodeId> {
    let p = java_string_hash_abs(group) % OFFSETS_PARTITIONS;
    c.leader_of(w, TopicPartition::new(c.offsets_topic, p))
}

/// Last successful commit per partition before `until`.
fn last_commits(w: &World, until: Instant) -> BTreeMap<TopicPartition, u64> {
    let mut out = BTreeMap::new();
    for e in w.history().entries().filter(|e| e.at < until) {
        if let HistoryEvent::Commit {
            partition,
            offset,
            error: ErrorCode::None,
            ..
        } = &e.event
        {
            out.insert(*partition, *offset);
        }
    }
    out
}

/// First polled offset per partition at or after `from`.
fn first_polls(w: &World, from: Instant) -> BTreeMap<TopicPartition, u64> {
    let mut out = BTreeMap::new();
    for e in w.history().entries().filter(|e| e.at >= from) {
        if let HistoryEvent::Poll {
            partition, offset, ..
        } = &e.event
        {
            out.entry(*partition).or_insert(*offset);
        }
    }
    out
}

/// A consumer commits synchronously after every poll; at 6 s the consumer crashes and the
/// coordinator broker fails (`fault`); the consumer restarts at 7 s and resumes from the
/// offsets the (new) coordinator serves. Returns (world, last commits before the fault, first polls after
/// the consumer's restart).
fn failover_run(
    rf: u32,
    fault: impl Fn(&mut World, NodeId),
) -> (
    World,
    BTreeMap<TopicPartition, u64>,
    BTreeMap<TopicPartition, u64>,
) {
    let (mut w, c) = harness_with_offsets_rf(31, rf).build();
    add_producer(&mut w, &c, 0, 6, MS(10), Instant::from_millis(5_500));
    let cfg = config(
        "java",
        &[
            ("auto.offset.reset", text("earliest")),
            ("enable.auto.commit", ConfigValue::Bool(false)),
            ("session.timeout.ms", int(10_000)),
        ],
    );
    let h = HandlerSpec {
        process_time: (MS(2), MS(2)),
        commit: CommitMode::Sync,
        ..HandlerSpec::default()
    };
    let consumer = add_consumer(&mut w, &c, 0, 0, cfg, h);
    w.run_until(Instant::from_millis(6000));
    let coordinator = coordinator_of(&w, &c, "g0").expect("a coordinator");
    // The consumer dies with the coordinator, so no commit after the fault hides a lost one.
    w.crash(consumer);
    let before = last_commits(&w, w.now());
    assert_eq!(before.len(), 3, "commits on every partition: {before:?}");
    fault(&mut w, coordinator);
    w.run_until(Instant::from_millis(7000));
    w.restart(consumer);
    let restart = w.now();
    w.run_until(Instant::from_millis(40_000));
    let after = first_polls(&w, restart);
    (w, before, after)
}

#[test]
fn commits_survive_a_coordinator_crash() {
    let (w, before, after) = failover_run(3, |w, b| w.crash(b));
    for (tp, committed) in &before {
        let resumed = after.get(tp).copied().unwrap_or(u64::MAX);
        assert!(
            resumed >= *committed,
            "{tp}: resumed at {resumed} below commit {committed}"
        );
    }
    let lost = sink_lost(&w, 0);
    assert!(
        lost.is_empty(),
        "{} lost, first {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[test]
fn unreplicated_unflushed_offsets_lose_commits_on_power_loss() {
    let (w, before, after) = failover_run(1, |w, b| {
        w.power_loss(b, false);
        w.restart(b);
    });
    let regressed = before
        .iter()
        .filter(|(tp, committed)| after.get(*tp).is_some_and(|r| r < *committed))
        .count();
    assert!(
        regressed > 0,
        "the coordinator lost its commits: some partition restarts below its commit \
         (before {before:?}, after {after:?})"
    );
    assert!(
        !sink_duplicates(&w, 0).is_empty(),
        "records re-read from the start"
    );
}

/// What a 3-member group's rebalances cost under random member crashes.
struct Storm {
    /// Distinct generations the members applied.
    generations: usize,
    /// Mean time from a member crash to the next applied assignment (ms).
    mean_recovery_ms: f64,
    /// Group-protocol messages (FindCoordinator, JoinGroup, SyncGroup, LeaveGroup,
    /// OffsetFetch, requests and responses) delivered, per generation.
    group_messages_per_generation: f64,
    events: u64,
}

/// A 3-member group whose members crash at random (every 5-15 s) and restart after 2 s, over
/// `minutes` of simulated time (`crashes` false: the same run without faults).
fn crash_storm(seed: u64, crashes: bool, minutes: u64) -> Storm {
    let world_config = WorldConfig {
        trace: kafsim_sim::trace::TraceLevel::Events,
        ..WorldConfig::default()
    };
    let (mut w, c) = consumer_harness(seed, 6).world_config(world_config).build();
    let end = Instant::from_millis(minutes * 60_000);
    add_producer(&mut w, &c, 0, 12, MS(20), end);
    let cfg = config(
        "java",
        &[
            ("auto.offset.reset", text("earliest")),
            ("session.timeout.ms", int(10_000)),
        ],
    );
    let members: Vec<NodeId> = (0..3)
        .map(|m| add_consumer(&mut w, &c, 0, m, cfg.clone(), HandlerSpec::default()))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut crash_times = Vec::new();
    w.run_until(Instant::from_millis(10_000));
    while w.now() < end {
        w.run_for(MS(rng.gen_range(5_000..15_000)));
        if crashes {
            let m = members[rng.gen_range(0..members.len())];
            crash_times.push(w.now());
            w.crash(m);
            w.run_for(MS(2000));
            w.restart(m);
        }
    }
    w.run_for(MS(20_000));
    let applied: Vec<(Instant, i32)> = w
        .history()
        .entries()
        .filter_map(|e| match &e.event {
            HistoryEvent::Assigned { generation, .. } => Some((e.at, *generation)),
            _ => None,
        })
        .collect();
    let generations: BTreeSet<i32> = applied.iter().map(|(_, g)| *g).collect();
    let recoveries: Vec<f64> = crash_times
        .iter()
        .filter_map(|t| applied.iter().find(|(at, _)| at > t))
        .zip(&crash_times)
        .map(|((at, _), t)| at.saturating_since(*t).as_secs_f64() * 1000.0)
        .collect();
    let kinds = [
        "FindCoordinator",
        "JoinGroup",
        "SyncGroup",
        "LeaveGroup",
        "OffsetFetch",
    ];
    let group_messages = w
        .trace_lines()
        .iter()
        .filter(|l| l.contains(" recv ") && kinds.iter().any(|k| l.contains(k)))
        .count();
    Storm {
        generations: generations.len(),
        mean_recovery_ms: recoveries.iter().sum::<f64>() / recoveries.len().max(1) as f64,
        group_messages_per_generation: group_messages as f64 / generations.len().max(1) as f64,
        events: w.stats().events,
    }
}

#[test]
fn consumer_crashes_cause_rebalances_and_a_quiet_group_does_not() {
    let minutes = 2;
    let quiet = crash_storm(41, false, minutes);
    let storm = crash_storm(41, true, minutes);
    assert_eq!(
        quiet.generations, 1,
        "a quiet group settles in one generation"
    );
    assert!(
        storm.generations > 4,
        "crashes rebalance the group: {}",
        storm.generations
    );
    eprintln!(
        "3-member group, a member crash every 5-15 s (restart after 2 s), {minutes} min: \
         {:.1} rebalances per simulated minute (quiet: {}), {:.0} ms from a crash to the next \
         applied assignment, {:.1} group-protocol messages per generation, {} vs {} events",
        storm.generations as f64 / minutes as f64,
        quiet.generations,
        storm.mean_recovery_ms,
        storm.group_messages_per_generation,
        storm.events,
        quiet.events,
    );
}
