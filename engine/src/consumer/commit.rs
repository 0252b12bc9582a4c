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
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;

use super::profile::{AutoCommitStyle, ClientKind};

/// Attempts of one synchronous commit of librdkafka (its own retries of a sync commit).
pub const MAX_SYNC_COMMIT_ATTEMPTS: u32 = 20;
/// Java `default.api.timeout.ms` (60 s): `commitSync()` retries retriable errors until then
/// (`ConsumerCoordinator.commitOffsetsSync` loops while the timer has not expired).
pub const JAVA_DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(60);
/// kafka-go `defaultCommitRetries` (`reader.go`): `commitOffsetsWithRetry` makes 3 attempts
/// whatever the error, sleeping `backoff(attempt, 100ms, 5s)` = attempt² × 100 ms between.
pub const KAFKA_GO_COMMIT_ATTEMPTS: u32 = 3;
/// sarama `Consumer.Offsets.Retry.Max` (3): the offset manager's final flush tries 1 + 3 times
/// (`offset_manager.go` `Close`).
pub const SARAMA_COMMIT_ATTEMPTS: u32 = 4;

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
    pub(super) attempts: u32,
    pub(super) inflight: bool,
    not_before: Instant,
    /// When the commit was first asked for (Java retries until `default.api.timeout.ms`).
    pub(super) started: Option<Instant>,
    /// kafka-go ReadMessage: if this commit fails, the message it was for is dropped
    /// (ReadMessage returns the commit error instead of the message).
    pub drops_delivery_on_failure: bool,
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

    /// The marked offsets of `tps` not yet committed.
    pub(super) fn marked_offsets_of(&self, tps: &[TopicPartition]) -> Vec<CommitOffset> {
        self.offsets_to_commit(tps, false)
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
                    started: None,
                    drops_delivery_on_failure: false,
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
        let now = cx.now();
        if let Some(sc) = self.sync_commit.as_mut() {
            sc.started.get_or_insert(now);
            // Every try is an attempt, also one the member refuses itself because it has no
            // stable membership (RebalanceInProgress, recorded in `send_commit`). kafka-go's
            // `commitOffsetsWithRetry(gen, offsets, defaultCommitRetries)` (`reader.go`) sends
            // each of its 3 attempts with the generation the commit started in, which the
            // coordinator refuses once that generation is gone, so the commit ends after its
            // third try; counting only the tries that reached the wire retried a commit of a
            // member fenced mid-commit (ILLEGAL_GENERATION) every 100 ms for ever, while its
            // rejoin waited for that commit to finish: a stall. The other clients do not retry
            // RebalanceInProgress, so for them nothing changes.
            sc.attempts += 1;
        }
        if self.send_commit(cx, offsets, true) {
            let sc = self.sync_commit.as_mut().expect("checked");
            sc.inflight = true;
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
            group_instance_id: self.config.group_instance_id.clone(),
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
        // A standalone consumer's simple commit (generation -1) refused leaves it as it is:
        // it has no membership to lose.
        let current = ctx.generation == self.group.generation && !self.group.standalone;
        match error {
            ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration if current => {
                self.group.owned.clear();
                self.parts.clear();
                if !self.keeps_member_id_on(error) {
                    self.group.member_id.clear();
                }
                self.group.generation = -1;
                self.group.state = super::membership::MemberState::Unjoined;
                self.group.rejoin = true;
            }
            ErrorCode::RebalanceInProgress if current => self.group.rejoin = true,
            // Another incarnation holds this member's group.instance.id: fatal (Java
            // `OffsetCommitResponseHandler`: FencedInstanceIdException).
            ErrorCode::FencedInstanceId => self.fenced_instance(cx),
            // Nothing else touches the membership (Java
            // `ConsumerCoordinator.OffsetCommitResponseHandler.handle`): success; the
            // coordinator errors, already marked unknown in `on_commit_response`; the
            // retriable ones and a lost answer, which `after_sync_commit` retries or the next
            // commit repeats; and a membership error answered for a generation the member
            // has already left (`generationUnchanged()` false: it has rejoined since).
            _ => {}
        }
        if ctx.sync {
            self.after_sync_commit(cx, error);
        }
    }

    /// Java 3.1+ keeps its member id after ILLEGAL_GENERATION (only the generation is
    /// stale; `AbstractCoordinator.resetStateAndGeneration(reason, shouldResetMemberId)` with
    /// "keep member id since it might be still valid"), so its rejoin is not a new member the
    /// coordinator must wait for. UNKNOWN_MEMBER_ID always drops it.
    fn keeps_member_id_on(&self, error: ErrorCode) -> bool {
        error == ErrorCode::IllegalGeneration
            && self.config.client == ClientKind::Java
            && self.config.client_version >= (3, 1)
    }

    fn after_sync_commit(&mut self, cx: &mut Cx, error: ErrorCode) {
        let client = self.config.client;
        let backoff = self.config.retry_backoff;
        let Some(sc) = self.sync_commit.as_mut() else {
            return;
        };
        sc.inflight = false;
        let now = cx.now();
        let (retry, wait) = match client {
            // Java commitSync: retriable errors until default.api.timeout.ms.
            ClientKind::Java => (
                is_retriable_commit_error(error)
                    && now < sc.started.unwrap_or(now) + JAVA_DEFAULT_API_TIMEOUT,
                backoff,
            ),
            // kafka-go: every error, three attempts in all.
            ClientKind::KafkaGo => (
                error != ErrorCode::None && sc.attempts < KAFKA_GO_COMMIT_ATTEMPTS,
                Duration::from_millis(100 * u64::from(sc.attempts * sc.attempts)),
            ),
            ClientKind::Sarama => (
                is_retriable_commit_error(error) && sc.attempts < SARAMA_COMMIT_ATTEMPTS,
                backoff,
            ),
            ClientKind::Librdkafka => (
                is_retriable_commit_error(error) && sc.attempts < MAX_SYNC_COMMIT_ATTEMPTS,
                backoff,
            ),
        };
        if retry {
            sc.not_before = now + wait;
            return;
        }
        let dropped = sc.drops_delivery_on_failure && error != ErrorCode::None;
        self.sync_commit = None; // done, or the error surfaced to the application
        if dropped {
            // kafka-go ReadMessage returned the commit's error: the application never got the
            // message (it was the only record of that ReadMessage, waiting on processor 0).
            self.procs.all[0].queue.clear();
            self.poll.inline_batch_open = false;
        }
    }

    /// Background auto-commit (sarama, librdkafka, kafka-go with CommitInterval).
    pub(super) fn on_auto_commit_timer(&mut self, cx: &mut Cx) {
        let every = self
            .config
            .auto_commit_interval
            .max(crate::time::Duration::from_millis(1));
        cx.set_timer_after(every, super::timer::ConsumerTimer::AutoCommit);
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
