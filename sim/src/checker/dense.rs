//! Dense tables for the checkers' per-value and per-offset facts.
//!
//! Producers allocate value ids in blocks: `value_base + (incarnation << 32) + n` with `n`
//! counting up from 0 (`engine/src/producer/workload.rs`). So the high 32 bits of an id name
//! a (producer, incarnation) block and the low 32 bits are a dense index within it: a vector
//! per block replaces a hash map of every value. Partition offsets are dense from 0 too, so
//! a bitset per partition replaces a sorted vector of known offsets.
//!
//! Both tables accept any id or offset: one far beyond what the table holds (an id no
//! producer would allocate, a crafted history) goes to a small sparse side table instead of
//! growing the vector without bound. Lookups only; iteration is in ascending id or offset
//! order, never in hash order.
//!
//! The index learns the blocks the producers used from the invocations before it fills
//! anything ([`ValueShape`]), so every per-value table of the index and the checkers is
//! allocated once at its final size ([`ValueTable::with_shape`]) rather than doubling its way
//! there. Per-partition and per-member state sits in a [`RecentMap`]: the history names one
//! partition (one fetch's records, one batch's acknowledgements) many times in a row.

use super::index::FastMap;
use kafsim_engine::ValueId;
use std::hash::Hash;

/// How far past its current length a block grows for one insert; anything further is sparse.
const MAX_GROWTH: usize = 1 << 16;
/// A block never grows beyond this many slots (2^28 values of one producer incarnation).
const MAX_BLOCK: usize = 1 << 28;

/// Block ids below this are found by direct indexing (producers allocate blocks
/// `(producer + 1) << 8 | incarnation`); others through a hash map.
const NEAR_BLOCKS: u64 = 1 << 16;
const NO_BLOCK: u32 = u32::MAX;

/// A map from value ids to `T`, dense per block of 2^32 ids.
#[derive(Clone, Debug)]
pub struct ValueTable<T> {
    /// Block id (`value >> 32`, below [`NEAR_BLOCKS`]) to its position in `blocks`.
    near: Vec<u32>,
    /// Other block ids to their position in `blocks`.
    block_of: FastMap<u64, usize>,
    blocks: Vec<(u64, Vec<Option<T>>)>,
    sparse: FastMap<ValueId, T>,
    len: usize,
}

impl<T> Default for ValueTable<T> {
    fn default() -> ValueTable<T> {
        ValueTable {
            near: Vec::new(),
            block_of: FastMap::default(),
            blocks: Vec::new(),
            sparse: FastMap::default(),
            len: 0,
        }
    }
}

#[inline]
fn split(value: ValueId) -> (u64, usize) {
    (value.0 >> 32, (value.0 & 0xffff_ffff) as usize)
}

/// The slots each block of a table will need, learned from a history's invocations before
/// the tables are filled, so that a table is allocated once at its final size instead of
/// doubling (and copying) its way there value by value.
#[derive(Clone, Debug, Default)]
pub struct ValueShape {
    /// (block id, one past its highest value seen, values seen), in order of first sight.
    blocks: Vec<(u64, usize, usize)>,
}

impl ValueShape {
    /// Notes one value that the tables will hold.
    pub fn note(&mut self, value: ValueId) {
        let (block, n) = split(value);
        // A run has a few producer incarnations: a short linear search, the latest first
        // (values of one producer come in runs).
        match self.blocks.iter_mut().rev().find(|(b, _, _)| *b == block) {
            Some((_, end, count)) => {
                *end = (*end).max(n.saturating_add(1));
                *count += 1;
            }
            None => self.blocks.push((block, n.saturating_add(1), 1)),
        }
    }

    /// Slots to allocate for each block: its full range where that range is dense (no more
    /// than twice the values seen, plus [`MAX_GROWTH`], within [`MAX_BLOCK`]), else none.
    fn sizes(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        self.blocks.iter().map(|&(block, end, count)| {
            let dense = end <= MAX_BLOCK && end <= count.saturating_mul(2) + MAX_GROWTH;
            (block, if dense { end } else { 0 })
        })
    }
}

impl<T> ValueTable<T> {
    /// An empty table with every block of `shape` allocated at its final size.
    pub fn with_shape(shape: &ValueShape) -> ValueTable<T> {
        let mut table = ValueTable::default();
        for (block, slots) in shape.sizes() {
            let i = table.add_block(block);
            table.blocks[i].1.resize_with(slots, || None);
        }
        table
    }

    /// Adds an empty block; returns its position.
    fn add_block(&mut self, block: u64) -> usize {
        debug_assert!(self.block_position(block).is_none(), "block {block} twice");
        let i = self.blocks.len();
        self.blocks.push((block, Vec::new()));
        if block < NEAR_BLOCKS {
            if self.near.len() <= block as usize {
                self.near.resize(block as usize + 1, NO_BLOCK);
            }
            self.near[block as usize] = i as u32;
        } else {
            self.block_of.insert(block, i);
        }
        i
    }

    #[inline]
    fn block_position(&self, block: u64) -> Option<usize> {
        if block < NEAR_BLOCKS {
            match self.near.get(block as usize) {
                Some(&i) if i != NO_BLOCK => Some(i as usize),
                _ => None,
            }
        } else {
            self.block_of.get(&block).copied()
        }
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn get(&self, value: ValueId) -> Option<&T> {
        let (block, n) = split(value);
        if let Some(i) = self.block_position(block) {
            if let Some(Some(slot)) = self.blocks[i].1.get(n) {
                return Some(slot);
            }
        }
        if self.sparse.is_empty() {
            None
        } else {
            self.sparse.get(&value)
        }
    }

    pub fn get_mut(&mut self, value: ValueId) -> Option<&mut T> {
        let (block, n) = split(value);
        if let Some(i) = self.block_position(block) {
            if let Some(Some(_)) = self.blocks[i].1.get(n) {
                return self.blocks[i].1[n].as_mut();
            }
        }
        self.sparse.get_mut(&value)
    }

    #[inline]
    pub fn contains(&self, value: ValueId) -> bool {
        self.get(value).is_some()
    }

    /// The value's entry, inserting `make()` if it has none (`entry().or_insert_with`).
    #[inline]
    pub fn get_or_insert_with(&mut self, value: ValueId, make: impl FnOnce() -> T) -> &mut T {
        // The common case, kept small enough to inline: a slot within its block's range
        // (every slot of a table made [`ValueTable::with_shape`]) and no sparse values.
        let (block, n) = split(value);
        if let Some(i) = self.block_position(block) {
            if n < self.blocks[i].1.len() && self.sparse.is_empty() {
                let slot = &mut self.blocks[i].1[n];
                if slot.is_none() {
                    *slot = Some(make());
                    self.len += 1;
                }
                return slot.as_mut().expect("just filled");
            }
        }
        self.get_or_insert_beyond(value, make)
    }

    /// [`ValueTable::get_or_insert_with`] for a value outside its block's slots (or with
    /// sparse values about).
    #[cold]
    #[inline(never)]
    fn get_or_insert_beyond(&mut self, value: ValueId, make: impl FnOnce() -> T) -> &mut T {
        let (block, n) = split(value);
        let i = match self.block_position(block) {
            Some(i) => i,
            None => self.add_block(block),
        };
        let slots = &mut self.blocks[i].1;
        let dense = n < slots.len()
            || (n < MAX_BLOCK && n <= slots.len().saturating_mul(2).max(slots.len() + MAX_GROWTH));
        // A value lives in the sparse table only if it was put there while its slot lay
        // beyond the dense range; with no sparse values (every real run) that is no question.
        if dense && (self.sparse.is_empty() || !self.sparse.contains_key(&value)) {
            if n >= slots.len() {
                slots.resize_with(n + 1, || None);
            }
            let slot = &mut slots[n];
            if slot.is_none() {
                *slot = Some(make());
                self.len += 1;
            }
            return slot.as_mut().expect("just filled");
        }
        let len = &mut self.len;
        self.sparse.entry(value).or_insert_with(|| {
            *len += 1;
            make()
        })
    }

    /// Inserts `item` unless the value already has an entry; returns the entry.
    #[inline]
    pub fn insert_if_absent(&mut self, value: ValueId, item: T) -> &mut T {
        self.get_or_insert_with(value, || item)
    }

    /// Every value held, ascending.
    pub fn values_ascending(&self) -> Vec<ValueId> {
        let mut order: Vec<usize> = (0..self.blocks.len()).collect();
        order.sort_unstable_by_key(|&i| self.blocks[i].0);
        let mut out = Vec::with_capacity(self.len);
        for i in order {
            let (block, slots) = &self.blocks[i];
            out.extend(
                slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.is_some())
                    .map(|(n, _)| ValueId((block << 32) | n as u64)),
            );
        }
        if !self.sparse.is_empty() {
            out.extend(self.sparse.keys().copied());
            out.sort_unstable();
        }
        out
    }

    /// Keeps only the entries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(ValueId, &T) -> bool) {
        let mut len = 0;
        for (block, slots) in &mut self.blocks {
            for (n, slot) in slots.iter_mut().enumerate() {
                if let Some(item) = slot {
                    if keep(ValueId((*block << 32) | n as u64), item) {
                        len += 1;
                    } else {
                        *slot = None;
                    }
                }
            }
        }
        self.sparse.retain(|value, item| keep(*value, item));
        self.len = len + self.sparse.len();
    }
}

/// A set of offsets of one partition: a bitset for the dense range, a sorted side list for
/// offsets far beyond it.
#[derive(Clone, Debug, Default)]
pub struct OffsetSet {
    words: Vec<u64>,
    sparse: Vec<u64>,
    sparse_sorted: bool,
}

/// Offsets up to this (2^32 bits, 512 MiB) may live in the bitset.
const MAX_BITSET_OFFSET: u64 = 1 << 32;

impl OffsetSet {
    pub fn insert(&mut self, offset: u64) {
        let word = (offset / 64) as usize;
        let dense = offset < MAX_BITSET_OFFSET
            && (word < self.words.len()
                || word
                    <= self
                        .words
                        .len()
                        .saturating_mul(2)
                        .max(self.words.len() + 1024));
        if dense {
            if word >= self.words.len() {
                self.words.resize(word + 1, 0);
            }
            self.words[word] |= 1 << (offset % 64);
        } else {
            self.sparse.push(offset);
            self.sparse_sorted = false;
        }
    }

    /// One past the highest offset the bitset can hold (its words × 64): at least one past
    /// every dense offset inserted.
    pub fn dense_len(&self) -> usize {
        self.words.len() * 64
    }

    /// Sorts the side list; call once after the last insert, before [`OffsetSet::first_in`].
    pub fn finish(&mut self) {
        if !self.sparse_sorted {
            self.sparse.sort_unstable();
            self.sparse.dedup();
            self.sparse_sorted = true;
        }
    }

    /// The lowest offset of the set in `lo..hi`.
    pub fn first_in(&self, lo: u64, hi: u64) -> Option<u64> {
        debug_assert!(self.sparse_sorted || self.sparse.is_empty());
        let dense = self.first_dense_in(lo, hi);
        let at = self.sparse.partition_point(|o| *o < lo);
        let sparse = self.sparse.get(at).copied().filter(|o| *o < hi);
        match (dense, sparse) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn first_dense_in(&self, lo: u64, hi: u64) -> Option<u64> {
        let hi = hi.min(self.words.len() as u64 * 64);
        if lo >= hi {
            return None;
        }
        let mut word = (lo / 64) as usize;
        let mut bits = self.words[word] & (u64::MAX << (lo % 64));
        loop {
            if bits != 0 {
                let found = word as u64 * 64 + bits.trailing_zeros() as u64;
                return (found < hi).then_some(found);
            }
            word += 1;
            if word as u64 * 64 >= hi {
                return None;
            }
            bits = self.words[word];
        }
    }
}

/// A map for keys that come in runs (the partition of one fetch's records, of one batch's
/// acknowledgements; one member's reads): a repeat of the last key used is answered without
/// hashing. Entries are kept in insertion order, which is also the order of every walk.
#[derive(Clone, Debug)]
pub struct RecentMap<K, V> {
    entries: Vec<(K, V)>,
    position: FastMap<K, usize>,
    /// The entry last found or inserted by a `&mut` lookup.
    last: usize,
}

impl<K, V> Default for RecentMap<K, V> {
    fn default() -> RecentMap<K, V> {
        RecentMap {
            entries: Vec::new(),
            position: FastMap::default(),
            last: 0,
        }
    }
}

impl<K: Copy + Eq + Hash, V> RecentMap<K, V> {
    #[inline]
    fn find(&self, key: &K) -> Option<usize> {
        match self.entries.get(self.last) {
            Some((k, _)) if k == key => Some(self.last),
            _ => self.position.get(key).copied(),
        }
    }

    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        self.find(key).map(|i| &self.entries[i].1)
    }

    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = self.find(key)?;
        self.last = i;
        Some(&mut self.entries[i].1)
    }

    #[inline]
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Some(i) => i,
            None => {
                self.position.insert(key, self.entries.len());
                self.entries.push((key, make()));
                self.entries.len() - 1
            }
        };
        self.last = i;
        &mut self.entries[i].1
    }

    /// Sets the key's value, inserting the key if it is new.
    pub fn insert(&mut self, key: K, value: V) {
        match self.get_mut(&key) {
            Some(slot) => *slot = value,
            None => {
                self.get_or_insert_with(key, || value);
            }
        }
    }

    /// Keeps only the entries `keep` accepts, in their order.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
        self.position.clear();
        for (i, (k, _)) in self.entries.iter().enumerate() {
            self.position.insert(*k, i);
        }
        self.last = 0;
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn value_table_is_dense_per_block_and_sparse_beyond() {
        let mut t: ValueTable<u32> = ValueTable::default();
        let base = 3u64 << 40;
        for n in [5u64, 0, 2] {
            t.insert_if_absent(ValueId(base + n), n as u32);
        }
        *t.insert_if_absent(ValueId(base + 5), 99) += 1; // present: kept, not replaced
        t.insert_if_absent(ValueId(7), 7);
        t.insert_if_absent(ValueId(base + (1 << 30)), 1); // far beyond: sparse
        t.insert_if_absent(ValueId(u64::MAX), 2);
        assert_eq!(t.len(), 6);
        assert_eq!(t.get(ValueId(base + 5)), Some(&6));
        assert_eq!(t.get(ValueId(base + 1)), None);
        assert_eq!(t.get(ValueId(base + (1 << 30))), Some(&1));
        assert_eq!(t.get(ValueId(u64::MAX)), Some(&2));
        assert_eq!(
            t.values_ascending(),
            vec![
                ValueId(7),
                ValueId(base),
                ValueId(base + 2),
                ValueId(base + 5),
                ValueId(base + (1 << 30)),
                ValueId(u64::MAX)
            ]
        );
        t.retain(|v, _| v != ValueId(base + 2) && v != ValueId(u64::MAX));
        assert_eq!(t.len(), 4);
        assert!(!t.contains(ValueId(base + 2)) && !t.contains(ValueId(u64::MAX)));
        *t.get_mut(ValueId(7)).unwrap() = 8;
        assert_eq!(t.get(ValueId(7)), Some(&8));
        // A block id beyond the directly indexed ones.
        let far = ValueId(((NEAR_BLOCKS + 5) << 32) | 3);
        t.insert_if_absent(far, 42);
        assert_eq!(t.get(far), Some(&42));
        assert_eq!(t.get(ValueId(far.0 + 1)), None);
        assert_eq!(t.values_ascending().last(), Some(&far));
    }

    #[test]
    fn offset_set_finds_the_first_offset_in_a_range() {
        let mut s = OffsetSet::default();
        for o in [0, 3, 64, 130, 1 << 40] {
            s.insert(o);
        }
        s.finish();
        assert_eq!(s.first_in(0, 1), Some(0));
        assert_eq!(s.first_in(1, 3), None);
        assert_eq!(s.first_in(1, 4), Some(3));
        assert_eq!(s.first_in(4, 200), Some(64));
        assert_eq!(s.first_in(65, 130), None);
        assert_eq!(s.first_in(65, 131), Some(130));
        assert_eq!(s.first_in(131, u64::MAX), Some(1 << 40));
        assert_eq!(s.first_in(5, 5), None);
        assert_eq!(OffsetSet::default().first_in(0, 10), None);
    }

    /// A value id from a few blocks: mostly small dense indices, sometimes one far beyond
    /// (sparse), sometimes a block beyond the directly indexed ones.
    fn value() -> impl Strategy<Value = ValueId> {
        let block = prop_oneof![3 => 0u64..4, 1 => Just(NEAR_BLOCKS + 1)];
        // 70 000 first lies beyond the dense range (sparse); 60 000 then 120 000 grow the
        // block past it, so a later lookup of it finds an empty slot and must ask the sparse
        // side.
        let far = prop_oneof![Just(60_000u64), Just(70_000), Just(120_000), Just(1 << 30)];
        let n = prop_oneof![8 => 0u64..300, 2 => far];
        (block, n).prop_map(|(b, n)| ValueId((b << 32) | n))
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(ValueId, u32),
        Bump(ValueId),
        Retain(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (value(), any::<u32>()).prop_map(|(v, x)| Op::Insert(v, x)),
            2 => value().prop_map(Op::Bump),
            1 => (2u32..5).prop_map(Op::Retain),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// A table made with a shape (some of the values, as an index's invocations give
        /// it) and one grown from nothing answer every lookup as a B-tree map does.
        #[test]
        fn value_tables_answer_as_a_map(
            ops in prop::collection::vec(op(), 0..200),
            shaped in prop::collection::vec(value(), 0..100),
        ) {
            let mut shape = ValueShape::default();
            for v in &shaped {
                shape.note(*v);
            }
            let mut tables: [ValueTable<u32>; 2] =
                [ValueTable::default(), ValueTable::with_shape(&shape)];
            let mut map: BTreeMap<ValueId, u32> = BTreeMap::new();
            for op in &ops {
                match *op {
                    Op::Insert(v, x) => {
                        let expected = *map.entry(v).or_insert(x);
                        for t in &mut tables {
                            prop_assert_eq!(*t.insert_if_absent(v, x), expected);
                        }
                    }
                    Op::Bump(v) => {
                        if let Some(x) = map.get_mut(&v) {
                            *x = x.wrapping_add(1);
                        }
                        for t in &mut tables {
                            if let Some(x) = t.get_mut(v) {
                                *x = x.wrapping_add(1);
                            }
                        }
                    }
                    Op::Retain(m) => {
                        map.retain(|_, x| *x % m != 0);
                        for t in &mut tables {
                            t.retain(|_, x| *x % m != 0);
                        }
                    }
                }
            }
            let keys: Vec<ValueId> = map.keys().copied().collect();
            for t in &tables {
                prop_assert_eq!(t.len(), map.len());
                prop_assert_eq!(&t.values_ascending(), &keys);
                for v in ops.iter().filter_map(|op| match op {
                    Op::Insert(v, _) | Op::Bump(v) => Some(*v),
                    Op::Retain(_) => None,
                }) {
                    prop_assert_eq!(t.get(v), map.get(&v));
                    prop_assert_eq!(t.contains(v), map.contains_key(&v));
                }
            }
        }

        /// A recent map answers as a B-tree map, and walks its entries in insertion order.
        #[test]
        fn recent_maps_answer_as_a_map(
            ops in prop::collection::vec((0u8..4, 0u32..12, any::<u32>()), 0..200),
        ) {
            let mut recent: RecentMap<u32, u32> = RecentMap::default();
            let mut map: BTreeMap<u32, u32> = BTreeMap::new();
            let mut order: Vec<u32> = Vec::new();
            for (what, k, x) in ops {
                match what {
                    0 => {
                        if !map.contains_key(&k) {
                            order.push(k);
                        }
                        let expected = *map.entry(k).or_insert(x);
                        prop_assert_eq!(*recent.get_or_insert_with(k, || x), expected);
                    }
                    1 => {
                        if map.insert(k, x).is_none() {
                            order.push(k);
                        }
                        recent.insert(k, x);
                    }
                    2 => {
                        prop_assert_eq!(recent.get_mut(&k).map(|v| *v), map.get(&k).copied());
                    }
                    _ => {
                        map.retain(|_, v| *v % 3 != 0);
                        order.retain(|k| map.contains_key(k));
                        recent.retain(|_, v| *v % 3 != 0);
                    }
                }
                for k in 0..12 {
                    prop_assert_eq!(recent.get(&k), map.get(&k));
                }
            }
            let walked: Vec<(u32, u32)> = recent.iter().map(|(k, v)| (*k, *v)).collect();
            let expected: Vec<(u32, u32)> = order.iter().map(|k| (*k, map[k])).collect();
            prop_assert_eq!(walked, expected);
            prop_assert_eq!(recent.len(), map.len());
        }
    }
}
