//! sarama's original `BalanceStrategyRange` / `BalanceStrategyRoundRobin` (sarama before 1.35.0;
//! the oracle holds sarama 1.22.1).
//!
//! For each topic sarama sorted the subscribed members not by id but by an FNV-1a-32 hash of
//! the topic name followed by the member id (Go `range` over the strings, i.e. over Unicode code
//! points), so `C1` may come before `C0`. Range then gave member `i` the partitions
//! `[floor(i*P/M + 0.5), floor((i+1)*P/M + 0.5))` (a rounded float step; 5 partitions over 3
//! members give 2/1/2, where Java gives 2/2/1); roundrobin gave partition `i` of each topic to
//! member `i % M` of that topic's order.
//!
//! Range became Java-compatible in 1.34.1, roundrobin was rewritten in 1.28.0 (see
//! [`super::roundrobin`]), and 1.35.0 dropped the hash order and de-duplicated member ids.
//! Like those versions, a member that lists a topic twice appears twice in that topic's order.

use super::{add, Assignment, Group};
use std::collections::BTreeMap;

/// FNV-1a 32 over the code points of `topic` then `member` (sarama's
/// `balanceStrategyHashValue`).
pub fn member_hash(topic: &str, member: &str) -> u32 {
    let mut hash: u32 = 2_166_136_261;
    for c in topic.chars().chain(member.chars()) {
        hash ^= u32::from(c);
        hash = hash.wrapping_mul(16_777_619);
    }
    hash
}

/// Topic -> subscribed members in sarama's hash order (duplicates kept).
fn members_in_hash_order<'a>(group: &Group<'a>) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut by_topic: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (member, topics) in group.raw_members {
        for topic in topics.iter().filter(|t| group.topics.contains_key(*t)) {
            by_topic
                .entry(topic.as_str())
                .or_default()
                .push(member.as_str());
        }
    }
    for (topic, members) in by_topic.iter_mut() {
        // Go's sort.Sort is not stable; ties (equal 32-bit hashes) fall back to the id here.
        members.sort_by_key(|m| (member_hash(topic, m), *m));
    }
    by_topic
}

/// Rounded float-step ranges over the hash order.
pub fn range(group: &Group) -> Assignment {
    let mut out = Assignment::new();
    for (topic, members) in members_in_hash_order(group) {
        let partitions = group.partition_count(topic);
        let step = f64::from(partitions) / members.len() as f64;
        for (index, member) in members.iter().enumerate() {
            let position = index as f64;
            let min = (position * step + 0.5).floor() as u32;
            let max = ((position + 1.0) * step + 0.5).floor() as u32;
            for partition in min..max.min(partitions) {
                add(&mut out, member, topic, partition);
            }
        }
    }
    out
}

/// Per-topic deal over the hash order.
pub fn roundrobin(group: &Group) -> Assignment {
    let mut out = Assignment::new();
    for (topic, members) in members_in_hash_order(group) {
        for partition in 0..group.partition_count(topic) {
            let member = members[partition as usize % members.len()];
            add(&mut out, member, topic, partition);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::member_hash;

    #[test]
    fn hash_is_fnv1a_over_topic_then_member() {
        // FNV-1a 32 of "a" is 0xe40c292c; of the empty string the offset basis.
        assert_eq!(member_hash("", ""), 0x811c_9dc5);
        assert_eq!(member_hash("a", ""), 0xe40c_292c);
        assert_eq!(member_hash("", "a"), member_hash("a", ""));
    }
}
