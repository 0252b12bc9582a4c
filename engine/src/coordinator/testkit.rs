//! Test support: a host that runs one handler call of a node and keeps its effects, a page-cache
//! disk, and a fake `__consumer_offsets` log for the coordinator.

use super::OffsetsLog;
use crate::node::{Cx, Disk, DiskEntry, Effect, FileId, NodeId, Timer};
use crate::protocol::{ErrorCode, Message};
use crate::record::{Record, RecordBatch, TopicPartition};
use crate::time::Instant;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct MemDisk {
    files: BTreeMap<FileId, Vec<DiskEntry>>,
}

impl Disk for MemDisk {
    fn append(&mut self, file: FileId, entry: DiskEntry) {
        self.files.entry(file).or_default().push(entry);
    }
    fn overwrite(&mut self, file: FileId, entries: Vec<DiskEntry>) {
        self.files.insert(file, entries);
    }
    fn truncate(&mut self, file: FileId, len: usize) {
        self.files.entry(file).or_default().truncate(len);
    }
    fn read(&self, file: FileId) -> &[DiskEntry] {
        self.files.get(&file).map_or(&[], |v| v.as_slice())
    }
    fn files(&self) -> Vec<FileId> {
        self.files.keys().copied().collect()
    }
}

/// One node's world for unit tests: time, rng, disk, and the effects of every call.
pub struct Host {
    pub now: Instant,
    pub me: NodeId,
    pub rng: ChaCha8Rng,
    pub disk: MemDisk,
    pub effects: Vec<Effect>,
    pub next_timer: u64,
}

impl Host {
    pub fn new(me: NodeId) -> Host {
        Host {
            now: Instant::ZERO,
            me,
            rng: ChaCha8Rng::seed_from_u64(7),
            disk: MemDisk::default(),
            effects: Vec::new(),
            next_timer: 0,
        }
    }

    /// Run `f` with a fresh `Cx` and keep its effects.
    pub fn call<R>(&mut self, f: impl FnOnce(&mut Cx) -> R) -> R {
        let mut out = Vec::new();
        let r = {
            let mut cx = Cx::new(
                self.now,
                self.me,
                &mut self.rng,
                &mut self.disk,
                &mut out,
                &mut self.next_timer,
            );
            f(&mut cx)
        };
        self.effects.extend(out);
        r
    }

    /// Messages sent since the last call, drained.
    pub fn sent(&mut self) -> Vec<(NodeId, Message)> {
        let mut sent = Vec::new();
        let mut rest = Vec::new();
        for e in self.effects.drain(..) {
            match e {
                Effect::Send { to, msg } => sent.push((to, msg)),
                other => rest.push(other),
            }
        }
        self.effects = rest;
        sent
    }

    /// Timers set since the last drain, drained.
    pub fn timers(&mut self) -> Vec<(Instant, Timer)> {
        let mut timers = Vec::new();
        let mut rest = Vec::new();
        for e in self.effects.drain(..) {
            match e {
                Effect::SetTimer { at, timer, .. } => timers.push((at, timer)),
                other => rest.push(other),
            }
        }
        self.effects = rest;
        timers
    }
}

/// A fake replica manager: leads the partitions in `epochs`; appends wait for `complete`.
#[derive(Default)]
pub struct FakeLog {
    pub epochs: BTreeMap<TopicPartition, u32>,
    pub leaders: BTreeMap<TopicPartition, NodeId>,
    pub appended: Vec<(TopicPartition, Vec<Record>, u64)>,
    pub committed: BTreeMap<TopicPartition, Vec<RecordBatch>>,
    pub fail_appends: Option<ErrorCode>,
    /// Transactional appends: the producer (id, epoch) of an append's token.
    pub transactional: BTreeMap<u64, (i64, i16)>,
}

impl FakeLog {
    /// Make every in-flight append committed (as the ISR acknowledging it) and return tokens.
    pub fn commit_all(&mut self) -> Vec<u64> {
        let mut tokens = Vec::new();
        for (tp, records, token) in self.appended.drain(..) {
            let batches = self.committed.entry(tp).or_default();
            let mut batch = RecordBatch::new(records.into());
            batch.base_offset = batches.last().map_or(0, |b| b.next_offset());
            if let Some((pid, epoch)) = self.transactional.remove(&token) {
                batch.producer_id = pid;
                batch.producer_epoch = epoch;
                batch.is_transactional = true;
            }
            batches.push(batch);
            tokens.push(token);
        }
        tokens
    }
}

impl OffsetsLog for FakeLog {
    fn leader_epoch(&self, partition: TopicPartition) -> Option<u32> {
        self.epochs.get(&partition).copied()
    }
    fn leader_of(&self, partition: TopicPartition) -> Option<NodeId> {
        self.leaders.get(&partition).copied()
    }
    fn append(
        &mut self,
        _cx: &mut Cx,
        partition: TopicPartition,
        records: Vec<Record>,
        token: u64,
    ) -> Result<(), ErrorCode> {
        if let Some(e) = self.fail_appends {
            return Err(e);
        }
        if !self.epochs.contains_key(&partition) {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        self.appended.push((partition, records, token));
        Ok(())
    }
    fn append_transactional(
        &mut self,
        cx: &mut Cx,
        partition: TopicPartition,
        records: Vec<Record>,
        producer: (i64, i16),
        token: u64,
    ) -> Result<(), ErrorCode> {
        self.append(cx, partition, records, token)?;
        self.transactional.insert(token, producer);
        Ok(())
    }
    fn committed_batches(&self, partition: TopicPartition) -> Vec<RecordBatch> {
        self.committed.get(&partition).cloned().unwrap_or_default()
    }
}
