//! The leader-epoch cache (`leader-epoch-checkpoint`): for every leader epoch that wrote to
//! this log, the offset of its first record. KIP-101 uses it to answer OffsetsForLeaderEpoch
//! ("where does epoch E end in your log?") so a follower truncates to the true common prefix
//! instead of to its possibly stale high watermark. KIP-279 made the follower repeat the
//! question until both logs agree on the epoch.

/// Kafka's `UNDEFINED_EPOCH` in an OffsetsForLeaderEpoch answer: no epoch <= the asked one.
pub const UNDEFINED_EPOCH: u32 = u32::MAX;

/// `(epoch, start offset)` entries, strictly increasing in both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(u32, u64)>,
}

impl LeaderEpochCache {
    pub fn from_entries(mut entries: Vec<(u32, u64)>) -> LeaderEpochCache {
        entries.sort();
        entries.dedup_by_key(|e| e.0);
        let mut cache = LeaderEpochCache::default();
        let given = entries.len();
        for (epoch, offset) in entries {
            cache.assign(epoch, offset);
        }
        assert!(
            cache.entries.len() <= given,
            "the cache grew past its entries"
        );
        cache.check();
        cache
    }

    pub fn entries(&self) -> &[(u32, u64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<u32> {
        self.entries.last().map(|e| e.0)
    }

    /// Record that `epoch` starts at `offset`, as Kafka's `LeaderEpochFileCache.assign` does.
    /// Returns whether the cache changed. Nothing changes when the latest entry is this epoch
    /// starting at or below `offset`. Otherwise every entry from the end whose epoch is not
    /// older or whose start is not below `offset` goes (`maybeTruncateNonMonotonicEntries`),
    /// and the new entry is the latest. An *older* epoch does change the cache: a replica that
    /// led epoch 5 without writing (its entry starts at its log end) and then follows a leader
    /// whose log has epoch-4 records past that point appends them as epoch 4, and its cache
    /// must say so, or it would later answer OffsetsForLeaderEpoch for epoch 4 with the start
    /// of an epoch 5 that holds nothing.
    pub fn assign(&mut self, epoch: u32, offset: u64) -> bool {
        let needed = self
            .entries
            .last()
            .is_none_or(|&(last, start)| epoch != last || offset < start);
        if !needed {
            return false;
        }
        while self
            .entries
            .last()
            .is_some_and(|&(e, start)| e >= epoch || start >= offset)
        {
            self.entries.pop();
        }
        self.entries.push((epoch, offset));
        self.check();
        assert_eq!(
            self.latest_epoch(),
            Some(epoch),
            "the assigned epoch is the latest"
        );
        true
    }

    /// Remove entries starting at or after `end` (the log was truncated to `end`).
    pub fn truncate_from_end(&mut self, end: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end);
        assert!(
            self.entries.last().is_none_or(|&(_, start)| start < end),
            "an epoch starts at or past the truncation point {end}"
        );
        before != self.entries.len()
    }

    /// Kafka's `endOffsetFor(requestedEpoch, logEndOffset)`: the largest epoch <= `requested`
    /// this log knows and the offset where it ends (the start of the next epoch, or the log
    /// end offset for the latest epoch). `(UNDEFINED_EPOCH, log_start)` when none is <= it.
    pub fn end_offset_for(&self, requested: u32, log_end_offset: u64) -> (u32, u64) {
        let answer = match self.entries.iter().rposition(|&(e, _)| e <= requested) {
            None => (UNDEFINED_EPOCH, self.entries.first().map_or(0, |e| e.1)),
            Some(i) if i + 1 == self.entries.len() => (self.entries[i].0, log_end_offset),
            Some(i) => (self.entries[i].0, self.entries[i + 1].1),
        };
        assert!(
            answer.0 == UNDEFINED_EPOCH || answer.0 <= requested,
            "asked for epoch {requested}, answered the later {}",
            answer.0
        );
        answer
    }

    /// Strictly increasing in both epoch and start offset: each epoch starts after the one
    /// before it and no two entries share an epoch (`LeaderEpochFileCache`'s invariant).
    fn check(&self) {
        assert!(
            self.entries
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
            "leader-epoch cache not increasing: {:?}",
            self.entries
        );
        assert!(
            self.entries.iter().all(|&(e, _)| e != UNDEFINED_EPOCH),
            "the undefined epoch in the cache: {:?}",
            self.entries
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_follows_kafka_for_older_epochs_and_earlier_starts() {
        let mut cache = LeaderEpochCache::from_entries(vec![(3, 0), (4, 10), (5, 20)]);
        // Epoch 5 started at 20 and wrote nothing; epoch-4 records arrive from 20 on.
        assert!(cache.assign(4, 20));
        assert_eq!(cache.entries(), &[(3, 0), (4, 20)]);
        // The same epoch at a later offset changes nothing; at an earlier one it moves back.
        assert!(!cache.assign(4, 25));
        assert!(cache.assign(4, 15));
        assert_eq!(cache.entries(), &[(3, 0), (4, 15)]);
        assert!(cache.assign(6, 30));
        assert_eq!(cache.entries(), &[(3, 0), (4, 15), (6, 30)]);
    }

    #[test]
    fn end_offset_for_follows_kip_279() {
        let cache = LeaderEpochCache::from_entries(vec![(0, 0), (2, 10), (5, 20)]);
        assert_eq!(cache.end_offset_for(5, 30), (5, 30));
        assert_eq!(cache.end_offset_for(7, 30), (5, 30));
        assert_eq!(cache.end_offset_for(4, 30), (2, 20));
        assert_eq!(cache.end_offset_for(1, 30), (0, 10));
        let late = LeaderEpochCache::from_entries(vec![(3, 0)]);
        assert_eq!(late.end_offset_for(1, 5).0, UNDEFINED_EPOCH);
    }

    #[test]
    fn assign_keeps_an_epochs_first_offset_and_truncation_drops_entries() {
        let mut cache = LeaderEpochCache::default();
        assert!(cache.assign(1, 0));
        assert!(!cache.assign(1, 5));
        assert!(cache.assign(3, 7));
        assert!(!cache.assign(3, 9));
        assert!(cache.truncate_from_end(7));
        assert_eq!(cache.entries(), &[(1, 0)]);
        assert!(!cache.truncate_from_end(7));
    }
}
