//! The accumulator's per-partition queues, indexed densely: a topic's queues sit in a vector
//! by partition number, and the (few) topics in a vector ordered by topic id.
//!
//! The accumulator asks for a partition's queue several times per poll (readiness, the next
//! wake-up, the drain); a B-tree keyed by `TopicPartition` made each of those a search.
//! Iteration visits queues in `TopicPartition` order (topic, then partition), the order the
//! B-tree gave, so nothing that walks the queues changes its order. A partition that never
//! held a batch has an empty queue, which every walk treats as absent.

use super::accumulator::ProducerBatch;
use crate::record::{TopicId, TopicPartition};
use std::collections::VecDeque;

/// Batches not in flight, per partition (see the module docs).
#[derive(Debug, Default)]
pub struct PartitionQueues {
    /// Ordered by topic id; a topic's vector is indexed by partition number.
    topics: Vec<(TopicId, Vec<VecDeque<ProducerBatch>>)>,
}

impl PartitionQueues {
    fn topic_index(&self, topic: TopicId) -> Result<usize, usize> {
        // A producer writes one topic (or a handful): a linear scan beats a search.
        match self.topics.iter().position(|(t, _)| *t >= topic) {
            Some(i) if self.topics[i].0 == topic => Ok(i),
            Some(i) => Err(i),
            None => Err(self.topics.len()),
        }
    }

    /// The queue of `tp`, if it ever had one.
    pub fn get(&self, tp: TopicPartition) -> Option<&VecDeque<ProducerBatch>> {
        let i = self.topic_index(tp.topic).ok()?;
        self.topics[i].1.get(tp.partition as usize)
    }

    pub fn get_mut(&mut self, tp: TopicPartition) -> Option<&mut VecDeque<ProducerBatch>> {
        let i = self.topic_index(tp.topic).ok()?;
        self.topics[i].1.get_mut(tp.partition as usize)
    }

    /// The queue of `tp`, made if it has none yet.
    pub fn entry(&mut self, tp: TopicPartition) -> &mut VecDeque<ProducerBatch> {
        let i = match self.topic_index(tp.topic) {
            Ok(i) => i,
            Err(i) => {
                self.topics.insert(i, (tp.topic, Vec::new()));
                i
            }
        };
        let queues = &mut self.topics[i].1;
        let p = tp.partition as usize;
        if queues.len() <= p {
            queues.resize_with(p + 1, VecDeque::new);
        }
        &mut queues[p]
    }

    /// Every queue with its partition, in `TopicPartition` order (empty ones included).
    pub fn iter(&self) -> impl Iterator<Item = (TopicPartition, &VecDeque<ProducerBatch>)> {
        self.topics.iter().flat_map(|(topic, queues)| {
            queues
                .iter()
                .enumerate()
                .map(move |(p, q)| (TopicPartition::new(*topic, p as u32), q))
        })
    }

    /// [`Self::iter`], mutably.
    pub fn iter_mut(
        &mut self,
    ) -> impl Iterator<Item = (TopicPartition, &mut VecDeque<ProducerBatch>)> {
        self.topics.iter_mut().flat_map(|(topic, queues)| {
            let topic = *topic;
            queues
                .iter_mut()
                .enumerate()
                .map(move |(p, q)| (TopicPartition::new(topic, p as u32), q))
        })
    }

    /// Every queue, mutably, in `TopicPartition` order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut VecDeque<ProducerBatch>> {
        self.topics
            .iter_mut()
            .flat_map(|(_, queues)| queues.iter_mut())
    }

    /// Every queue, in `TopicPartition` order.
    pub fn values(&self) -> impl Iterator<Item = &VecDeque<ProducerBatch>> {
        self.topics.iter().flat_map(|(_, queues)| queues.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Instant;

    fn batch(tp: TopicPartition, id: u64) -> ProducerBatch {
        ProducerBatch {
            id,
            partition: tp,
            records: Vec::new(),
            bytes: 0,
            created: Instant::ZERO,
            attempts: 0,
            retry_at: Instant::ZERO,
            maybe_written: false,
            closed: false,
            sequence: None,
            awaits_metadata: None,
        }
    }

    #[test]
    fn walks_queues_in_topic_partition_order_like_a_btree() {
        let mut queues = PartitionQueues::default();
        let mut reference = std::collections::BTreeMap::new();
        // Topics and partitions arrive out of order, with gaps.
        let order = [(3, 5), (1, 2), (3, 0), (0, 7), (1, 0), (3, 2), (0, 1)];
        for (id, (t, p)) in order.into_iter().enumerate() {
            let tp = TopicPartition::new(TopicId(t), p);
            queues.entry(tp).push_back(batch(tp, id as u64));
            reference.insert(tp, id as u64);
        }
        let walked: Vec<(TopicPartition, u64)> = queues
            .iter()
            .filter_map(|(tp, q)| q.front().map(|b| (tp, b.id)))
            .collect();
        let expected: Vec<(TopicPartition, u64)> = reference.into_iter().collect();
        assert_eq!(walked, expected);
        let missing = TopicPartition::new(TopicId(2), 0);
        assert!(queues.get(missing).is_none());
        assert!(queues
            .get(TopicPartition::new(TopicId(3), 1))
            .is_some_and(|q| q.is_empty()));
        assert!(queues.get(TopicPartition::new(TopicId(3), 6)).is_none());
    }
}
