//! Java's `RangeAssignor` (as ported by kafka-python; also sarama since 1.34.1 and
//! librdkafka's `range`).
//!
//! Per topic, the subscribed members in lexicographic id order each get `P / M` consecutive
//! partitions, and the first `P % M` members get one more. Topics are independent, so with
//! several topics the first members collect the extras of every topic: range is the
//! strategy whose imbalance grows with the topic count.

use super::{add, Assignment, Group};

/// Per-topic contiguous ranges, extras to the lexicographically first members.
pub fn assign(group: &Group) -> Assignment {
    let mut out = Assignment::new();
    for (topic, members) in group.members_by_topic() {
        let partitions = group.partition_count(topic);
        for (index, member) in members.iter().enumerate() {
            let (start, length) = java_range(index as u32, members.len() as u32, partitions);
            for partition in start..start + length {
                add(&mut out, member, topic, partition);
            }
        }
    }
    out
}

/// The `(start, length)` of member `index` of `members` over `partitions` partitions.
pub fn java_range(index: u32, members: u32, partitions: u32) -> (u32, u32) {
    assert!(index < members, "range: member index {index} of {members}");
    let per_member = partitions / members;
    let with_extra = partitions % members;
    let start = per_member * index + index.min(with_extra);
    let length = per_member + u32::from(index < with_extra);
    (start, length)
}

#[cfg(test)]
mod tests {
    use super::java_range;

    #[test]
    fn extras_go_to_the_first_members() {
        let got: Vec<_> = (0..3).map(|i| java_range(i, 3, 7)).collect();
        assert_eq!(got, vec![(0, 3), (3, 2), (5, 2)]);
    }

    #[test]
    fn more_members_than_partitions_leaves_the_last_empty() {
        let got: Vec<_> = (0..4).map(|i| java_range(i, 4, 2)).collect();
        assert_eq!(got, vec![(0, 1), (1, 1), (2, 0), (2, 0)]);
    }
}
