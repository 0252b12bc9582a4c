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

use super::index::FastMap;
use kafsim_engine::ValueId;

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

fn split(value: ValueId) -> (u64, usize) {
    (value.0 >> 32, (value.0 & 0xffff_ffff) as usize)
}

impl<T> ValueTable<T> {
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

    pub fn contains(&self, value: ValueId) -> bool {
        self.get(value).is_some()
    }

    /// The value's entry, inserting `make()` if it has none (`entry().or_insert_with`).
    pub fn get_or_insert_with(&mut self, value: ValueId, make: impl FnOnce() -> T) -> &mut T {
        let (block, n) = split(value);
        let i = match self.block_position(block) {
            Some(i) => i,
            None => {
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
        };
        let slots = &mut self.blocks[i].1;
        let dense = n < slots.len()
            || (n < MAX_BLOCK && n <= slots.len().saturating_mul(2).max(slots.len() + MAX_GROWTH));
        if dense && !self.sparse.contains_key(&value) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
