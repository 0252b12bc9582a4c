//! The drain phase (DESIGN §3 phases, §8 "Drain"): after the heal, has everyone caught up, is
//! anything still moving, and when nothing is, what is stuck and why.
//!
//! [`DrainTracker`] follows the history from the start of the run (incrementally, each call
//! looks only at new entries). It knows the sends still without an outcome, how far each group
//! has read each partition, the last *progress* (a send outcome, a record read, a sink write,
//! a dead letter, a commit that moved a committed offset forward), the peak consumer lag and
//! when each group caught up. A group's lag is the high watermark minus the next offset the
//! group will read, summed over the partitions it consumes, as `kafka-consumer-groups
//! --describe` computes LAG (log end offset minus current offset) but from the records the
//! group actually read, so it also counts what was read and not yet committed as consumed.
//!
//! [`Liveness`] is the window of no progress after which a run is a `stall`: twice the
//! longest timeout of the scenario's own configuration that can legitimately hold up progress
//! (see [`Liveness::of`]), so a user never has to shorten Kafka's timeouts to fit the drain.
//!
//! Why a drain stalled is explained in [`stall`]: it reads the world as well as the
//! history and is as long as the tracking itself.

mod liveness;
mod stall;
pub use liveness::Liveness;
pub use stall::{StallCause, StallContext};

use crate::cluster::Cluster;
use crate::database::Database;
use crate::history::History;
use crate::world::{NodeState, World};
use kafsim_engine::broker::Broker;
use kafsim_engine::consumer::Consumer;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::producer::Producer;
use kafsim_engine::protocol::ErrorCode;
use kafsim_engine::{Duration, Instant, NodeId, TopicPartition};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// Consumers are caught up only after this long without a poll or a sink write, and once no
/// running member holds a record it polled and has not finished ([`in_hand`]: a handler may
/// take longer than this).
pub const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// An automatic drain ends after at least this much simulated time even if something is
/// still progressing (with the event budget, so no seed can hang a campaign).
pub const MIN_DRAIN_CAP: Duration = Duration::from_secs(3600);
/// ... or this many liveness windows, whichever is longer.
pub const DRAIN_CAP_WINDOWS: u64 = 10;

/// Lines of detail listed per group or producer in a stall explanation.
const MAX_LISTED: usize = 4;

/// A group as the tracker sees it.
#[derive(Clone, Debug)]
pub struct GroupInfo {
    pub index: u32,
    pub name: String,
    /// Every partition of every topic it consumes.
    pub partitions: Vec<TopicPartition>,
    pub members: Vec<NodeId>,
    /// The group's database node (its sink).
    pub database: Option<NodeId>,
    /// Handler `produce_to`: every partition of its output topic (its sink).
    pub outputs: Vec<TopicPartition>,
}

/// What made the last progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    SendOutcome {
        producer: u32,
    },
    Read {
        group: u32,
        partition: TopicPartition,
    },
    SinkWrite {
        group: u32,
    },
    DeadLetter {
        group: u32,
    },
    Commit {
        group: u32,
        partition: TopicPartition,
    },
}

/// Why a run is not caught up (the first reason found).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotCaughtUp {
    OpenSends(usize),
    /// Transactions begun and not yet committed, aborted or given up by a live producer:
    /// their markers decide what read_committed consumers may read.
    OpenTransactions(usize),
    NoLeader(TopicPartition),
    Behind {
        group: u32,
        partition: TopicPartition,
        read: u64,
        hw: u64,
    },
    Processing {
        group: u32,
    },
    /// The group read to the high watermark, but no running member has a position on the
    /// partition: a member that polled records and stopped (crashed, or was removed) leaves
    /// them unprocessed until the group reassigns the partition and its new owner reads
    /// them again from the committed offset, so what it read does not count yet.
    Unowned {
        group: u32,
        partition: TopicPartition,
    },
    /// The group read to the high watermark, but the leader holds records above it: its
    /// followers have not caught up yet. In a healed cluster they will (or the ISR shrinks
    /// after `replica.lag.time.max.ms`) and the group will read them: an acknowledged record
    /// there is not lost, so the run is not over.
    Replicating {
        partition: TopicPartition,
        hw: u64,
        log_end: u64,
    },
}

/// Consecutive history entries that are polls of one (group, partition): what
/// [`DrainTracker::scan`] takes in at once. Nothing reads the tracker between two entries
/// of one scan, so one update per run leaves it as one per entry would: the maps a poll
/// writes (`polled`, `last_activity`, the counts) are written by no entry inside the run,
/// and the run is applied before the next entry of another kind.
struct PollRun {
    group: u32,
    partition: TopicPartition,
    /// The highest offset polled + 1.
    next: u64,
    first_at: Instant,
    at: Instant,
    count: u64,
}

/// Follows the history: progress, lag, catching up.
#[derive(Default)]
pub struct DrainTracker {
    scanned: usize,
    /// Values invoked without an outcome yet: the invoking node and when.
    open_sends: FxHashMap<u64, (NodeId, Instant)>,
    /// Transactions begun without an outcome yet: (producer, txn) -> the node and when.
    open_txns: BTreeMap<(u32, u64), (NodeId, Instant)>,
    /// When each node last crashed or lost power: its sends still open then will never get an
    /// outcome (the process that would report it is gone); they are maybe-happened, as
    /// Jepsen treats them, and do not hold up the drain.
    pub crashed_at: BTreeMap<NodeId, Instant>,
    /// Per (group, partition): the next offset to read (highest polled + 1), and when.
    polled: BTreeMap<(u32, TopicPartition), (u64, Instant)>,
    /// Per (group, partition): the highest committed offset.
    committed: BTreeMap<(u32, TopicPartition), u64>,
    /// Per group: last poll or sink write.
    last_activity: BTreeMap<u32, Instant>,
    last_progress: Option<(Instant, Progress)>,
    /// Per producer index: the last SendFail / SendInfo, and when.
    producer_last_error: BTreeMap<u32, (Instant, String)>,
    /// Per (group, member): the last failed commit, and when.
    commit_errors: BTreeMap<(u32, u32), (Instant, ErrorCode)>,
    pub records_failed: u64,
    pub records_unknown: u64,
    /// Per group: records polled, and those polled after the heal.
    polled_count: BTreeMap<u32, u64>,
    polled_after_heal: BTreeMap<u32, u64>,
    /// Per group: the largest lag sampled.
    pub peak_lag: BTreeMap<u32, u64>,
    /// Per group: since when it has been caught up (cleared when it falls behind again).
    pub caught_up_at: BTreeMap<u32, Instant>,
    /// Per group: the last check that found it behind for a reason other than still
    /// processing (behind the high watermark, a partition without a running owner, ...).
    /// A group can catch up without reading anything (a reset to the log end once it finally
    /// gets its partitions), so its last poll alone would date the catch-up too early.
    behind_at: BTreeMap<u32, Instant>,
    /// Per group: the last time a member set a position (a reset, a seek, resuming at the
    /// committed offset on a new assignment): a group can catch up by that alone.
    positioned_at: BTreeMap<u32, Instant>,
    heal_at: Option<Instant>,
}

impl DrainTracker {
    /// The history was cleared after the last [`DrainTracker::scan`] (a streaming run):
    /// the next scan starts at its first entry.
    pub fn history_cleared(&mut self) {
        self.scanned = 0;
    }

    /// Take in the history entries recorded since the last call.
    pub fn scan(&mut self, history: &History) {
        // A poll returns a run of records of one partition: the run's entries are taken in
        // with one update of the maps they touch, applied before any other entry (see
        // [`PollRun`]).
        let mut run: Option<PollRun> = None;
        for e in history.entries_from(self.scanned) {
            if let HistoryEvent::Poll {
                group,
                partition,
                offset,
                ..
            } = &e.event
            {
                let next = *offset + 1;
                match run.as_mut() {
                    Some(r) if r.group == *group && r.partition == *partition => {
                        r.next = r.next.max(next);
                        r.at = e.at;
                        r.count += 1;
                    }
                    _ => {
                        if let Some(r) = run.take() {
                            self.take_poll_run(r);
                        }
                        run = Some(PollRun {
                            group: *group,
                            partition: *partition,
                            next,
                            first_at: e.at,
                            at: e.at,
                            count: 1,
                        });
                    }
                }
                self.last_progress = Some((
                    e.at,
                    Progress::Read {
                        group: *group,
                        partition: *partition,
                    },
                ));
                continue;
            }
            if let Some(r) = run.take() {
                self.take_poll_run(r);
            }
            let progress = match &e.event {
                HistoryEvent::SendInvoke { value, .. } => {
                    self.open_sends.insert(value.0, (e.node, e.at));
                    None
                }
                HistoryEvent::SendOk {
                    value, producer, ..
                } => {
                    self.open_sends.remove(&value.0);
                    Some(Progress::SendOutcome {
                        producer: *producer,
                    })
                }
                HistoryEvent::SendFail {
                    value,
                    producer,
                    error,
                } => {
                    self.open_sends.remove(&value.0);
                    self.records_failed += 1;
                    let what = format!("failed {error:?}");
                    self.producer_last_error.insert(*producer, (e.at, what));
                    Some(Progress::SendOutcome {
                        producer: *producer,
                    })
                }
                HistoryEvent::SendInfo {
                    value,
                    producer,
                    reason,
                } => {
                    self.open_sends.remove(&value.0);
                    self.records_unknown += 1;
                    let what = format!("unknown outcome ({reason})");
                    self.producer_last_error.insert(*producer, (e.at, what));
                    Some(Progress::SendOutcome {
                        producer: *producer,
                    })
                }
                HistoryEvent::TxnBegin { producer, txn } => {
                    self.open_txns.insert((*producer, *txn), (e.node, e.at));
                    None
                }
                HistoryEvent::TxnCommit { producer, txn }
                | HistoryEvent::TxnAbort { producer, txn }
                | HistoryEvent::TxnUnknown { producer, txn, .. } => {
                    self.open_txns.remove(&(*producer, *txn));
                    Some(Progress::SendOutcome {
                        producer: *producer,
                    })
                }
                HistoryEvent::Poll { .. } => unreachable!("taken in as a run above"),
                HistoryEvent::PositionReset { group, .. } | HistoryEvent::Resumed { group, .. } => {
                    self.positioned_at.insert(*group, e.at);
                    None
                }
                HistoryEvent::SinkWrite { group, .. } => {
                    self.last_activity.insert(*group, e.at);
                    Some(Progress::SinkWrite { group: *group })
                }
                HistoryEvent::DeadLetter { group, .. } => {
                    self.last_activity.insert(*group, e.at);
                    Some(Progress::DeadLetter { group: *group })
                }
                HistoryEvent::Commit {
                    group,
                    member,
                    partition,
                    offset,
                    error,
                    ..
                } => {
                    if *error != ErrorCode::None {
                        self.commit_errors.insert((*group, *member), (e.at, *error));
                        None
                    } else {
                        // Re-committing the same offset (Java's auto-commit does it every
                        // interval) is not progress.
                        let c = self.committed.entry((*group, *partition)).or_insert(0);
                        (*offset > *c).then(|| {
                            *c = *offset;
                            Progress::Commit {
                                group: *group,
                                partition: *partition,
                            }
                        })
                    }
                }
                _ => None,
            };
            if let Some(p) = progress {
                self.last_progress = Some((e.at, p));
            }
        }
        if let Some(r) = run.take() {
            self.take_poll_run(r);
        }
        self.scanned = history.len();
    }

    /// The polls of one run, as the entry-by-entry updates would have left the maps: the
    /// next offset to read is the highest polled + 1, dated by the last poll; the group was
    /// last active then; each poll counts.
    fn take_poll_run(&mut self, r: PollRun) {
        assert!(
            r.count > 0 && r.first_at <= r.at,
            "a poll run of {} entries from {:?} to {:?}",
            r.count,
            r.first_at,
            r.at
        );
        let entry = self
            .polled
            .entry((r.group, r.partition))
            .or_insert((0, r.first_at));
        *entry = (entry.0.max(r.next), r.at);
        self.last_activity.insert(r.group, r.at);
        *self.polled_count.entry(r.group).or_default() += r.count;
        if self.heal_at.is_some() {
            *self.polled_after_heal.entry(r.group).or_default() += r.count;
        }
    }

    /// The heal happened now: the drain starts.
    pub fn healed(&mut self, at: Instant) {
        self.heal_at = Some(at);
    }

    /// When anything last progressed, counted from the heal at the earliest (the heal
    /// restarts every node: the time before it does not count against the drain).
    pub fn last_progress_at(&self) -> Instant {
        let heal = self.heal_at.unwrap_or(Instant::ZERO);
        self.last_progress.map_or(heal, |(t, _)| t.max(heal))
    }

    fn open_sends(&self) -> Vec<(NodeId, Instant)> {
        let crashed =
            |node: &NodeId, at: &Instant| self.crashed_at.get(node).is_some_and(|c| c >= at);
        let mut open: Vec<(NodeId, Instant)> = self
            .open_sends
            .values()
            .filter(|(node, at)| !crashed(node, at))
            .copied()
            .collect();
        open.sort();
        open
    }

    /// Open transactions of producers that did not crash since they began them (a crashed
    /// producer's transaction is aborted by the coordinator; nobody will record it), and whose
    /// application ends its transactions (one that never does, `records = "unlimited"`, leaves
    /// its last one to the coordinator's `transaction.timeout.ms`: the drain waits for the
    /// readers, which that transaction holds back, not for the application).
    fn open_txns(&self, w: &World) -> usize {
        let crashed =
            |node: &NodeId, at: &Instant| self.crashed_at.get(node).is_some_and(|c| c >= at);
        let never_ends = |node: &NodeId| {
            w.node::<Producer>(*node)
                .and_then(|p| p.transaction_manager())
                .is_some_and(|t| t.never_ends())
        };
        self.open_txns
            .values()
            .filter(|(node, at)| !crashed(node, at) && !never_ends(node))
            .count()
    }

    fn read(&self, group: u32, tp: TopicPartition) -> u64 {
        self.polled.get(&(group, tp)).map_or(0, |r| r.0)
    }

    /// Sample lag, note who caught up, and say whether the whole run has: no send without
    /// an outcome, every group has read up to the high watermark of every partition it
    /// consumes, has been quiet for [`DRAIN_QUIET`] and holds no record in hand.
    pub fn observe(
        &mut self,
        w: &World,
        cluster: &Cluster,
        groups: &[GroupInfo],
    ) -> Result<(), NotCaughtUp> {
        let mut verdict = Ok(());
        let open = self.open_sends().len();
        if open > 0 {
            verdict = Err(NotCaughtUp::OpenSends(open));
        }
        let txns = self.open_txns(w);
        if txns > 0 && verdict.is_ok() {
            verdict = Err(NotCaughtUp::OpenTransactions(txns));
        }
        let mut hws: BTreeMap<TopicPartition, Option<u64>> = BTreeMap::new();
        for g in groups {
            let mut lag = 0u64;
            let mut behind = None;
            for &tp in &g.partitions {
                let hw = *hws
                    .entry(tp)
                    .or_insert_with(|| high_watermark(w, cluster, tp));
                // Services sharing one Kafka group (tables with one `group` name) split its
                // partitions: the group has read what any of them read.
                // A live member's position counts too: a consumer that reset to the log end
                // (`auto.offset.reset = latest` with nothing committed) has nothing left to
                // read there though it read nothing (the next offset it will read, as
                // `kafka-consumer-groups --describe` takes it).
                let read = groups
                    .iter()
                    .filter(|o| o.name == g.name)
                    .map(|o| {
                        let position = o
                            .members
                            .iter()
                            .filter(|&&m| w.is_up(m))
                            .filter_map(|&m| w.node::<Consumer>(m)?.position(tp))
                            .max()
                            .unwrap_or(0);
                        self.read(o.index, tp).max(position)
                    })
                    .max()
                    .unwrap_or(0);
                match hw {
                    None => {
                        behind.get_or_insert(NotCaughtUp::NoLeader(tp));
                    }
                    Some(hw) if read < hw => {
                        lag += hw - read;
                        behind.get_or_insert(NotCaughtUp::Behind {
                            group: g.index,
                            partition: tp,
                            read,
                            hw,
                        });
                    }
                    Some(hw) => {
                        if !owned_by_running_member(w, groups, g, tp) {
                            behind.get_or_insert(NotCaughtUp::Unowned {
                                group: g.index,
                                partition: tp,
                            });
                        }
                        if let Some(log_end) = log_end_above(w, cluster, tp, hw) {
                            behind.get_or_insert(NotCaughtUp::Replicating {
                                partition: tp,
                                hw,
                                log_end,
                            });
                        }
                    }
                }
            }
            let peak = self.peak_lag.entry(g.index).or_default();
            *peak = (*peak).max(lag);
            let quiet = self
                .last_activity
                .get(&g.index)
                .is_none_or(|t| w.now().saturating_since(*t) >= DRAIN_QUIET);
            if behind.is_none()
                && (!quiet || in_hand(w, g) || sink_busy(w, g) || output_open(w, cluster, g))
            {
                behind = Some(NotCaughtUp::Processing { group: g.index });
            }
            match behind {
                Some(reason) => {
                    self.caught_up_at.remove(&g.index);
                    if !matches!(reason, NotCaughtUp::Processing { .. }) {
                        self.behind_at.insert(g.index, w.now());
                    }
                    if verdict.is_ok() {
                        verdict = Err(reason);
                    }
                }
                None => {
                    if let Some(heal) = self.heal_at {
                        // Caught up at its last poll, sink write or position change,
                        // and not before the last check that found it behind.
                        let at = [&self.last_activity, &self.positioned_at, &self.behind_at]
                            .iter()
                            .filter_map(|m| m.get(&g.index).copied())
                            .fold(heal, Instant::max);
                        self.caught_up_at.entry(g.index).or_insert(at);
                    }
                }
            }
        }
        verdict
    }

    /// Seconds from the heal until `group` caught up (None: it has not).
    pub fn catch_up_seconds(&self, group: u32) -> Option<f64> {
        let heal = self.heal_at?;
        let at = self.caught_up_at.get(&group)?;
        Some(at.saturating_since(heal).as_secs_f64())
    }

    /// Records per second `group` read since the heal.
    pub fn drain_rate(&self, group: u32, now: Instant) -> f64 {
        let Some(heal) = self.heal_at else { return 0.0 };
        let secs = now.saturating_since(heal).as_secs_f64();
        let n = self.polled_after_heal.get(&group).copied().unwrap_or(0);
        if secs > 0.0 {
            n as f64 / secs
        } else {
            0.0
        }
    }

    /// Records a group read in the whole run.
    pub fn records_read(&self, group: u32) -> u64 {
        self.polled_count.get(&group).copied().unwrap_or(0)
    }
}

/// Whether a running member of `g` (or of a service sharing its group name) has a position
/// on `tp`: owns it and is reading it. Without one, the records its last owner polled are
/// not settled: if that owner stopped before processing them, the group reads them again
/// once it reassigns the partition (after the dead member's session times out).
fn owned_by_running_member(
    w: &World,
    groups: &[GroupInfo],
    g: &GroupInfo,
    tp: TopicPartition,
) -> bool {
    (groups.iter().filter(|o| o.name == g.name))
        .flat_map(|o| o.members.iter())
        .any(|&m| {
            w.is_up(m)
                && w.node::<Consumer>(m)
                    .is_some_and(|c| c.position(tp).is_some())
        })
}

/// Whether a running member of `g` holds records it polled and has not finished processing
/// (or a commit of them it waits on). Without this, a handler slower than [`DRAIN_QUIET`]
/// ended the run with its last record in hand, reported as a sink-loss no real service shows.
fn in_hand(w: &World, g: &GroupInfo) -> bool {
    g.members
        .iter()
        .any(|m| w.is_up(*m) && w.node::<Consumer>(*m).is_some_and(Consumer::holds_records))
}

/// Whether `g`'s sink has not caught up: a member waits for a statement's answer or retry,
/// or the database is down or still executing statements.
fn sink_busy(w: &World, g: &GroupInfo) -> bool {
    let waiting = g.members.iter().any(|m| {
        w.node::<Consumer>(*m)
            .is_some_and(|c| c.pending_statements() > 0)
    });
    let database = g.database.is_some_and(|d| {
        w.state(d) != NodeState::Up || w.node::<Database>(d).is_some_and(|db| db.executing() > 0)
    });
    waiting || database
}

/// A consume-transform-produce group's output is not settled: a member is ending a batch
/// (its transaction or flush), or an output partition has a transaction without its marker
/// (last stable offset below the high watermark) or records above it.
fn output_open(w: &World, cluster: &Cluster, g: &GroupInfo) -> bool {
    if g.outputs.is_empty() {
        return false;
    }
    let ending = g
        .members
        .iter()
        .any(|m| w.is_up(*m) && w.node::<Consumer>(*m).is_some_and(|c| c.ctp_busy()));
    ending
        || g.outputs.iter().any(|tp| {
            let leader = cluster.leader_of(w, *tp).and_then(|l| w.node::<Broker>(l));
            match leader {
                None => true,
                Some(b) => {
                    let hw = b.partition(*tp).map_or(0, |p| p.high_watermark);
                    b.last_stable_offset(*tp).is_none_or(|lso| lso < hw)
                        || log_end_above(w, cluster, *tp, hw).is_some()
                }
            }
        })
}

/// The high watermark of `tp` on its current leader.
fn high_watermark(w: &World, cluster: &Cluster, tp: TopicPartition) -> Option<u64> {
    cluster
        .leader_of(w, tp)
        .and_then(|l| w.node::<Broker>(l))
        .and_then(|b| b.partition(tp))
        .map(|p| p.high_watermark)
}

/// The log end of `tp` on its current leader, when it is above the high watermark `hw`.
fn log_end_above(w: &World, cluster: &Cluster, tp: TopicPartition, hw: u64) -> Option<u64> {
    cluster
        .leader_of(w, tp)
        .and_then(|l| w.node::<Broker>(l))
        .and_then(|b| b.partition(tp))
        .map(|p| p.log.log_end_offset())
        .filter(|leo| *leo > hw)
}

#[cfg(test)]
mod tests;
