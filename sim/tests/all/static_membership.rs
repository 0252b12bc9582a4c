//! Static membership (KIP-345, `group.instance.id`) in a whole cluster, each case against the
//! same run with dynamic members: a restarted static member gets its partitions back without
//! a rebalance while a dynamic one rebalances after its old member id's session; a static
//! member that stays down past its session is removed; a static member whose poll interval
//! expires sends no LeaveGroup, so the group rebalances only when its session expires, while
//! a dynamic one leaves at once.

use crate::consumer_support::*;
use kafsim_engine::app::HandlerSpec;
use kafsim_engine::config::ConfigValue;
use kafsim_engine::consumer::ConsumerConfig;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Duration, Instant, NodeId, TopicPartition};
use kafsim_sim::world::World;

const MS: fn(u64) -> Duration = Duration::from_millis;
const SESSION_MS: u64 = 10_000;
const HEARTBEAT_MS: u64 = 3_000;

/// A Java member with a 10 s session; with `instance`, member `m` is the static member
/// `<instance>-m` (what a scenario's `group.instance.id` gives its members).
fn member_config(instance: Option<&str>, m: u32, extra: &[(&str, ConfigValue)]) -> ConsumerConfig {
    let mut overrides = vec![
        ("auto.offset.reset", text("earliest")),
        ("session.timeout.ms", int(SESSION_MS as i64)),
        ("heartbeat.interval.ms", int(HEARTBEAT_MS as i64)),
    ];
    overrides.extend(extra.iter().cloned());
    if let Some(v) = instance {
        overrides.push(("group.instance.id", text(v)));
    }
    let mut c = config("java", &overrides);
    c.group_instance_id = c.group_instance_id.map(|v| format!("{v}-{m}"));
    c
}

/// Three Java members of group 0 on six partitions, with a producer until 40 s.
fn group_of_three(
    seed: u64,
    instance: Option<&str>,
    handler: impl Fn(u32) -> HandlerSpec,
    extra: &[(&str, ConfigValue)],
) -> (World, Vec<NodeId>) {
    let (mut w, c) = consumer_harness(seed, 6).build();
    add_producer(&mut w, &c, 0, 12, MS(10), Instant::from_millis(40_000));
    let members = (0..3)
        .map(|m| {
            add_consumer(
                &mut w,
                &c,
                0,
                m,
                member_config(instance, m, extra),
                handler(m),
            )
        })
        .collect();
    (w, members)
}

/// Every assignment of group 0: (at ms, member, generation, partitions).
fn assignments(w: &World) -> Vec<(u64, u32, i32, Vec<TopicPartition>)> {
    w.history()
        .entries()
        .filter_map(|e| match &e.event {
            HistoryEvent::Assigned {
                group: 0,
                member,
                generation,
                partitions,
            } => Some((e.at.as_millis(), *member, *generation, partitions.clone())),
            _ => None,
        })
        .collect()
}

/// When group 0 first applied a generation after the first one, if it did.
fn first_rebalance_ms(w: &World) -> Option<u64> {
    assignments(w)
        .into_iter()
        .find(|(_, _, g, _)| *g > 1)
        .map(|(at, ..)| at)
}

/// Polls of `member` of group 0 within [from, to) ms.
fn polls_between(w: &World, member: u32, from: u64, to: u64) -> usize {
    w.history()
        .entries()
        .filter(|e| (from..to).contains(&e.at.as_millis()))
        .filter(
            |e| matches!(e.event, HistoryEvent::Poll { group: 0, member: m, .. } if m == member),
        )
        .count()
}

const CRASH_MS: u64 = 12_000;

/// Member 1 crashes at 12 s and restarts `down` later.
fn restart_member_1(instance: Option<&str>, down: Duration) -> World {
    let (mut w, members) = group_of_three(51, instance, |_| HandlerSpec::default(), &[]);
    w.run_until(Instant::from_millis(CRASH_MS));
    assert!(
        assignments(&w).iter().all(|(_, _, g, _)| *g == 1),
        "one generation before the crash"
    );
    w.crash(members[1]);
    w.run_for(down);
    w.restart(members[1]);
    w.run_until(Instant::from_millis(45_000));
    w
}

#[test]
fn a_restarted_static_member_gets_its_partitions_back_without_a_rebalance() {
    let w = restart_member_1(Some("pod"), MS(3_000));
    let a = assignments(&w);
    assert_eq!(
        first_rebalance_ms(&w),
        None,
        "generation 1 throughout: {a:?}"
    );
    let of_1: Vec<_> = a.iter().filter(|(_, m, _, _)| *m == 1).collect();
    assert_eq!(
        of_1.len(),
        2,
        "before the crash and after the restart: {a:?}"
    );
    assert_eq!(of_1[0].3, of_1[1].3, "the same partitions back");
    assert!(!of_1[0].3.is_empty());
    assert!(
        of_1[1].0 < CRASH_MS + 3_000 + 2_000,
        "back within 2 s of its restart: {a:?}"
    );
    // The others went on consuming while member 1 was down.
    for m in [0, 2] {
        assert!(
            polls_between(&w, m, CRASH_MS, CRASH_MS + 3_000) > 0,
            "member {m}"
        );
    }
    assert_eq!(sink_lost(&w, 0), vec![]);
}

#[test]
fn a_restarted_dynamic_member_rebalances_once_its_old_session_expires() {
    let w = restart_member_1(None, MS(3_000));
    let at = first_rebalance_ms(&w).expect("a rebalance");
    // Its last heartbeat came at most one interval before the crash; the group waits for
    // the old member id until its session expires.
    assert!(
        at >= CRASH_MS - HEARTBEAT_MS + SESSION_MS,
        "the rebalance waited for the old member id: {at} ms"
    );
    assert_eq!(sink_lost(&w, 0), vec![]);
}

#[test]
fn a_static_member_down_past_its_session_is_removed_and_the_group_rebalances() {
    let w = restart_member_1(Some("pod"), MS(20_000));
    let at = first_rebalance_ms(&w).expect("a rebalance");
    assert!(
        (CRASH_MS - HEARTBEAT_MS + SESSION_MS..CRASH_MS + SESSION_MS + 2_000).contains(&at),
        "removed when its session expired: {at} ms"
    );
    let gen2: Vec<_> = assignments(&w)
        .into_iter()
        .filter(|(_, _, g, _)| *g == 2)
        .collect();
    assert!(gen2.iter().all(|(_, m, _, _)| *m != 1), "{gen2:?}");
    let owned: usize = gen2.iter().map(|(_, _, _, p)| p.len()).sum();
    assert_eq!(owned, 6, "the two others split every partition: {gen2:?}");
    assert_eq!(sink_lost(&w, 0), vec![]);
}

/// Member 1's handler takes 30 s per record with a 2 s `max.poll.interval.ms`: its poll
/// interval expires 2 s after its first poll. Returns the run and that first poll (ms).
fn slow_member_1(instance: Option<&str>) -> (World, u64) {
    let slow = |m: u32| HandlerSpec {
        process_time: if m == 1 {
            (MS(30_000), MS(30_000))
        } else {
            (MS(1), MS(2))
        },
        ..HandlerSpec::default()
    };
    let extra = [("max.poll.interval.ms", int(2_000))];
    let (mut w, _) = group_of_three(52, instance, slow, &extra);
    w.run_until(Instant::from_millis(30_000));
    let first_poll = w
        .history()
        .entries()
        .find(|e| {
            matches!(
                e.event,
                HistoryEvent::Poll {
                    group: 0,
                    member: 1,
                    ..
                }
            )
        })
        .map(|e| e.at.as_millis())
        .expect("member 1 polled");
    (w, first_poll)
}

#[test]
fn a_static_member_past_its_poll_interval_sends_no_leave_group() {
    let (w, poll) = slow_member_1(Some("pod"));
    let at = first_rebalance_ms(&w).expect("a rebalance once its session expired");
    // No LeaveGroup at poll + 2 s: the heartbeats stop then, and the old member id's
    // session ends about 10 s later.
    assert!(
        at >= poll + 2_000 + SESSION_MS - HEARTBEAT_MS,
        "no rebalance before the session expired: poll {poll} ms, rebalance {at} ms"
    );
}

#[test]
fn a_dynamic_member_past_its_poll_interval_leaves_at_once() {
    let (w, poll) = slow_member_1(None);
    let at = first_rebalance_ms(&w).expect("a rebalance");
    assert!(
        at <= poll + 2_000 + HEARTBEAT_MS,
        "LeaveGroup when the poll interval expired: poll {poll} ms, rebalance {at} ms"
    );
}
