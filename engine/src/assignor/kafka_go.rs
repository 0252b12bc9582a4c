//! kafka-go's `RangeGroupBalancer` and `RoundRobinGroupBalancer` (v0.2.1; the `AssignGroups`
//! code is textually the same through v0.4.50). kafka-go has no sticky balancer.
//!
//! Both work per topic over the subscribed members sorted by id. Range gives member `i` the
//! partitions at index `i*P/M .. (i+1)*P/M` (integer division), so, unlike Java, the **later**
//! members get the extra partitions (5 partitions, 2 members: `[0,1]` / `[2,3,4]`). Roundrobin
//! gives partition index `i` to member `i % M` of each topic, restarting at the first member for
//! every topic instead of cycling across topics as Java does.

use super::{add, Assignment, Group};

/// `[i*P/M, (i+1)*P/M)` per topic.
pub fn range(group: &Group) -> Assignment {
    let mut out = Assignment::new();
    for (topic, members) in group.members_by_topic() {
        let partitions = u64::from(group.partition_count(topic));
        let count = members.len() as u64;
        for (index, member) in members.iter().enumerate() {
            let index = index as u64;
            let (min, max) = (index * partitions / count, (index + 1) * partitions / count);
            for partition in min..max {
                add(&mut out, member, topic, partition as u32);
            }
        }
    }
    out
}

/// Partition index `i` of each topic to sorted member `i % M`.
pub fn roundrobin(group: &Group) -> Assignment {
    let mut out = Assignment::new();
    for (topic, members) in group.members_by_topic() {
        for partition in 0..group.partition_count(topic) {
            let member = members[partition as usize % members.len()];
            add(&mut out, member, topic, partition);
        }
    }
    out
}
