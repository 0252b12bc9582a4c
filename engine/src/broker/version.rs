//! The Kafka release whose broker and controller rules a cluster follows (`[cluster] version`
//! in a scenario, like `inter.broker.protocol.version` pins a real cluster's protocol).
//!
//! Only releases whose modelled rules were read in the Apache Kafka source are accepted. The
//! controller kafsim models is KRaft-like (registration with incarnations and heartbeats,
//! AlterPartition of KIP-497, fenced brokers ineligible for the ISR per KIP-841, which
//! landed in 3.3), so the oldest release it can claim to be is 3.3. What differs among the
//! accepted releases:
//!
//! - 3.7 and later (KAFKA-15583, `Partition.maybeIncrementLeaderHW` / `isUnderMinIsr`): the
//!   leader does not advance the high watermark while its ISR is smaller than the effective
//!   `min.insync.replicas`, and the effective value is `min(min.insync.replicas, replication
//!   factor)` (`Partition.effectiveMinIsr`), also for the NotEnoughReplicas checks of acks=all.
//!
//! The same in every accepted release (so not switched): a restarted broker is refused
//! (`DuplicateBrokerRegistrationException`, `ClusterControlManager.registerBroker`) while
//! its previous incarnation's session is valid, and once registered it stays fenced, outside
//! every ISR, until it has caught up with the metadata; a follower whose LEO equals the
//! leader's is never out of sync (KAFKA-7152, `Replica.isCaughtUp`, since 2.1).

use std::fmt;

/// A modelled Kafka release, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KafkaVersion {
    V3_3,
    V3_4,
    V3_5,
    V3_6,
    V3_7,
    V3_8,
    V3_9,
    V4_0,
}

impl KafkaVersion {
    /// Every modelled release, oldest first.
    pub const ALL: [KafkaVersion; 8] = [
        KafkaVersion::V3_3,
        KafkaVersion::V3_4,
        KafkaVersion::V3_5,
        KafkaVersion::V3_6,
        KafkaVersion::V3_7,
        KafkaVersion::V3_8,
        KafkaVersion::V3_9,
        KafkaVersion::V4_0,
    ];

    /// The newest modelled release: what a cluster runs unless told otherwise.
    pub const NEWEST: KafkaVersion = KafkaVersion::V4_0;

    pub fn as_str(self) -> &'static str {
        match self {
            KafkaVersion::V3_3 => "3.3",
            KafkaVersion::V3_4 => "3.4",
            KafkaVersion::V3_5 => "3.5",
            KafkaVersion::V3_6 => "3.6",
            KafkaVersion::V3_7 => "3.7",
            KafkaVersion::V3_8 => "3.8",
            KafkaVersion::V3_9 => "3.9",
            KafkaVersion::V4_0 => "4.0",
        }
    }

    /// `"3.7"` (a patch level such as `"3.7.1"` is accepted: the rules are per minor release).
    pub fn parse(text: &str) -> Option<KafkaVersion> {
        let minor = match text.match_indices('.').nth(1) {
            Some((i, _)) if text[i + 1..].chars().all(|c| c.is_ascii_digit()) => &text[..i],
            Some(_) => return None,
            None => text,
        };
        KafkaVersion::ALL.into_iter().find(|v| v.as_str() == minor)
    }

    /// The accepted spellings, for error hints.
    pub fn names() -> Vec<&'static str> {
        KafkaVersion::ALL.iter().map(|v| v.as_str()).collect()
    }

    /// KAFKA-15583 (3.7): no HW advance under the effective `min.insync.replicas`, and the
    /// effective value is capped by the replication factor.
    pub fn hw_requires_min_isr(self) -> bool {
        self >= KafkaVersion::V3_7
    }
}

impl Default for KafkaVersion {
    fn default() -> KafkaVersion {
        KafkaVersion::NEWEST
    }
}

impl fmt::Display for KafkaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minor_and_patch_releases_and_rejects_others() {
        assert_eq!(KafkaVersion::parse("3.7"), Some(KafkaVersion::V3_7));
        assert_eq!(KafkaVersion::parse("3.7.1"), Some(KafkaVersion::V3_7));
        assert_eq!(KafkaVersion::parse("4.0"), Some(KafkaVersion::V4_0));
        for bad in ["3.2", "2.8", "3", "3.7.x", "4.1", "", "latest"] {
            assert_eq!(KafkaVersion::parse(bad), None, "{bad}");
        }
        assert_eq!(KafkaVersion::default(), KafkaVersion::NEWEST);
        assert!(KafkaVersion::V3_7.hw_requires_min_isr());
        assert!(!KafkaVersion::V3_6.hw_requires_min_isr());
    }
}
