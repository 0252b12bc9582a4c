//! Processors: the poll loop's own (index 0) and a worker pool's (1..=workers). Each processes
//! one record at a time from its bounded queue; the consumer arms one timer per record.
//! Routing by key keeps per-key order (one queue per `hash(key) % workers`); round-robin loses it.

use super::{Delivered, Routing};
use std::collections::VecDeque;

/// Most workers a pool may have.
pub const MAX_WORKERS: u32 = 64;

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
            capacity: capacity.max(1) as usize,
        }
    }

    pub fn pool_size(&self) -> usize {
        self.all.len() - 1
    }

    /// The worker (1-based) a record goes to.
    pub fn route(&mut self, rec: &Delivered) -> usize {
        let n = self.pool_size();
        assert!(n > 0, "routing a record without a worker pool");
        let slot = match (self.routing, rec.key) {
            (Routing::Key, Some(key)) => key.0 as usize % n,
            (Routing::Key, None) => rec.partition.partition as usize % n,
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
}
