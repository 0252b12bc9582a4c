//! Processors: the poll loop's own (index 0) and a worker pool's (1..=workers). Each processes
//! one record at a time from its bounded queue; the consumer arms one timer per record.
//! Routing by key keeps per-key order (one queue per `hash(key) % workers`); round-robin loses it;
//! routing by partition is sarama's goroutine per claim: each claimed partition gets a
//! processor of its own, with its own bounded queue, for the session's length.

use super::{Delivered, Routing};
use crate::record::TopicPartition;
use std::collections::{BTreeMap, VecDeque};

/// Most workers a pool may have.
pub const MAX_WORKERS: u32 = 64;
/// Most processors of a sarama consumer's claims: one `ConsumeClaim` goroutine per claimed
/// partition up to this many; a member claiming more partitions than this shares processors
/// between claims (a simplification: sarama has no such limit).
pub const MAX_CLAIMS: usize = 64;
/// sarama's `Consumer.ChannelBufferSize` (256): the messages a claim's `Messages()` channel
/// holds before its partition consumer stops handing it more (IBM/sarama `config.go`).
pub const SARAMA_CHANNEL_BUFFER: u32 = 256;

/// A record being processed, and how many times it was tried.
#[derive(Clone, Copy, Debug)]
pub struct InProcess {
    pub rec: Delivered,
    pub attempt: u32,
    /// An attempt is under way (its timer is armed, or its dead-letter produce in flight).
    pub running: bool,
}

#[derive(Debug, Default)]
pub struct Processor {
    pub queue: VecDeque<Delivered>,
    pub current: Option<InProcess>,
}

impl Processor {
    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.queue.is_empty()
    }
}

#[derive(Debug)]
pub struct Processors {
    /// `[0]` is the poll loop; `[1..]` the pool's workers.
    pub all: Vec<Processor>,
    routing: Routing,
    next_round_robin: usize,
    /// `Routing::Partition`: the processor of each claimed partition this session.
    claim_slots: BTreeMap<TopicPartition, usize>,
    /// Bound of each worker queue (max.poll.records).
    capacity: usize,
}

impl Processors {
    pub fn new(workers: u32, routing: Routing, capacity: u32) -> Processors {
        let pool = if workers >= 2 { workers as usize } else { 0 };
        Processors {
            all: (0..=pool).map(|_| Processor::default()).collect(),
            routing,
            next_round_robin: 0,
            claim_slots: BTreeMap::new(),
            capacity: capacity.max(1) as usize,
        }
    }

    /// sarama's claims: no processor yet (each claimed partition adds one as its first
    /// record arrives), each with a queue of `channel_buffer` records.
    pub fn for_claims(channel_buffer: u32) -> Processors {
        Processors::new(0, Routing::Partition, channel_buffer)
    }

    /// The processor of claim `tp`, added on its first record.
    fn claim_slot(&mut self, tp: TopicPartition) -> usize {
        if let Some(&slot) = self.claim_slots.get(&tp) {
            return slot;
        }
        let in_use: std::collections::BTreeSet<usize> =
            self.claim_slots.values().copied().collect();
        let free = (1..self.all.len()).find(|s| !in_use.contains(s) && self.all[*s].is_idle());
        let slot = match free {
            Some(s) => s,
            None if self.all.len() <= MAX_CLAIMS => {
                self.all.push(Processor::default());
                self.all.len() - 1
            }
            None => 1 + self.claim_slots.len() % MAX_CLAIMS,
        };
        self.claim_slots.insert(tp, slot);
        slot
    }

    /// Records claim `tp`'s queue still has room for (sarama: before its channel is full).
    pub fn claim_room(&self, tp: TopicPartition) -> usize {
        let queued = self
            .claim_slots
            .get(&tp)
            .map_or(0, |s| self.all[*s].queue.len());
        self.capacity.saturating_sub(queued)
    }

    /// The session ended: each claim's loop returns after the message in hand, and what its
    /// channel held is dropped (the partition's next owner fetches it again).
    pub fn end_claims(&mut self) {
        self.claim_slots.clear();
        for p in &mut self.all[1..] {
            p.queue.clear();
        }
    }

    /// Whether every claim's loop has returned (none is in the middle of a message).
    pub fn claims_done(&self) -> bool {
        self.all[1..].iter().all(|p| p.current.is_none())
    }

    pub fn pool_size(&self) -> usize {
        self.all.len() - 1
    }

    /// The worker (1-based) a record goes to.
    pub fn route(&mut self, rec: &Delivered) -> usize {
        if self.routing == Routing::Partition {
            return self.claim_slot(rec.partition);
        }
        let n = self.pool_size();
        assert!(n > 0, "routing a record without a worker pool");
        let slot = match (self.routing, rec.key) {
            (Routing::Key, Some(key)) => key.0 as usize % n,
            (Routing::Key, None) => rec.partition.partition as usize % n,
            (Routing::Partition, _) => unreachable!("claims are routed above"),
            (Routing::RoundRobin, _) => {
                let s = self.next_round_robin % n;
                self.next_round_robin = self.next_round_robin.wrapping_add(1);
                s
            }
        };
        slot + 1
    }

    /// Whether every worker queue has room for a full poll.
    pub fn pool_has_room(&self) -> bool {
        self.all[1..].iter().all(|p| p.queue.len() < self.capacity)
    }

    /// Hand `rec` to its worker. Queues are bounded by `capacity` plus one poll.
    pub fn dispatch(&mut self, rec: Delivered) -> usize {
        let w = self.route(&rec);
        assert!(
            self.all[w].queue.len() < 2 * self.capacity,
            "worker {w} queue over its bound ({} records)",
            self.all[w].queue.len()
        );
        self.all[w].queue.push_back(rec);
        w
    }

    pub fn pool_idle(&self) -> bool {
        self.all[1..].iter().all(Processor::is_idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Key, TopicId, TopicPartition, ValueId};

    fn rec(value: u64, key: u32) -> Delivered {
        Delivered {
            partition: TopicPartition::new(TopicId(1), 0),
            offset: value,
            value: ValueId(value),
            key: Some(Key(key)),
            size: 10,
            leader_epoch: 0,
        }
    }

    #[test]
    fn key_routing_sends_one_key_to_one_worker_round_robin_spreads_it() {
        let mut by_key = Processors::new(4, Routing::Key, 10);
        let a = by_key.route(&rec(1, 7));
        assert!((0..10).all(|v| by_key.route(&rec(v, 7)) == a));
        let mut rr = Processors::new(4, Routing::RoundRobin, 10);
        let workers: Vec<usize> = (0..4).map(|v| rr.route(&rec(v, 7))).collect();
        assert_eq!(workers, vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_single_worker_means_the_poll_loop_processes() {
        let p = Processors::new(1, Routing::Key, 10);
        assert_eq!(p.pool_size(), 0);
        assert_eq!(p.all.len(), 1);
    }

    fn on(partition: u32, offset: u64) -> Delivered {
        Delivered {
            partition: TopicPartition::new(TopicId(1), partition),
            offset,
            value: ValueId(offset),
            key: None,
            size: 10,
            leader_epoch: 0,
        }
    }

    #[test]
    fn each_claim_gets_its_own_processor_and_queue_bound() {
        let mut claims = Processors::for_claims(2);
        assert_eq!(claims.pool_size(), 0, "no claim before its first record");
        let a = claims.dispatch(on(0, 0));
        let b = claims.dispatch(on(1, 0));
        let c = claims.dispatch(on(7, 0));
        assert_eq!(claims.dispatch(on(0, 1)), a);
        assert!(a != b && b != c && a != c);
        let tp0 = TopicPartition::new(TopicId(1), 0);
        let tp1 = TopicPartition::new(TopicId(1), 1);
        assert_eq!((claims.claim_room(tp0), claims.claim_room(tp1)), (0, 1));
        claims.all[a].current = Some(InProcess {
            rec: on(0, 0),
            attempt: 1,
            running: true,
        });
        assert!(
            !claims.claims_done(),
            "a claim is in the middle of a message"
        );
        claims.end_claims();
        assert!(claims.all[1..].iter().all(|p| p.queue.is_empty()));
        claims.all[a].current = None;
        assert!(claims.claims_done());
        // The next session reuses the processors, one per claim again.
        assert_eq!(claims.dispatch(on(5, 0)), 1);
        assert_eq!(claims.pool_size(), 3);
    }
}
