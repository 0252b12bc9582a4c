//! The metadata quorum: the controllers are the voters of a Raft log of the controller state
//! (KRaft, KIP-595 and KIP-631), and a change reaches brokers only once a majority of voters
//! hold it durably.
//!
//! KRaft's active controller appends records to the metadata log (`QuorumController`
//! through `RaftClient.scheduleAppend`), applies them to its in-memory state at once so later
//! decisions build on them, and lets brokers see them only when they are committed: brokers
//! replay the log only up to the high watermark, which the leader advances when a majority of
//! voters have fetched (and, being voters, flushed: `KafkaRaftClient.appendAsFollower`) the
//! records (`LeaderState.maybeUpdateHighWatermark`). Requests that wrote records are answered
//! when their records commit (`QuorumController`'s deferred event queue, completed up to the
//! committed offset). kafsim keeps the whole state as one log entry: the active controller
//! sends it with every change (`ControllerSync`, KRaft's follower Fetch turned into a push),
//! a standby acknowledges a version once its copy is fsynced (`ControllerSyncAck`), and the
//! active controller publishes each version once a majority holds it ([`Pending`]). With two
//! controllers the majority is both: losing either halts metadata changes (no fencing, no
//! leader election, no ISR change) until it is back, as it does in Kafka, which is why KRaft
//! deployments run three or five controllers.
//!
//! Leadership is won by a majority vote in a new epoch (`KafkaRaftClient.handleVoteRequest`):
//! a voter grants one vote per epoch (`QuorumState.canGrantVote`, the vote fsynced in
//! `quorum-state` before it answers), only to a candidate whose log is at least as up to date
//! as its own (the epoch of the last entry, then its offset). Every committed version is on a
//! majority, every winner had the vote of a member of that majority, so a new active
//! controller holds every committed version and never hands out a leader epoch the old one
//! published. A controller deposed while it had uncommitted versions never publishes them
//! (KRaft `QuorumController.renounce` reverts to the committed state and fails the pending
//! requests with NOT_CONTROLLER; here they go unanswered and their senders retry).
//!
//! Simplifications: the active controller counts its own copy at once (KRaft updates the
//! leader's end offset before flushing, `flushLeaderLog`), and a standby runs for election
//! after `broker.session.timeout.ms` without a sync while a majority of brokers reach it (the
//! existing failover trigger) rather than after `controller.quorum.fetch.timeout.ms`.

use super::state::{ControllerState, Vote, LOG_FILE, VOTE_FILE};
use super::{Controller, ControllerTimer, Role};
use crate::history::HistoryEvent;
use crate::node::{Cx, DiskDone, NodeId};
use crate::protocol::*;
use crate::record::TopicPartition;
use crate::time::{ms, Duration};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};

/// `controller.quorum.election.timeout.ms` (default 1000): how long a candidate waits for
/// votes before it may run again in a higher epoch.
const ELECTION_TIMEOUT: Duration = ms(1000);
/// `controller.quorum.election.backoff.max.ms` (default 1000): the most a candidate backs off,
/// at random, before it runs again (two candidates do not keep splitting the vote).
const ELECTION_BACKOFF_MAX_MS: u64 = 1000;

/// The metadata the active controller last committed: what brokers may see.
#[derive(Clone, Debug)]
pub(super) struct Committed {
    pub(super) state: ControllerState,
    /// The unfenced brokers as of that version (KRaft: broker registrations are records).
    pub(super) live_brokers: Vec<NodeId>,
    /// Each registered broker's epoch as of that version: a LeaderAndIsr names the broker
    /// epoch it was made for, so a broker that registered again since refuses it (KIP-380).
    pub(super) broker_epochs: BTreeMap<NodeId, u64>,
}

/// What the active controller does once a version commits.
#[derive(Debug)]
pub(super) enum Then {
    /// Send the whole committed metadata to this broker.
    Full(NodeId),
    /// Answer a request whose change this version carries.
    Reply(NodeId, Message),
}

/// A version appended but not yet on a majority of voters.
#[derive(Debug)]
pub(super) struct Pending {
    state: ControllerState,
    live_brokers: Vec<NodeId>,
    broker_epochs: BTreeMap<NodeId, u64>,
    /// Partitions whose state this version changed (their ISRs are recorded at commit).
    changed: Vec<TopicPartition>,
    /// Send `changed` (and the live brokers) to every broker live as of this version.
    to_live: bool,
    then: Vec<Then>,
}

/// A controller running for election.
#[derive(Clone, Debug)]
pub(super) struct Candidacy {
    epoch: u32,
    /// Voters that granted their vote, this controller included once its own vote is durable.
    granted: BTreeSet<NodeId>,
}

impl Controller {
    fn majority(&self) -> usize {
        self.config.controllers.len() / 2 + 1
    }

    pub(super) fn unfenced_brokers(&self) -> Vec<NodeId> {
        self.live
            .iter()
            .filter(|(_, l)| !l.fenced)
            .map(|(b, _)| *b)
            .collect()
    }

    /// Append the current state as a new version: write it to this voter's log, send it to
    /// the other voters, and publish it (`changed` to the live brokers if `to_live`, then
    /// `then`) once a majority holds it.
    pub(super) fn append(
        &mut self,
        cx: &mut Cx,
        changed: Vec<TopicPartition>,
        to_live: bool,
        then: Vec<Then>,
    ) {
        assert!(
            self.role == Role::Active,
            "{}: a standby appended to the metadata log",
            cx.me()
        );
        self.state.version += 1;
        self.store.append(cx, &self.state);
        self.send_sync(cx);
        let broker_epochs = self
            .live
            .iter()
            .map(|(b, l)| (*b, l.broker_epoch))
            .collect();
        self.pending.push_back(Pending {
            state: self.state.clone(),
            live_brokers: self.unfenced_brokers(),
            broker_epochs,
            changed,
            to_live,
            then,
        });
        self.advance_commit(cx);
    }

    /// Commit every pending version a majority of voters holds, in order.
    fn advance_commit(&mut self, cx: &mut Cx) {
        let me = cx.me();
        let mut durable: Vec<u64> = self
            .config
            .controllers
            .iter()
            .map(|c| {
                if *c == me {
                    self.state.version
                } else {
                    self.acked.get(c).copied().unwrap_or(0)
                }
            })
            .collect();
        durable.sort_unstable_by(|a, b| b.cmp(a));
        let committed = durable[self.majority() - 1];
        while self
            .pending
            .front()
            .is_some_and(|p| p.state.version <= committed)
        {
            let p = self.pending.pop_front().expect("checked");
            self.apply_commit(cx, p);
        }
    }

    /// A version committed: record its ISR changes and tell the brokers.
    fn apply_commit(&mut self, cx: &mut Cx, p: Pending) {
        for tp in &p.changed {
            let ps = &p.state.partitions[tp];
            cx.record(HistoryEvent::IsrChanged {
                partition: ps.partition,
                leader_epoch: ps.leader_epoch,
                isr: ps.isr.clone(),
            });
        }
        if let Some(c) = &self.committed {
            assert!(
                c.state.position() < p.state.position(),
                "{}: committed {:?} after {:?}",
                cx.me(),
                p.state.position(),
                c.state.position()
            );
        }
        let targets = if p.to_live {
            p.live_brokers.clone()
        } else {
            Vec::new()
        };
        self.committed = Some(Committed {
            state: p.state,
            live_brokers: p.live_brokers,
            broker_epochs: p.broker_epochs,
        });
        for b in targets {
            self.send_leader_and_isr(cx, b, Some(&p.changed));
        }
        for t in p.then {
            match t {
                Then::Full(b) => self.send_leader_and_isr(cx, b, None),
                Then::Reply(to, msg) => cx.send(to, msg),
            }
        }
    }

    /// Stop being active (a newer epoch exists): what was not committed is never published,
    /// and the requests waiting for it go unanswered (`QuorumController.renounce`).
    pub(super) fn renounce(&mut self) {
        self.role = Role::Standby;
        self.pending.clear();
        self.acked.clear();
        self.committed = None;
    }

    pub(super) fn send_sync(&mut self, cx: &mut Cx) {
        let msg = ControllerSync {
            controller_epoch: self.state.controller_epoch,
            version: self.state.version,
            topics: self.state.topics.clone(),
            partitions: self.state.partitions.values().cloned().collect(),
            next_producer_id: self.state.next_producer_id,
            broker_incarnations: self
                .state
                .incarnations
                .iter()
                .map(|(b, i)| (*b, *i))
                .collect(),
        };
        for &c in &self.config.controllers {
            if c != cx.me() {
                cx.send(c, Message::ControllerSync(msg.clone()));
            }
        }
    }

    /// The active controller's state: take it if it is newer than this voter's log, and
    /// acknowledge it once it is durable.
    pub(super) fn on_sync(&mut self, cx: &mut Cx, from: NodeId, sync: ControllerSync) {
        self.observe_epoch(cx.now(), sync.controller_epoch);
        if sync.controller_epoch < self.highest_epoch_seen {
            // The state of a controller that a newer epoch replaced (`failover`), or of one
            // this voter voted against: refused, as KRaft fences a fetch of an older epoch.
            return;
        }
        assert!(
            !(self.role == Role::Active && sync.controller_epoch == self.state.controller_epoch),
            "{}: {from} is active at controller epoch {} too",
            cx.me(),
            sync.controller_epoch
        );
        self.role = Role::Standby;
        self.candidacy = None;
        self.last_sync_seen = cx.now();
        let theirs = (sync.controller_epoch, sync.version);
        let mine = self.state.position();
        if theirs > mine {
            self.state = ControllerState {
                controller_epoch: sync.controller_epoch,
                version: sync.version,
                topics: sync.topics,
                partitions: sync
                    .partitions
                    .into_iter()
                    .map(|p| (p.partition, p))
                    .collect(),
                next_producer_id: sync.next_producer_id,
                incarnations: sync.broker_incarnations.into_iter().collect(),
            };
            self.store.append(cx, &self.state);
            self.unflushed_sync = Some((from, sync.controller_epoch, sync.version));
        } else if theirs == mine && self.unflushed_sync.is_none() {
            // A repeated sync (the active controller's periodic one) of a version this voter
            // already holds durably: acknowledge again, in case the first ack was lost.
            self.send_sync_ack(cx, from, theirs);
        }
    }

    fn send_sync_ack(&mut self, cx: &mut Cx, to: NodeId, (epoch, version): (u32, u64)) {
        cx.send(
            to,
            Message::ControllerSyncAck(ControllerSyncAck {
                controller_epoch: epoch,
                version,
            }),
        );
    }

    pub(super) fn on_sync_ack(&mut self, cx: &mut Cx, from: NodeId, ack: ControllerSyncAck) {
        if self.role != Role::Active || ack.controller_epoch != self.state.controller_epoch {
            // An ack for an earlier epoch's state says nothing about this epoch's log.
            return;
        }
        let v = self.acked.entry(from).or_insert(0);
        *v = (*v).max(ack.version);
        self.advance_commit(cx);
    }

    /// An fsync of this controller's log or vote completed.
    pub(super) fn on_flushed(&mut self, cx: &mut Cx, done: DiskDone) {
        if done.file == LOG_FILE {
            // Only the last write is acknowledged: an fsync that completes after a newer
            // overwrite does not say which image is durable; the newer write's fsync will.
            if let Some((leader, epoch, version)) = self.unflushed_sync {
                if done.token == version && self.state.position() == (epoch, version) {
                    self.unflushed_sync = None;
                    self.send_sync_ack(cx, leader, (epoch, version));
                }
            }
        } else if done.file == VOTE_FILE {
            let Some(vote) = self.unflushed_vote else {
                return;
            };
            if done.token != u64::from(vote.epoch) || self.voted != Some(vote) {
                return;
            }
            self.unflushed_vote = None;
            if vote.candidate == cx.me() {
                if let Some(c) = self.candidacy.as_mut().filter(|c| c.epoch == vote.epoch) {
                    c.granted.insert(vote.candidate);
                    self.maybe_win(cx);
                }
            } else {
                cx.send(
                    vote.candidate,
                    Message::VoteResponse(VoteResponse {
                        candidate_epoch: vote.epoch,
                        granted: true,
                    }),
                );
            }
        }
    }

    /// Vote for `candidate` in `epoch`, durably (the answer waits for the fsync).
    fn vote_for(&mut self, cx: &mut Cx, epoch: u32, candidate: NodeId) {
        let vote = Vote { epoch, candidate };
        self.voted = Some(vote);
        self.unflushed_vote = Some(vote);
        self.store.write_vote(cx, vote);
    }

    /// The cluster's first start: the first listed controller takes epoch 1 without an
    /// election (every log is empty; no other controller ever runs for epoch 1, see
    /// [`Controller::start_election`]). Its own vote is still written.
    pub(super) fn bootstrap(&mut self, cx: &mut Cx) {
        self.vote_for(cx, 1, cx.me());
        self.unflushed_vote = None;
        self.become_active(cx, 1);
    }

    /// Run for election in a new epoch: vote for itself and ask the other voters.
    pub(super) fn start_election(&mut self, cx: &mut Cx) {
        // Above every epoch seen and voted in; never 1, which belongs to the first start.
        let epoch = self
            .highest_epoch_seen
            .max(self.state.controller_epoch)
            .max(self.voted.map_or(0, |v| v.epoch))
            .max(1)
            + 1;
        self.highest_epoch_seen = epoch;
        // Candidates that started together (their sync ticks agree) retry apart.
        let backoff = ms(cx.rng().gen_range(0..=ELECTION_BACKOFF_MAX_MS));
        self.candidacy = Some(Candidacy {
            epoch,
            granted: BTreeSet::new(),
        });
        cx.set_timer_after(ELECTION_TIMEOUT + backoff, ControllerTimer::Election(epoch));
        self.vote_for(cx, epoch, cx.me());
        let (last_epoch, last_version) = self.state.position();
        for &c in &self.config.controllers {
            if c != cx.me() {
                cx.send(
                    c,
                    Message::VoteRequest(VoteRequest {
                        candidate_epoch: epoch,
                        last_epoch,
                        last_version,
                    }),
                );
            }
        }
    }

    pub(super) fn candidacy_epoch(&self) -> Option<u32> {
        self.candidacy.as_ref().map(|c| c.epoch)
    }

    /// The candidacy of `epoch` got no majority within its election timeout: run again in
    /// a higher epoch if this controller still may (KRaft: the candidate's election timer).
    pub(super) fn on_election_timeout(&mut self, cx: &mut Cx, epoch: u32) {
        if self.candidacy_epoch() != Some(epoch) || self.role != Role::Standby {
            return;
        }
        self.candidacy = None;
        if self.may_run(cx.now()) {
            self.start_election(cx);
        }
    }

    /// KRaft `handleVoteRequest`: a higher epoch is adopted (an active controller resigns);
    /// the vote is granted if this voter has not voted for another candidate in that epoch
    /// and the candidate's log is at least as up to date as its own.
    pub(super) fn on_vote_request(&mut self, cx: &mut Cx, from: NodeId, req: VoteRequest) {
        self.observe_epoch(cx.now(), req.candidate_epoch);
        let epoch = req.candidate_epoch;
        let free = self
            .voted
            .is_none_or(|v| v.epoch < epoch || v.candidate == from);
        let up_to_date = (req.last_epoch, req.last_version) >= self.state.position();
        let granted =
            epoch == self.highest_epoch_seen && self.role == Role::Standby && free && up_to_date;
        if !granted {
            cx.send(
                from,
                Message::VoteResponse(VoteResponse {
                    candidate_epoch: epoch,
                    granted: false,
                }),
            );
            return;
        }
        // A granted vote restarts this voter's own election timer (Raft §5.2).
        self.last_sync_seen = cx.now();
        let vote = Vote {
            epoch,
            candidate: from,
        };
        if self.voted != Some(vote) {
            self.vote_for(cx, epoch, from);
        } else if self.unflushed_vote != Some(vote) {
            // The candidate asked again (its request or our answer was lost): answer again.
            cx.send(
                from,
                Message::VoteResponse(VoteResponse {
                    candidate_epoch: epoch,
                    granted: true,
                }),
            );
        }
    }

    pub(super) fn on_vote_response(&mut self, cx: &mut Cx, from: NodeId, resp: VoteResponse) {
        let Some(c) = self
            .candidacy
            .as_mut()
            .filter(|c| c.epoch == resp.candidate_epoch)
        else {
            return;
        };
        if resp.granted {
            c.granted.insert(from);
            self.maybe_win(cx);
        }
    }

    fn maybe_win(&mut self, cx: &mut Cx) {
        let Some(c) = &self.candidacy else { return };
        if self.role != Role::Standby || c.granted.len() < self.majority() {
            return;
        }
        let epoch = c.epoch;
        assert_eq!(
            epoch,
            self.highest_epoch_seen,
            "{}: won an epoch below one it has seen",
            cx.me()
        );
        self.become_active(cx, epoch);
    }
}
