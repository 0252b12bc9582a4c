//! The application's poll loop and its processors.
//!
//! The poll thread calls `poll()`, gets up to `max.poll.records` records, and then either
//! processes them itself (one timer per record; the next poll waits), hands them to a worker
//! pool and polls again at once (bounded queues: a full pool blocks the poll thread), or
//! collects them into a batch that is processed and committed when full or when its timeout
//! fires. A processed record's result is written to the group's database (the processor
//! waits for the answer); a failed one is retried, skipped or dead-lettered. Marks follow the
//! client's consume loop ([`super::consume_loop`]): at delivery, when a record's processing
//! starts, when it ends (after the database answered), or never.

use super::{Consumer, ConsumerConfig, Need};
use crate::app::failure::{draw_failure, is_poison, MAX_ATTEMPTS};
use crate::app::handler::process_time;
use crate::app::workers::InProcess;
use crate::app::{CommitMode, Delivered, OnFailure};
use crate::assignor::{assign, AssignInput, Client, Strategy};
use crate::history::HistoryEvent;
use crate::node::Cx;
use crate::protocol::{Acks, Message, ProduceRequest, Row, Subscription};
use crate::record::{Record, RecordBatch, TopicId, TopicPartition};
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;

use super::consume_loop::MarkAt;
use super::profile::AutoCommitStyle;

/// Most poll iterations one `drive` runs (zero processing times could otherwise loop long).
const MAX_POLLS_PER_DRIVE: usize = 64;

#[derive(Debug, Default)]
pub struct PollLoop {
    /// When the application last was in `poll()` (max.poll.interval.ms counts from here).
    pub last_poll: Instant,
    pub last_auto_commit: Instant,
    /// The poll loop is processing a poll's (or batch's) records itself.
    pub(super) inline_batch_open: bool,
    /// Workers marked offsets since the poll loop last committed them.
    pool_marks_dirty: bool,
    /// Partition to start the next poll from (fairness across partitions).
    cursor: usize,
}

impl Consumer {
    /// Whether polled records go to processors other than the poll loop's own: a worker pool,
    /// or sarama's claims.
    pub(super) fn uses_pool(&self) -> bool {
        self.spec.handler.uses_pool() || self.claims
    }

    /// sarama: every claim has finished the message in hand (a session ends only once every
    /// ConsumeClaim returned: `consumerGroupSession.release` waits on its wait group before
    /// the offset manager's last commit).
    pub(super) fn claims_done(&self) -> bool {
        !self.claims || self.procs.claims_done()
    }

    /// sarama: the session is over, so each ConsumeClaim returns after the message in hand
    /// (`case <-session.Context().Done(): return nil`); what its claim had buffered is dropped
    /// and fetched again by the partition's next owner.
    pub(super) fn drop_claim_queues(&mut self) {
        if self.claims {
            self.procs.end_claims();
        }
    }

    /// Whether the application is inside `poll()` (not processing, not blocked on a commit).
    pub(super) fn poll_thread_idle(&self) -> bool {
        self.procs.all[0].is_idle() && self.sync_commit.is_none() && self.ctp_idle()
    }

    /// Whether the application is kept out of `poll()`: processing, waiting on a commit, or
    /// blocked handing records to a full worker pool.
    pub(super) fn poll_thread_blocked(&self) -> bool {
        !self.poll_thread_idle() || (self.spec.handler.uses_pool() && !self.procs.pool_has_room())
    }

    pub(super) fn drive_poll_loop(&mut self, cx: &mut Cx) {
        for i in 0..self.procs.all.len() {
            self.run_processor(cx, i);
        }
        for _ in 0..MAX_POLLS_PER_DRIVE {
            if !self.poll_once(cx) {
                break;
            }
        }
    }

    /// One call of `poll()` that returned records; false when the loop cannot go on now.
    fn poll_once(&mut self, cx: &mut Cx) -> bool {
        if !self.poll_thread_idle() {
            return false;
        }
        if self.batch.due {
            self.flush_batch();
            self.run_processor(cx, 0);
            return true;
        }
        if self.spec.handler.uses_pool() && !self.procs.pool_has_room() {
            return false; // the executor's queue is full: the poll thread blocks in submit
        }
        self.poll.last_poll = cx.now();
        let rebalancing = !self.group.is_stable() || self.group.rejoin;
        // Eager: the rebalance runs inside this poll (membership drives it) and returns
        // nothing until it completes. Cooperative (KIP-429): poll keeps returning records of
        // the partitions the member still owns while its join is in flight.
        let keeps_owned = self.group.cooperative && !self.group.owned.is_empty();
        if rebalancing && !(keeps_owned && self.group.generation >= 0) {
            return false;
        }
        if !rebalancing {
            self.maybe_auto_commit_at_poll(cx);
        }
        if self.uses_pool() && self.poll.pool_marks_dirty {
            self.poll.pool_marks_dirty = false;
            self.commit_marks(cx);
            if !self.poll_thread_idle() {
                return false;
            }
        }
        let records = self.take_records(self.config.max_poll_records as usize);
        if records.is_empty() {
            return false;
        }
        self.deliver(cx, records);
        self.run_processor(cx, 0);
        for i in 1..self.procs.all.len() {
            self.run_processor(cx, i);
        }
        true
    }

    /// Manual commit of the marked offsets, per the handler's commit mode.
    fn commit_marks(&mut self, cx: &mut Cx) {
        if self.ctp.is_some() {
            // produce_to: end the batch first (commit its transaction, or flush its outputs
            // and then commit, `ctp.rs`).
            return self.ctp_end_batch(cx);
        }
        self.commit_by_mode(cx);
    }

    /// Commit the marked offsets as the handler's commit mode says: nothing for auto-commit
    /// and transactions (the auto-commit timer, the transaction's offsets), a synchronous or
    /// an asynchronous OffsetCommit otherwise.
    pub(super) fn commit_by_mode(&mut self, cx: &mut Cx) {
        match self.spec.handler.commit {
            CommitMode::Auto | CommitMode::Transaction => {}
            CommitMode::Sync => self.start_sync_commit(self.marked_offsets()),
            CommitMode::Async => {
                let offsets = self.marked_offsets();
                if !offsets.is_empty() {
                    self.send_commit(cx, offsets, false);
                }
            }
        }
    }

    /// Take up to `max` buffered records, partition by partition from a rotating start.
    fn take_records(&mut self, max: usize) -> Vec<Delivered> {
        let tps: Vec<TopicPartition> = self.parts.keys().copied().collect();
        // Sized once (what is buffered, at most `max`) rather than grown record by record.
        let buffered: usize = self.parts.values().map(|p| p.buffered.len()).sum();
        let mut out = Vec::with_capacity(buffered.min(max));
        let claims = self.claims;
        for k in 0..tps.len() {
            let tp = tps[(self.poll.cursor + k) % tps.len()];
            let p = self.parts.get_mut(&tp).expect("listed");
            let mut taken = 0;
            while out.len() < max {
                let Some(front) = p.buffered.front().copied() else {
                    break;
                };
                if claims && self.procs.claim_room(tp) <= taken {
                    break; // sarama: this claim's channel is full; the others go on
                }
                let Some(position) = p.position.filter(|_| p.need == Need::Nothing) else {
                    p.buffered.clear();
                    break;
                };
                p.buffered.pop_front();
                if front.offset < position {
                    continue; // already returned before a seek back
                }
                p.position = Some(front.offset + 1);
                out.push(front);
                taken += 1;
            }
            if out.len() >= max {
                break;
            }
        }
        self.poll.cursor = self.poll.cursor.wrapping_add(1);
        out
    }

    /// `poll()` returns `records` to the application.
    pub(super) fn deliver(&mut self, cx: &mut Cx, records: Vec<Delivered>) {
        let per_record_sync =
            self.auto_commit_enabled() && self.auto_style == AutoCommitStyle::PerRecordSync;
        for rec in &records {
            cx.record(HistoryEvent::Poll {
                group: self.spec.group_index,
                member: self.spec.member_index,
                partition: rec.partition,
                offset: rec.offset,
                value: rec.value,
                key: rec.key,
            });
            if self.mark_at == MarkAt::Delivery {
                self.mark(rec);
            }
        }
        if per_record_sync {
            // kafka-go ReadMessage: commit before the application sees the message; if the
            // commit fails, ReadMessage returns the error instead of the message. Only this
            // message's partition: `CommitMessages(ctx, m)` commits `m` alone, and
            // `commitLoopImmediate` resets its offset stash after every attempt, failed or
            // not (kafka-go `reader.go`), so an offset whose commit failed is not repeated
            // with the next message of another partition.
            let mut tps: Vec<TopicPartition> = records.iter().map(|r| r.partition).collect();
            tps.sort();
            tps.dedup();
            self.start_sync_commit(self.marked_offsets_of(&tps));
            if let Some(sc) = self.sync_commit.as_mut() {
                sc.drops_delivery_on_failure = true;
            }
        }
        if let Some(size) = self.spec.handler.batch {
            return self.add_to_batch(cx, records, size);
        }
        for rec in records {
            if self.uses_pool() {
                self.procs.dispatch(rec);
            } else {
                self.procs.all[0].queue.push_back(rec);
                self.poll.inline_batch_open = true;
            }
        }
    }

    fn add_to_batch(&mut self, cx: &mut Cx, records: Vec<Delivered>, size: u32) {
        for rec in records {
            if self.batch.records.is_empty() {
                if let Some(timeout) = self.spec.handler.batch_timeout {
                    let timer = super::timer::ConsumerTimer::Batch(self.batch.seq);
                    cx.set_timer_after(timeout, timer);
                }
            }
            self.batch.records.push(rec);
            if self.batch.is_full(size) {
                self.flush_batch();
            }
        }
    }

    fn flush_batch(&mut self) {
        let records = self.batch.take();
        if records.is_empty() {
            return;
        }
        if self.mark_at == MarkAt::ProcessStart {
            // A batch handler takes its batch up as one unit: marking before processing marks
            // every record of the batch when the batch starts.
            for rec in &records {
                self.mark(rec);
            }
        }
        self.procs.all[0].queue.extend(records);
        self.poll.inline_batch_open = true;
    }

    pub(super) fn on_batch_timeout(&mut self, _cx: &mut Cx, seq: u64) {
        if seq == self.batch.seq {
            self.batch.due = true; // flushed by the poll loop as soon as it is free
        }
    }

    /// Set the mark of `rec`'s partition past it (marks only move forward, as sarama's).
    fn mark(&mut self, rec: &Delivered) {
        if let Some(p) = self.parts.get_mut(&rec.partition) {
            let next = rec.offset + 1;
            p.marked = Some(p.marked.map_or(next, |m| m.max(next)));
        }
    }

    /// Start as many records on processor `i` as complete at once; arm a timer for the rest.
    fn run_processor(&mut self, cx: &mut Cx, i: usize) {
        for _ in 0..=self.config.max_poll_records as usize * 2 + MAX_ATTEMPTS as usize {
            let proc_ = &mut self.procs.all[i];
            match proc_.current {
                Some(c) if c.running => break,
                Some(_) => {}
                None => {
                    if i == 0 && self.sync_commit.is_some() {
                        break; // kafka-go commits before the application processes
                    }
                    if i > 0 && self.claims && (self.group.rejoin || !self.group.is_stable()) {
                        break; // the session ends: a claim takes up no further message
                    }
                    let Some(rec) = proc_.queue.pop_front() else {
                        break;
                    };
                    proc_.current = Some(InProcess {
                        rec,
                        attempt: 1,
                        running: false,
                    });
                    if self.mark_at == MarkAt::ProcessStart {
                        // sarama: `sess.MarkMessage(msg, "")` before processing `msg`.
                        self.mark(&rec);
                        if i > 0 {
                            self.poll.pool_marks_dirty = true;
                        }
                    }
                }
            }
            let t = process_time(&self.spec.handler, cx.rng());
            let t = if self.slowdown == 1.0 {
                t
            } else {
                Duration::from_nanos((t.as_nanos() as f64 * self.slowdown) as u64)
            };
            if t > Duration::ZERO {
                self.procs.all[i].current.as_mut().expect("current").running = true;
                cx.set_timer_after(t, super::timer::ConsumerTimer::Process(i));
                break;
            }
            self.complete_attempt(cx, i);
        }
        if i == 0 && self.procs.all[0].is_idle() && self.poll.inline_batch_open {
            self.poll.inline_batch_open = false;
            self.commit_marks(cx);
        }
    }

    pub(super) fn on_process_done(&mut self, cx: &mut Cx, i: usize) {
        let Some(current) = self.procs.all.get_mut(i).and_then(|p| p.current.as_mut()) else {
            panic!("consumer {}: process timer for idle processor {i}", cx.me());
        };
        current.running = false;
        self.complete_attempt(cx, i);
        self.run_processor(cx, i);
    }

    /// An attempt of processor `i`'s record ended: succeed, retry, skip or dead-letter.
    fn complete_attempt(&mut self, cx: &mut Cx, i: usize) {
        let value = self.procs.all[i]
            .current
            .as_ref()
            .expect("current")
            .rec
            .value;
        let poison = is_poison(value, self.spec.handler.poison_rate);
        let failed = draw_failure(cx.rng(), self.spec.handler.failure_rate) || poison;
        if !failed {
            return self.finish_record(cx, i, true);
        }
        let max_attempts = self.spec.handler.max_attempts;
        let current = self.procs.all[i].current.as_mut().expect("current");
        match self.spec.handler.on_failure {
            OnFailure::Retry if max_attempts.is_none_or(|m| current.attempt < m) => {
                current.attempt = current.attempt.saturating_add(1)
            }
            OnFailure::Retry | OnFailure::Skip => self.finish_record(cx, i, false),
            OnFailure::Dlq => {
                current.running = true;
                self.start_dead_letter(i);
            }
        }
    }

    /// Processor `i` is done with its record: write its result to the group's database
    /// (`write`), and once the database answered, mark it ([`Consumer::after_sink`]). The
    /// processor holds the record until then, as a service awaits its INSERT.
    pub(super) fn finish_record(&mut self, cx: &mut Cx, i: usize, write: bool) {
        let current = self.procs.all[i].current.as_mut().expect("current record");
        let rec = current.rec;
        let row = Row {
            group: self.spec.group_index,
            member: self.spec.member_index,
            partition: rec.partition,
            offset: rec.offset,
            value: rec.value,
            key: rec.key,
        };
        if write && self.ctp.is_some() {
            // The record's output goes to the output topic (`produce_to`), not a sink.
            self.ctp_output(cx, rec.value, rec.key, rec.size);
            return self.after_sink(cx, i);
        }
        if write && self.sink.insert(i, row) {
            current.running = true;
            return;
        }
        if write {
            // No database: the member notes its output itself, at once.
            self.local_sink.write(cx, row);
            cx.record(row.sink_write());
        }
        self.after_sink(cx, i);
    }

    /// Processor `i`'s record is done (its result stored, or nothing to store): mark it.
    pub(super) fn after_sink(&mut self, _cx: &mut Cx, i: usize) {
        let current = self.procs.all[i].current.take().expect("current record");
        let rec = current.rec;
        if self.mark_at == MarkAt::ProcessEnd {
            self.mark(&rec);
            if i > 0 {
                self.poll.pool_marks_dirty = true;
            }
        }
    }
}

/// A ProduceRequest of one record to the dead-letter partition (acks=all).
pub(super) fn dead_letter_request(
    corr: u64,
    tp: TopicPartition,
    rec: &Delivered,
    now: Instant,
) -> Message {
    let record = Record {
        value: rec.value,
        key: rec.key,
        size: rec.size,
        create_time: now,
        payload: None,
    };
    Message::ProduceRequest(ProduceRequest {
        correlation_id: corr,
        acks: Acks::All,
        timeout: Duration::from_secs(30),
        transactional_id: None,
        batches: vec![(tp, RecordBatch::new(vec![record].into()))],
    })
}

/// The leader's assignment with the protocol the coordinator chose, by the client's own
/// assignor variant ([`crate::assignor`]). Topic ids without a name in the spec are named
/// `t<id>` (assignors order topics by name).
pub(super) fn run_assignor(
    config: &ConsumerConfig,
    protocol: &str,
    topic_names: &BTreeMap<TopicId, String>,
    counts: &BTreeMap<TopicId, u32>,
    members: &[(String, Subscription)],
    generation: i32,
) -> Result<BTreeMap<String, Vec<TopicPartition>>, String> {
    let strategy = Strategy::from_name(protocol)
        .ok_or_else(|| format!("the coordinator chose an unknown assignor \"{protocol}\""))?;
    let name = |t: TopicId| {
        topic_names
            .get(&t)
            .cloned()
            .unwrap_or_else(|| format!("t{}", t.0))
    };
    let mut by_name: BTreeMap<String, TopicId> = BTreeMap::new();
    let mut topics = BTreeMap::new();
    let mut subscribed = BTreeMap::new();
    let mut previous = BTreeMap::new();
    let mut owned_generation = -1;
    for (id, sub) in members {
        for t in &sub.topics {
            by_name.insert(name(*t), *t);
            topics.insert(name(*t), counts.get(t).copied().unwrap_or(0));
        }
        subscribed.insert(id.clone(), sub.topics.iter().map(|t| name(*t)).collect());
        let mut owned: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for tp in &sub.owned_partitions {
            owned.entry(name(tp.topic)).or_default().push(tp.partition);
        }
        if !owned.is_empty() {
            owned_generation = owned_generation.max(sub.generation);
            previous.insert(id.clone(), owned);
        }
    }
    let input = AssignInput {
        client: assignor_client(config.client),
        client_version: config.assignor_version,
        strategy,
        topics,
        members: subscribed,
        previous,
        generation: if owned_generation >= 0 {
            owned_generation
        } else {
            generation
        },
    };
    let result = assign(&input)?;
    let mut out = BTreeMap::new();
    for (member, per_topic) in result {
        let tps: Vec<TopicPartition> = per_topic
            .into_iter()
            .flat_map(|(topic, parts)| {
                let id = by_name[&topic];
                parts.into_iter().map(move |p| TopicPartition::new(id, p))
            })
            .collect();
        out.insert(member, tps);
    }
    Ok(out)
}

/// The assignor module's name for a client.
pub fn assignor_client(client: super::profile::ClientKind) -> Client {
    use super::profile::ClientKind;
    match client {
        ClientKind::Java => Client::Java,
        ClientKind::Sarama => Client::Sarama,
        ClientKind::KafkaGo => Client::KafkaGo,
        ClientKind::Librdkafka => Client::Librdkafka,
    }
}
