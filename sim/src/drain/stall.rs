//! Explaining a stall (DESIGN §8 "Drain"): when nothing progressed for the liveness window,
//! name what is stuck and why: the sends without an outcome and the broker state that holds
//! them, the groups behind and the transactions, rebalances or sinks in their way. Kept apart
//! from the tracking because it reads the world's nodes (brokers, coordinators, consumers)
//! where the tracking reads only the history.

use super::{
    high_watermark, log_end_above, owned_by_running_member, sink_busy, DrainTracker, GroupInfo,
    Liveness, Progress, DRAIN_QUIET, MAX_LISTED,
};
use crate::cluster::Cluster;
use crate::database::Database;
use crate::scenario::format_duration;
use crate::world::{NodeState, World};
use kafsim_engine::broker::Broker;
use kafsim_engine::consumer::Consumer;
use kafsim_engine::coordinator::txn_metadata::TxnState;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::producer::Producer;
use kafsim_engine::{Duration, Instant, NodeId, TopicPartition};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Why the drain ended without everyone caught up.
#[derive(Clone, Debug, PartialEq)]
pub enum StallCause {
    /// Nothing progressed for the liveness window.
    NoProgress(Liveness),
    /// An explicit `drain` bound ran out.
    Bound(Duration),
    /// An automatic drain reached its hard cap while things still moved.
    Cap(Duration),
    /// The event budget ran out.
    Budget(u64),
}

/// What a stall explanation needs besides the tracker.
pub struct StallContext<'a> {
    pub w: &'a World,
    pub cluster: &'a Cluster,
    pub producers: &'a [NodeId],
    pub groups: &'a [GroupInfo],
    /// Records acknowledged per second during the load phase.
    pub produce_rate: f64,
}

pub(super) fn secs(t: Instant) -> String {
    format!("{:.3}s", t.as_secs_f64())
}

impl StallContext<'_> {
    fn tp(&self, tp: TopicPartition) -> String {
        let topic = self
            .cluster
            .topics
            .iter()
            .find(|t| t.0 == tp.topic)
            .map_or("?", |t| t.1.as_str());
        format!("{topic}/{}", tp.partition)
    }

    fn name(&self, n: NodeId) -> String {
        let state = match self.w.state(n) {
            NodeState::Up => "",
            NodeState::Paused => " (paused)",
            NodeState::Down => " (down)",
        };
        format!("{}{state}", self.w.name(n))
    }

    fn group_name(&self, index: u32) -> &str {
        self.groups
            .iter()
            .find(|g| g.index == index)
            .map_or("?", |g| g.name.as_str())
    }
}

impl DrainTracker {
    /// Several lines naming what is stuck, since when and what it is doing; the first line
    /// says why the drain ended.
    pub fn explain(&self, cause: &StallCause, cx: &StallContext) -> String {
        let now = cx.w.now();
        let mut out = match cause {
            StallCause::NoProgress(l) => format!(
                "nothing progressed for {} after the heal (liveness window: twice the longest timeout, {} = {})",
                format_duration(l.window),
                l.longest,
                format_duration(l.longest_value)
            ),
            StallCause::Bound(d) => format!(
                "not caught up when the drain bound of {} ran out",
                format_duration(*d)
            ),
            StallCause::Cap(d) => format!(
                "still not caught up after the automatic drain's cap of {}",
                format_duration(*d)
            ),
            StallCause::Budget(n) => format!("the event budget of {n} events ran out"),
        };
        let last = match self.last_progress {
            None => "none".to_string(),
            Some((t, p)) => format!("{} at {}", self.describe(p, cx), secs(t)),
        };
        let _ = write!(out, "\n  last progress: {last}");
        self.explain_producers(&mut out, cx, now);
        self.explain_groups(&mut out, cx, now);
        out
    }

    fn describe(&self, p: Progress, cx: &StallContext) -> String {
        match p {
            Progress::SendOutcome { producer } => format!("a send outcome of producer-{producer}"),
            Progress::Read { group, partition } => {
                format!("{} read {}", cx.group_name(group), cx.tp(partition))
            }
            Progress::SinkWrite { group } => format!("a sink write of {}", cx.group_name(group)),
            Progress::DeadLetter { group } => format!("a dead letter of {}", cx.group_name(group)),
            Progress::Commit { group, partition } => {
                format!(
                    "a commit of {} on {}",
                    cx.group_name(group),
                    cx.tp(partition)
                )
            }
        }
    }

    fn explain_producers(&self, out: &mut String, cx: &StallContext, now: Instant) {
        for ((_, txn), (node, since)) in &self.open_txns {
            if self.crashed_at.get(node).is_some_and(|c| c >= since) {
                continue;
            }
            let phase =
                cx.w.node::<Producer>(*node)
                    .and_then(|p| {
                        p.transaction_manager().map(|t| {
                            let never = if t.never_ends() {
                                ", the application never ends it"
                            } else {
                                ""
                            };
                            format!("{:?}{never}", t.app())
                        })
                    })
                    .unwrap_or_else(|| "down".to_string());
            let _ = write!(
                out,
                "\n  {}: transaction {txn} open since {} ({phase})",
                cx.name(*node),
                secs(*since)
            );
        }
        let mut open: BTreeMap<NodeId, (usize, Instant)> = BTreeMap::new();
        for (node, at) in self.open_sends() {
            let e = open.entry(node).or_insert((0, at));
            e.0 += 1;
            e.1 = e.1.min(at);
        }
        for (node, (n, since)) in open {
            let _ = write!(
                out,
                "\n  {}: {n} sends open, oldest since {}",
                cx.name(node),
                secs(since)
            );
            let index = cx.producers.iter().position(|p| *p == node);
            if let Some((t, what)) = index.and_then(|i| self.producer_last_error.get(&(i as u32))) {
                let _ = write!(out, "; last error {what} at {}", secs(*t));
            }
            let Some(p) = cx.w.node::<Producer>(node) else {
                continue;
            };
            let s = p.status();
            let _ = write!(
                out,
                "; {} outstanding, {} queued",
                s.outstanding_records, s.queued_records
            );
            if let Some(d) = s.next_request_deadline {
                let _ = write!(out, ", a request times out at {}", secs(d));
            }
            match s.metadata_request {
                Some((b, d)) => {
                    let _ = write!(out, ", metadata asked of {} until {}", cx.name(b), secs(d));
                }
                None if s.metadata_next_attempt > now => {
                    let _ = write!(
                        out,
                        ", next metadata request at {}",
                        secs(s.metadata_next_attempt)
                    );
                }
                None => {}
            }
            let stale: Vec<String> = s
                .leaders
                .iter()
                .filter_map(|(tp, believed)| {
                    let real = cx.cluster.leader_of(cx.w, *tp);
                    (real != *believed).then(|| {
                        let b = believed.map_or("none".to_string(), |n| cx.w.name(n).to_string());
                        let r = real.map_or("none".to_string(), |n| cx.w.name(n).to_string());
                        format!("{} leader {b} (is {r})", cx.tp(*tp))
                    })
                })
                .take(MAX_LISTED)
                .collect();
            if !stale.is_empty() {
                let _ = write!(out, "; stale metadata: {}", stale.join(", "));
            }
            let mut errors = s.errors.clone();
            errors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let errors: Vec<String> = errors
                .iter()
                .take(MAX_LISTED)
                .map(|(e, n)| format!("{e:?}x{n}"))
                .collect();
            if !errors.is_empty() {
                let _ = write!(out, "; response errors {}", errors.join(" "));
            }
        }
    }

    fn explain_groups(&self, out: &mut String, cx: &StallContext, now: Instant) {
        for g in cx.groups {
            let mut behind = Vec::new();
            let mut lag = 0;
            for &tp in &g.partitions {
                let read = self.read(g.index, tp);
                match high_watermark(cx.w, cx.cluster, tp) {
                    None => behind.push(format!("{} has no leader", cx.tp(tp))),
                    Some(hw) if read < hw => {
                        lag += hw - read;
                        let since = self
                            .polled
                            .get(&(g.index, tp))
                            .map_or("never read".to_string(), |(_, t)| {
                                format!("last read at {}", secs(*t))
                            });
                        let mut line = format!("{} read to {read} of {hw} ({since})", cx.tp(tp));
                        if let Some(why) = open_transaction_holding(cx, tp, read) {
                            let _ = write!(line, ": {why}");
                        }
                        behind.push(line);
                    }
                    Some(hw) => {
                        if !owned_by_running_member(cx.w, cx.groups, g, tp) {
                            behind.push(format!(
                                "{} read to its high watermark {hw}, but no running member owns \
                                 it (what a stopped member polled is read again once the group \
                                 reassigns it)",
                                cx.tp(tp)
                            ));
                        }
                        if let Some(leo) = log_end_above(cx.w, cx.cluster, tp, hw) {
                            behind.push(format!(
                                "{} read to its high watermark {hw}, below its leader's log end \
                                 {leo} (followers not caught up)",
                                cx.tp(tp)
                            ));
                        }
                    }
                }
            }
            let busy = sink_busy(cx.w, g);
            if behind.is_empty() && !busy {
                continue;
            }
            if behind.is_empty() {
                behind.push("read to the end".to_string());
            }
            let more = behind.len().saturating_sub(MAX_LISTED);
            behind.truncate(MAX_LISTED);
            let _ = write!(out, "\n  {}: {}", g.name, behind.join(", "));
            if more > 0 {
                let _ = write!(out, " and {more} more");
            }
            let rate = self.drain_rate(g.index, now);
            let _ = write!(out, "; lag {lag} records");
            if rate > 0.0 {
                let _ = write!(
                    out,
                    "; read {rate:.0} records/s since the heal, produced {:.0}/s during the load{}",
                    cx.produce_rate,
                    if now.saturating_since(self.last_progress_at()) < DRAIN_QUIET * 5 {
                        " (still progressing: looks like capacity)"
                    } else {
                        ""
                    }
                );
            }
            if let Some(d) = g.database {
                let executing = cx.w.node::<Database>(d).map_or(0, |db| db.executing());
                let _ = write!(
                    out,
                    "\n    {}: {executing} statements executing",
                    cx.name(d)
                );
            }
            for (m, &node) in g.members.iter().enumerate().take(MAX_LISTED) {
                let _ = write!(out, "\n    {}: ", cx.name(node));
                if let Some((t, e)) = self.commit_errors.get(&(g.index, m as u32)) {
                    let _ = write!(out, "last commit failed {e:?} at {}; ", secs(*t));
                }
                let Some(c) = cx.w.node::<Consumer>(node) else {
                    out.push_str("not running");
                    continue;
                };
                let s = c.status();
                let owns: Vec<String> = s.assignment.iter().map(|tp| cx.tp(*tp)).collect();
                let _ = write!(
                    out,
                    "{}{} generation {}, owns [{}], coordinator {}, last poll at {}",
                    s.member_state,
                    if s.rejoin_pending {
                        " (rejoin pending)"
                    } else {
                        ""
                    },
                    s.generation,
                    owns.join(" "),
                    s.coordinator.map_or("unknown".to_string(), |n| cx.name(n)),
                    secs(s.last_poll),
                );
                if !s.application_idle {
                    out.push_str(", application busy");
                }
                for p in s.processing.iter().take(MAX_LISTED) {
                    let _ = write!(
                        out,
                        ", processing {}@{} (value {}, attempt {}{})",
                        cx.tp(p.partition),
                        p.offset,
                        p.value.0,
                        p.attempt,
                        if p.awaiting_database {
                            ", waiting for the database"
                        } else {
                            ""
                        }
                    );
                }
                let waiting: Vec<String> = s
                    .partitions
                    .iter()
                    .filter(|p| p.waiting_for != "nothing")
                    .take(MAX_LISTED)
                    .map(|p| format!("{} waits for {}", cx.tp(p.partition), p.waiting_for))
                    .collect();
                if !waiting.is_empty() {
                    let _ = write!(out, ", {}", waiting.join(", "));
                }
                let inflight: Vec<String> = s
                    .inflight
                    .iter()
                    .take(MAX_LISTED)
                    .map(|r| format!("{} to {} since {}", r.api, cx.name(r.to), secs(r.sent_at)))
                    .collect();
                if !inflight.is_empty() {
                    let _ = write!(out, "; in flight: {}", inflight.join(", "));
                }
                let failed: Vec<String> = s
                    .failed_brokers
                    .iter()
                    .rev()
                    .take(MAX_LISTED)
                    .map(|(b, t)| format!("{} at {}", cx.w.name(*b), secs(*t)))
                    .collect();
                if !failed.is_empty() {
                    let _ = write!(out, "; requests failed on {}", failed.join(", "));
                }
            }
        }
    }
}

/// When `tp`'s last stable offset is what holds a reader at `read`: the open transaction at
/// it, who opened it and when, and whether any transaction coordinator knows of it. One that
/// none has in an open transaction of its producer is a *hanging transaction*: a produce that
/// reached the partition after its transaction's marker (without KIP-890 part 1 the leader
/// does not ask the coordinator first), which no coordinator will ever abort, so
/// read_committed readers stop at it for good.
fn open_transaction_holding(cx: &StallContext, tp: TopicPartition, read: u64) -> Option<String> {
    let leader = cx.cluster.leader_of(cx.w, tp)?;
    let broker = cx.w.node::<Broker>(leader)?;
    let lso = broker.last_stable_offset(tp)?;
    if lso > read {
        return None;
    }
    let (pid, epoch, first) = broker
        .open_transactions(tp)
        .into_iter()
        .find(|t| t.2 == lso)?;
    let since = cx.w.history().entries().rev().find_map(|e| match &e.event {
        HistoryEvent::Appended {
            partition,
            base_offset,
            leader: true,
            ..
        } if *partition == tp && *base_offset == first => Some(e.at),
        _ => None,
    });
    let mut out = format!(
        "its last stable offset {lso} is the first offset of a transaction of producer id {pid} \
         epoch {epoch} open since {}",
        since.map_or("?".to_string(), secs)
    );
    let known = cx.cluster.brokers.iter().find_map(|&b| {
        let c = cx.w.node::<Broker>(b)?.transaction_coordinator();
        let (id, meta) = c.find_producer(pid)?;
        Some((
            b,
            id.to_string(),
            meta.epoch,
            meta.state,
            meta.partitions.contains(&tp),
            (meta.started, meta.timeout),
        ))
    });
    match known {
        Some((b, id, e, TxnState::Ongoing, true, (started, timeout))) => {
            // `abortTimedOutTransactions` aborts it at its first check past the timeout.
            let _ = write!(
                out,
                " (coordinator {} has {id} Ongoing at epoch {e} with this partition since {}: \
                 the application has not ended it, and the coordinator aborts it once its \
                 transaction.timeout.ms of {} has passed, at about {}, at its next check for \
                 timed-out transactions)",
                cx.name(b),
                secs(started),
                format_duration(timeout),
                secs(started + timeout),
            );
        }
        Some((b, id, e, state, true, _))
            if !matches!(state, TxnState::Empty)
                && !matches!(state, TxnState::CompleteCommit | TxnState::CompleteAbort) =>
        {
            let _ = write!(
                out,
                " (coordinator {} has {id} in {state:?} at epoch {e} with this partition: it will \
                 end it)",
                cx.name(b)
            );
        }
        Some((b, id, e, state, _, _)) => {
            let _ = write!(
                out,
                "; its coordinator {} has {id} at epoch {e} in {state:?} without this partition: a \
                 produce written after its transaction's marker; no coordinator will ever abort \
                 it (a hanging transaction: read_committed readers stop here; KIP-890 part 1, \
                 transaction.partition.verification.enable, refuses such a produce)",
                cx.name(b)
            );
        }
        None => out.push_str(
            "; no coordinator knows the producer: no coordinator will ever abort it (a hanging \
             transaction)",
        ),
    }
    Some(out)
}
