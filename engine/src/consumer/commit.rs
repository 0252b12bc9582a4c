//! Offset commits as each client really does them.
//!
//! - Auto-commit, Java: at the start of `poll()` once `auto.commit.interval.ms` has passed, an
//!   asynchronous commit of the *positions* (the offsets after every record poll returned,
//!   processed or not); synchronously before a rebalance.
//! - Auto-commit, sarama / librdkafka / kafka-go with CommitInterval: a background timer
//!   commits the *marked* (stored) offsets; also before a rebalance.
//! - Auto-commit, kafka-go CommitInterval 0: ReadMessage commits each message synchronously
//!   before returning it.
//! - Manual: a sync commit blocks the poll loop until answered (retried on coordinator errors,
//!   as Java's commitSync until its timeout); an async commit is fire-and-forget.
//!
//! Every answer is recorded as a `Commit` history event per partition. Commits need a stable
//! membership (Java 2.4+ refuses to commit during a rebalance): a commit attempted without one
//! fails with RebalanceInProgress, recorded as such.

use super::{Consumer, Req};
use crate::app::CommitMode;
use crate::history::HistoryEvent;
use crate::node::{Cx, NodeId};
use crate::protocol::{ErrorCode, Message, OffsetCommitRequest, OffsetCommitResponse};
use crate::record::TopicPartition;
use crate::time::Instant;
use std::collections::BTreeMap;

use super::profile::AutoCommitStyle;

/// Attempts of one synchronous commit (Java retries until default.api.timeout.ms, 60 s).
pub const MAX_SYNC_COMMIT_ATTEMPTS: u32 = 20;

/// (partition, next offset, leader epoch of the last consumed record).
pub type CommitOffset = (TopicPartition, u64, Option<u32>);

/// Context of a commit request in flight.
#[derive(Clone, Debug)]
pub struct CommitCtx {
    pub sync: bool,
    pub generation: i32,
    pub offsets: Vec<CommitOffset>,
}

/// A synchronous commit the poll loop waits for.
#[derive(Clone, Debug)]
pub struct SyncCommit {
    offsets: Vec<CommitOffset>,
    attempts: u32,
    inflight: bool,
    not_before: Instant,
}

impl SyncCommit {
    pub fn offsets(&self) -> &[CommitOffset] {
        &self.offsets
    }
}

/// Errors after which Java's commitSync retries (after finding the coordinator again).
fn is_retriable_commit_error(e: ErrorCode) -> bool {
    matches!(
        e,
        ErrorCode::NotCoordinator
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::CoordinatorLoadInProgress
            | ErrorCode::RequestTimedOut
            | ErrorCode::NetworkException
    )
}

impl Consumer {
    /// Whether the client's own auto-commit is in charge.
    pub(super) fn auto_commit_enabled(&self) -> bool {
        self.config.enable_auto_commit && self.spec.handler.commit == CommitMode::Auto
    }

    /// What auto-commit commits for `tps`: Java the positions, the others the marks.
    pub(super) fn auto_commit_offsets(&self, tps: &[TopicPartition]) -> Vec<CommitOffset> {
        let positions = self.auto_style == AutoCommitStyle::AtPoll;
        self.offsets_to_commit(tps, positions)
    }

    /// Marked offsets of every owned partition not committed yet.
    pub(super) fn marked_offsets(&self) -> Vec<CommitOffset> {
        self.offsets_to_commit(&self.group.owned, false)
    }

    fn offsets_to_commit(&self, tps: &[TopicPartition], positions: bool) -> Vec<CommitOffset> {
        tps.iter()
            .filter_map(|tp| {
                let p = self.parts.get(tp)?;
                let offset = if positions { p.position? } else { p.marked? };
                let newer = !matches!(p.committed, Some(c) if offset <= c);
                newer.then_some((*tp, offset, p.leader_epoch))
            })
            .collect()
    }

    /// Queue a synchronous commit (merged with one already waiting).
    pub(super) fn start_sync_commit(&mut self, offsets: Vec<CommitOffset>) {
        if offsets.is_empty() {
            return;
        }
        match &mut self.sync_commit {
            Some(sc) if !sc.inflight => {
                let mut merged: BTreeMap<TopicPartition, (u64, Option<u32>)> = sc
                    .offsets
                    .iter()
                    .map(|(tp, o, e)| (*tp, (*o, *e)))
                    .collect();
                for (tp, o, e) in offsets {
                    let slot = merged.entry(tp).or_insert((o, e));
                    if o >= slot.0 {
                        *slot = (o, e);
                    }
                }
                sc.offsets = merged.into_iter().map(|(tp, (o, e))| (tp, o, e)).collect();
            }
            Some(_) => {} // one in flight: the next commit picks the newer offsets up
            None => {
                self.sync_commit = Some(SyncCommit {
                    offsets,
                    attempts: 0,
                    inflight: false,
                    not_before: Instant::ZERO,
                });
            }
        }
    }

    pub(super) fn drive_sync_commit(&mut self, cx: &mut Cx) {
        let Some(sc) = &self.sync_commit else {
            return;
        };
        if sc.inflight || sc.not_before > cx.now() || self.group.coordinator.is_none() {
            return;
        }
        let offsets = sc.offsets.clone();
        if self.send_commit(cx, offsets, true) {
            let sc = self.sync_commit.as_mut().expect("checked");
            sc.inflight = true;
            sc.attempts += 1;
        }
    }

    /// Send an OffsetCommit; false (and a recorded failure) if the member cannot commit now.
    pub(super) fn send_commit(
        &mut self,
        cx: &mut Cx,
        offsets: Vec<CommitOffset>,
        sync: bool,
    ) -> bool {
        if offsets.is_empty() {
            if sync {
                self.sync_commit = None;
            }
            return false;
        }
        let ctx = CommitCtx {
            sync,
            generation: self.group.generation,
            offsets,
        };
        let coordinator = match self.group.coordinator {
            Some(c) if self.group.is_stable() => c,
            Some(_) => {
                self.on_commit_result(cx, ctx, &[], ErrorCode::RebalanceInProgress);
                return false;
            }
            None => {
                self.on_commit_result(cx, ctx, &[], ErrorCode::CoordinatorNotAvailable);
                return false;
            }
        };
        let msg = Message::OffsetCommitRequest(OffsetCommitRequest {
            correlation_id: self.take_corr(),
            group: self.spec.group.clone(),
            member_id: self.group.member_id.clone(),
            generation: ctx.generation,
            offsets: ctx.offsets.clone(),
        });
        let timeout = self.config.request_timeout;
        self.send(cx, coordinator, timeout, Req::Commit(ctx), msg);
        true
    }

    pub(super) fn on_commit_response(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        ctx: CommitCtx,
        resp: OffsetCommitResponse,
    ) {
        let worst = resp
            .results
            .iter()
            .map(|(_, e)| *e)
            .find(|e| *e != ErrorCode::None)
            .unwrap_or(ErrorCode::None);
        if matches!(
            worst,
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable
        ) {
            self.coordinator_dead(from);
        }
        self.on_commit_result(cx, ctx, &resp.results, worst);
    }

    /// Record the outcome of a commit per partition and act on it. `results` may be empty when
    /// the request never got an answer; `error` then applies to every partition.
    pub(super) fn on_commit_result(
        &mut self,
        cx: &mut Cx,
        ctx: CommitCtx,
        results: &[(TopicPartition, ErrorCode)],
        error: ErrorCode,
    ) {
        for (tp, offset, _) in &ctx.offsets {
            let e = results
                .iter()
                .find(|(t, _)| t == tp)
                .map_or(error, |(_, e)| *e);
            cx.record(HistoryEvent::Commit {
                group: self.spec.group_index,
                member: self.spec.member_index,
                generation: ctx.generation,
                partition: *tp,
                offset: *offset,
                error: e,
            });
            if e == ErrorCode::None {
                if let Some(p) = self.parts.get_mut(tp) {
                    p.committed = Some(p.committed.map_or(*offset, |c| c.max(*offset)));
                }
            }
        }
        let current = ctx.generation == self.group.generation;
        match error {
            ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration if current => {
                self.group.owned.clear();
                self.parts.clear();
                self.group.member_id.clear();
                self.group.generation = -1;
                self.group.state = super::membership::MemberState::Unjoined;
                self.group.rejoin = true;
            }
            ErrorCode::RebalanceInProgress if current => self.group.rejoin = true,
            _ => {}
        }
        if ctx.sync {
            self.after_sync_commit(cx, error);
        }
    }

    fn after_sync_commit(&mut self, cx: &mut Cx, error: ErrorCode) {
        let Some(sc) = self.sync_commit.as_mut() else {
            return;
        };
        sc.inflight = false;
        let retry = is_retriable_commit_error(error) && sc.attempts < MAX_SYNC_COMMIT_ATTEMPTS;
        if retry {
            sc.not_before = cx.now() + self.config.retry_backoff;
        } else {
            self.sync_commit = None; // done, or CommitFailedException surfaced to the app
        }
    }

    /// Background auto-commit (sarama, librdkafka, kafka-go with CommitInterval).
    pub(super) fn on_auto_commit_timer(&mut self, cx: &mut Cx) {
        let every = self
            .config
            .auto_commit_interval
            .max(crate::time::Duration::from_millis(1));
        cx.set_timer_after(every, crate::node::Timer::new(super::TIMER_AUTO_COMMIT, 0));
        if !self.auto_commit_enabled() || !self.group.is_stable() || self.group.rejoin {
            return;
        }
        let offsets = self.auto_commit_offsets(&self.group.owned.clone());
        if !offsets.is_empty() {
            self.send_commit(cx, offsets, false);
        }
    }

    /// Java: the auto-commit inside `poll()`.
    pub(super) fn maybe_auto_commit_at_poll(&mut self, cx: &mut Cx) {
        if !self.auto_commit_enabled() || self.auto_style != AutoCommitStyle::AtPoll {
            return;
        }
        if cx.now() < self.poll.last_auto_commit + self.config.auto_commit_interval {
            return;
        }
        self.poll.last_auto_commit = cx.now();
        let offsets = self.auto_commit_offsets(&self.group.owned.clone());
        if !offsets.is_empty() {
            self.send_commit(cx, offsets, false);
        }
    }
}
