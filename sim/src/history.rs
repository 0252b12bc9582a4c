//! The run's history: every fact nodes recorded, stamped with simulated time and the node.
//! Checkers read it after the run; replay prints the life of a record from it.
//!
//! The history is the largest thing a checked run holds (four entries per record: its send,
//! acknowledgement, read and sink row), so it is kept in chunks of [`CHUNK`] entries rather
//! than one vector: a vector that doubles holds its old and new buffers at once while it
//! copies (three times the history at the moment of a doubling, under mimalloc, which
//! copies large reallocations) and up to twice what it needs afterwards. A full chunk is
//! never moved again.

use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Instant, NodeId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: Instant,
    pub node: NodeId,
    pub event: HistoryEvent,
}

/// Entries per chunk (1 MiB). The first chunk grows like a vector up to this size, so a
/// short history takes no more than it needs; every later chunk is allocated at this size.
const CHUNK: usize = 16 * 1024;

/// An append-only list of history entries in the order they happened (ties keep event order).
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Every chunk but the last holds exactly [`CHUNK`] entries, so entry `i` is at
    /// `chunks[i / CHUNK][i % CHUNK]`.
    chunks: Vec<Vec<HistoryEntry>>,
    len: usize,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    /// Inlined: the world records about four entries per simulated record, and a call
    /// passing the 64-byte entry on to [`History::append`] cost a copy of it each time.
    #[inline(always)]
    pub fn push(&mut self, entry: HistoryEntry) {
        debug_assert!(
            self.last().is_none_or(|last| last.at <= entry.at),
            "history went back in time"
        );
        self.append(entry);
    }

    #[inline(always)]
    fn append(&mut self, entry: HistoryEntry) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(entry),
            _ => self.append_to_new_chunk(entry),
        }
        self.len += 1;
    }

    /// Starts a chunk with `entry`: the first one grows like a vector, every later one is
    /// allocated at its final size.
    #[cold]
    #[inline(never)]
    fn append_to_new_chunk(&mut self, entry: HistoryEntry) {
        let mut chunk = match self.chunks.last() {
            None => Vec::new(),
            Some(full) => {
                debug_assert_eq!(full.len(), CHUNK, "a chunk left before it was full");
                Vec::with_capacity(CHUNK)
            }
        };
        chunk.push(entry);
        self.chunks.push(chunk);
    }

    /// Every entry, in the order recorded, read in place from the chunks.
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            front: [].iter(),
            chunks: self.chunks.iter(),
            back: [].iter(),
        }
    }

    /// The entries from the `from`-th on (`from` at most [`History::len`]).
    pub fn entries_from(&self, from: usize) -> Entries<'_> {
        assert!(
            from <= self.len,
            "entry {from} of a history of {}",
            self.len
        );
        let (chunk, offset) = (from / CHUNK, from % CHUNK);
        let first = self.chunks.get(chunk).map_or(&[][..], |c| &c[offset..]);
        Entries {
            front: first.iter(),
            chunks: self.chunks.get(chunk + 1..).unwrap_or(&[]).iter(),
            back: [].iter(),
        }
    }

    /// The entries as consecutive slices, in order.
    pub fn slices(&self) -> impl Iterator<Item = &[HistoryEntry]> + '_ {
        self.chunks.iter().map(Vec::as_slice)
    }

    /// The `i`-th entry.
    pub fn get(&self, i: usize) -> Option<&HistoryEntry> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    pub fn last(&self) -> Option<&HistoryEntry> {
        self.chunks.last()?.last()
    }

    /// Forget every entry (keeping the first chunk's allocation): streaming runs.
    pub fn clear(&mut self) {
        self.chunks.truncate(1);
        if let Some(first) = self.chunks.first_mut() {
            first.clear();
        }
        self.len = 0;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The iterator of [`History::entries`]. The checkers walk a history of about four entries
/// per simulated record seven times over, so the walk of one chunk is a plain slice
/// iteration (`Flatten`'s optional front and back iterators cost a few instructions more for
/// every entry).
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    /// The rest of the chunk being read from the front.
    front: std::slice::Iter<'a, HistoryEntry>,
    /// Chunks not yet started from either end.
    chunks: std::slice::Iter<'a, Vec<HistoryEntry>>,
    /// The rest of the chunk being read from the back.
    back: std::slice::Iter<'a, HistoryEntry>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = &'a HistoryEntry;

    #[inline]
    fn next(&mut self) -> Option<&'a HistoryEntry> {
        loop {
            if let Some(entry) = self.front.next() {
                return Some(entry);
            }
            match self.chunks.next() {
                Some(chunk) => self.front = chunk.iter(),
                None => return self.back.next(),
            }
        }
    }

    // Internal iteration (a `filter`, `any`, `fold`) walks each chunk's slice on its own, as
    // `Flatten` does, instead of asking `next` entry by entry.

    fn fold<B, F: FnMut(B, &'a HistoryEntry) -> B>(self, init: B, mut f: F) -> B {
        let acc = self.front.fold(init, &mut f);
        let acc = self
            .chunks
            .fold(acc, |acc, chunk| chunk.iter().fold(acc, &mut f));
        self.back.fold(acc, f)
    }

    fn find<P: FnMut(&&'a HistoryEntry) -> bool>(
        &mut self,
        mut predicate: P,
    ) -> Option<&'a HistoryEntry> {
        loop {
            if let Some(entry) = self.front.find(&mut predicate) {
                return Some(entry);
            }
            match self.chunks.next() {
                Some(chunk) => self.front = chunk.iter(),
                None => return self.back.find(predicate),
            }
        }
    }

    fn any<P: FnMut(&'a HistoryEntry) -> bool>(&mut self, mut predicate: P) -> bool {
        self.find(|entry| predicate(entry)).is_some()
    }
}

impl<'a> DoubleEndedIterator for Entries<'a> {
    fn next_back(&mut self) -> Option<&'a HistoryEntry> {
        loop {
            if let Some(entry) = self.back.next_back() {
                return Some(entry);
            }
            match self.chunks.next_back() {
                Some(chunk) => self.back = chunk.iter(),
                None => return self.front.next_back(),
            }
        }
    }
}

impl FromIterator<HistoryEntry> for History {
    fn from_iter<I: IntoIterator<Item = HistoryEntry>>(iter: I) -> History {
        let mut h = History::new();
        for e in iter {
            h.append(e);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafsim_engine::history::HistoryEvent;

    fn entry(i: u64) -> HistoryEntry {
        HistoryEntry {
            at: Instant::from_nanos(i),
            node: NodeId(i as u32 % 7),
            event: HistoryEvent::TxnBegin {
                producer: 0,
                txn: i,
            },
        }
    }

    #[test]
    fn entries_keep_their_order_across_chunks() {
        let n = 2 * CHUNK as u64 + 123;
        let h: History = (0..n).map(entry).collect();
        assert_eq!(h.len(), n as usize);
        assert_eq!(h.chunks.len(), 3);
        // Full chunks are never reallocated: exactly one chunk's worth each.
        assert!(h.chunks[..2].iter().all(|c| c.len() == CHUNK));
        assert_eq!(h.chunks[1].capacity(), CHUNK);
        assert!(h.entries().cloned().eq((0..n).map(entry)));
        assert!(h.entries().rev().cloned().eq((0..n).rev().map(entry)));
        assert!(h.slices().flatten().cloned().eq((0..n).map(entry)));
        let odd = |e: &&HistoryEntry| e.at.as_nanos() % 2 == 1;
        assert!(h
            .entries()
            .filter(odd)
            .eq(h.chunks.iter().flatten().filter(odd)));
        assert_eq!(h.entries().fold(0, |n, _| n + 1), n);
        assert!(h.entries().any(|e| e.at.as_nanos() == n - 1));
        assert!(!h.entries().any(|e| e.at.as_nanos() == n));
        // Both ends at once meet in the middle, as a `Flatten` of the chunks would.
        let mut both = h.entries();
        let mut flat = h.chunks.iter().flatten();
        for i in 0..n + 2 {
            let (a, b) = if i % 3 == 0 {
                (both.next_back(), flat.next_back())
            } else {
                (both.next(), flat.next())
            };
            assert_eq!(a, b, "step {i}");
        }
        for from in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, n as usize] {
            assert!(
                h.entries_from(from)
                    .cloned()
                    .eq((from as u64..n).map(entry)),
                "from {from}"
            );
            assert_eq!(
                h.get(from).cloned(),
                (from < n as usize).then(|| entry(from as u64))
            );
        }
        assert_eq!(h.last().cloned(), Some(entry(n - 1)));
    }

    #[test]
    fn a_cleared_history_takes_new_entries() {
        let mut h: History = (0..CHUNK as u64 + 5).map(entry).collect();
        h.clear();
        assert!(h.is_empty() && h.entries().next().is_none() && h.last().is_none());
        for i in 0..3 {
            h.push(entry(i));
        }
        assert!(h.entries().cloned().eq((0..3).map(entry)));
        assert_eq!(h.chunks.len(), 1);
    }
}
