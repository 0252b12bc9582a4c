//! A map keyed by partition with the interface of the `BTreeMap<TopicPartition, V>` it
//! replaces, stored densely: per topic (a short vector ordered by topic id) a vector indexed
//! by partition number.
//!
//! A broker looks up the partitions it hosts, and their producer states, several times for
//! every partition of every fetch (the follower's progress and HW, the read, the follower's
//! append of the answer); with the 50 `__consumer_offsets` partitions beside the data topics,
//! each B-tree search cost about a hundred instructions. Walks visit the entries in
//! `TopicPartition` order (topic, then partition), the order the B-tree gave, so nothing that
//! iterates changes its order.

use crate::record::{TopicId, TopicPartition};

/// Most partitions a topic may have here: slots are made up to a partition's number, so a
/// wild number would allocate without bound (Kafka's own limit is far lower in practice).
pub const MAX_PARTITION_NUMBER: u32 = 1 << 20;

/// One topic's slots, indexed by partition number, each with its key.
type Slots<V> = Vec<Option<(TopicPartition, V)>>;

/// Entries by partition (see the module docs).
#[derive(Clone, Debug)]
pub struct PartitionMap<V> {
    /// Ordered by topic id; a topic's vector is indexed by partition number and keeps the key
    /// beside each value, so that walks can lend `&TopicPartition` as a B-tree's do.
    topics: Vec<(TopicId, Slots<V>)>,
    len: usize,
}

impl<V> Default for PartitionMap<V> {
    fn default() -> Self {
        PartitionMap {
            topics: Vec::new(),
            len: 0,
        }
    }
}

impl<V> PartitionMap<V> {
    pub fn new() -> Self {
        Self::default()
    }

    fn topic_index(&self, topic: TopicId) -> Result<usize, usize> {
        // A cluster has a handful of topics: a linear scan beats a search.
        match self.topics.iter().position(|(t, _)| *t >= topic) {
            Some(i) if self.topics[i].0 == topic => Ok(i),
            Some(i) => Err(i),
            None => Err(self.topics.len()),
        }
    }

    fn slot(&self, tp: &TopicPartition) -> Option<&Option<(TopicPartition, V)>> {
        let i = self.topic_index(tp.topic).ok()?;
        self.topics[i].1.get(tp.partition as usize)
    }

    fn slot_mut(&mut self, tp: &TopicPartition) -> &mut Option<(TopicPartition, V)> {
        assert!(
            tp.partition < MAX_PARTITION_NUMBER,
            "{tp}: partition number beyond {MAX_PARTITION_NUMBER}"
        );
        let i = match self.topic_index(tp.topic) {
            Ok(i) => i,
            Err(i) => {
                self.topics.insert(i, (tp.topic, Vec::new()));
                i
            }
        };
        let slots = &mut self.topics[i].1;
        let p = tp.partition as usize;
        if slots.len() <= p {
            slots.resize_with(p + 1, || None);
        }
        let slot = &mut slots[p];
        debug_assert!(
            slot.as_ref().is_none_or(|(key, _)| key == tp),
            "{tp}: its slot holds another partition"
        );
        slot
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<&V> {
        let (key, v) = self.slot(tp)?.as_ref()?;
        debug_assert_eq!(key, tp, "a partition map slot holds another partition");
        Some(v)
    }

    pub fn get_mut(&mut self, tp: &TopicPartition) -> Option<&mut V> {
        let i = self.topic_index(tp.topic).ok()?;
        let (key, v) = self.topics[i].1.get_mut(tp.partition as usize)?.as_mut()?;
        debug_assert_eq!(key, tp, "a partition map slot holds another partition");
        Some(v)
    }

    pub fn contains_key(&self, tp: &TopicPartition) -> bool {
        self.get(tp).is_some()
    }

    /// Insert or replace; the value it replaced, if any.
    pub fn insert(&mut self, tp: TopicPartition, value: V) -> Option<V> {
        let old = self.slot_mut(&tp).replace((tp, value));
        if old.is_none() {
            self.len += 1;
        }
        self.debug_check();
        old.map(|(_, v)| v)
    }

    pub fn remove(&mut self, tp: &TopicPartition) -> Option<V> {
        let i = self.topic_index(tp.topic).ok()?;
        let old = self.topics[i].1.get_mut(tp.partition as usize)?.take();
        if old.is_some() {
            assert!(self.len > 0, "{tp}: removed from a map counted empty");
            self.len -= 1;
        }
        self.debug_check();
        old.map(|(_, v)| v)
    }

    /// The value of `tp`, made by `make` if it has none (a B-tree's
    /// `entry(tp).or_insert_with(make)`).
    pub fn get_or_insert_with(&mut self, tp: TopicPartition, make: impl FnOnce() -> V) -> &mut V {
        if !self.contains_key(&tp) {
            self.len += 1;
            *self.slot_mut(&tp) = Some((tp, make()));
        }
        &mut self.slot_mut(&tp).as_mut().expect("just filled").1
    }

    /// A B-tree's `entry(tp)`, for `or_default` / `or_insert_with`.
    pub fn entry(&mut self, tp: TopicPartition) -> Entry<'_, V> {
        Entry { map: self, tp }
    }

    /// Debug builds (every test): the count is the entries', each slot holds its own key,
    /// and topics stay ordered (what makes walks come out in `TopicPartition` order).
    fn debug_check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        assert_eq!(self.len, self.iter().count(), "partition map miscounted");
        assert!(
            self.topics.windows(2).all(|w| w[0].0 < w[1].0),
            "partition map topics out of order"
        );
        for (topic, slots) in &self.topics {
            for (p, slot) in slots.iter().enumerate() {
                assert!(
                    slot.as_ref()
                        .is_none_or(|(tp, _)| *tp == TopicPartition::new(*topic, p as u32)),
                    "partition map: a value under another partition's slot"
                );
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries in `TopicPartition` order.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter {
            topics: self.topics.iter(),
            slots: [].iter(),
            last: None,
        }
    }

    /// [`Self::iter`], mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&TopicPartition, &mut V)> {
        self.topics
            .iter_mut()
            .flat_map(|(_, slots)| slots.iter_mut().flatten().map(|(tp, v)| (&*tp, v)))
    }

    pub fn keys(&self) -> impl Iterator<Item = &TopicPartition> {
        self.iter().map(|(tp, _)| tp)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.iter_mut().map(|(_, v)| v)
    }

    /// Keep only the entries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&TopicPartition, &mut V) -> bool) {
        for (_, slots) in &mut self.topics {
            for slot in slots.iter_mut() {
                if let Some((tp, v)) = slot {
                    if !keep(tp, v) {
                        *slot = None;
                        self.len -= 1;
                    }
                }
            }
        }
        self.debug_check();
    }
}

/// The entry of one partition, present or not (see [`PartitionMap::entry`]).
pub struct Entry<'a, V> {
    map: &'a mut PartitionMap<V>,
    tp: TopicPartition,
}

impl<'a, V> Entry<'a, V> {
    pub fn or_insert_with(self, make: impl FnOnce() -> V) -> &'a mut V {
        self.map.get_or_insert_with(self.tp, make)
    }

    pub fn or_default(self) -> &'a mut V
    where
        V: Default,
    {
        self.map.get_or_insert_with(self.tp, V::default)
    }
}

/// `map[&tp]`: the value of a partition that must be there (panics otherwise, as a B-tree's
/// index does).
impl<V> std::ops::Index<&TopicPartition> for PartitionMap<V> {
    type Output = V;

    fn index(&self, tp: &TopicPartition) -> &V {
        self.get(tp)
            .unwrap_or_else(|| panic!("{tp}: no entry in the partition map"))
    }
}

/// The walk of [`PartitionMap::iter`] (named, so that `for (tp, v) in &map` needs no box).
pub struct Iter<'a, V> {
    topics: std::slice::Iter<'a, (TopicId, Slots<V>)>,
    slots: std::slice::Iter<'a, Option<(TopicPartition, V)>>,
    /// The key last walked: each is above it (the `TopicPartition` order, checked in debug).
    last: Option<TopicPartition>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a TopicPartition, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.slots.next() {
                Some(Some((tp, v))) => {
                    debug_assert!(self.last.is_none_or(|last| last < *tp), "walk out of order");
                    self.last = Some(*tp);
                    return Some((tp, v));
                }
                Some(None) => continue,
                None => self.slots = self.topics.next()?.1.iter(),
            }
        }
    }
}

impl<'a, V> IntoIterator for &'a PartitionMap<V> {
    type Item = (&'a TopicPartition, &'a V);
    type IntoIter = Iter<'a, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_as_a_btree_map_in_order_and_content() {
        let mut map: PartitionMap<u64> = PartitionMap::new();
        let mut reference: BTreeMap<TopicPartition, u64> = BTreeMap::new();
        // Topics and partitions out of order, with gaps, replacements and removals.
        let ops: [(u32, u32, Option<u64>); 12] = [
            (3, 5, Some(1)),
            (1, 2, Some(2)),
            (3, 0, Some(3)),
            (0, 49, Some(4)),
            (1, 0, Some(5)),
            (3, 5, Some(6)),
            (0, 1, Some(7)),
            (1, 2, None),
            (2, 0, None),
            (3, 9, None),
            (7, 3, Some(8)),
            (0, 49, None),
        ];
        for (t, p, value) in ops {
            let tp = TopicPartition::new(TopicId(t), p);
            match value {
                Some(v) => assert_eq!(map.insert(tp, v), reference.insert(tp, v)),
                None => assert_eq!(map.remove(&tp), reference.remove(&tp)),
            }
            let walked: Vec<(TopicPartition, u64)> = map.iter().map(|(k, v)| (*k, *v)).collect();
            let expected: Vec<(TopicPartition, u64)> =
                reference.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(walked, expected);
            assert_eq!(map.len(), reference.len());
            assert_eq!(map.get(&tp), reference.get(&tp));
        }
        let tp = TopicPartition::new(TopicId(5), 2);
        *map.entry(tp).or_insert_with(|| 10) += 1;
        *map.get_or_insert_with(tp, || 99) += 1;
        assert_eq!(map.get(&tp), Some(&12));
        map.retain(|tp, _| tp.topic != TopicId(3));
        assert!(map.keys().all(|tp| tp.topic != TopicId(3)));
        assert_eq!(map.len(), map.iter().count());
        for v in map.values_mut() {
            *v = 0;
        }
        assert!(map.values().all(|v| *v == 0));
        assert_eq!((&map).into_iter().count(), map.len());
        assert_eq!(map[&tp], 0);
    }

    #[test]
    #[should_panic(expected = "partition number beyond")]
    fn a_wild_partition_number_is_refused() {
        let mut map: PartitionMap<u8> = PartitionMap::new();
        map.insert(TopicPartition::new(TopicId(0), u32::MAX), 1);
    }
}
