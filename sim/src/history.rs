//! The run's history: every fact nodes recorded, stamped with simulated time and the node.
//! Checkers read it after the run; replay prints the life of a record from it.

use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Instant, NodeId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: Instant,
    pub node: NodeId,
    pub event: HistoryEvent,
}

/// An append-only list of history entries in the order they happened (ties keep event order).
#[derive(Clone, Debug, Default)]
pub struct History {
    entries: Vec<HistoryEntry>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    pub fn push(&mut self, entry: HistoryEntry) {
        debug_assert!(
            self.entries.last().is_none_or(|last| last.at <= entry.at),
            "history went back in time"
        );
        self.entries.push(entry);
    }

    pub fn entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    /// Forget every entry (keeping the allocation): streaming runs.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<HistoryEntry> for History {
    fn from_iter<I: IntoIterator<Item = HistoryEntry>>(iter: I) -> History {
        History {
            entries: iter.into_iter().collect(),
        }
    }
}
