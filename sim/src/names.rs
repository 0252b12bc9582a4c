//! The one naming service of a run: how every node, topic, group, member and producer is
//! printed in replay text, traces, violation details, reports and JSON.
//!
//! The engine records plain indices (`NodeId(7)`, `TopicId(0)`, group 0, member 2): names
//! are the scenario's business. Whoever adds a node to a world gives it its role name there
//! (`broker-0`, `controller-1`, `producer-1`, `billing/2`, `database:billing`), so the world's
//! node table *is* the registry every node kind registers into; [`Names::of_world`] copies it
//! together with the scenario's topic and group names. Nothing prints `n7`, `t0` or `group 0`
//! for a name that is known; the fallbacks (`node-7`, `topic-0`, `group-0`) only appear for
//! indices no one registered (hand-built histories in unit tests).

use crate::world::World;
use kafsim_engine::{NodeId, TopicId, TopicPartition};

/// Names by index. Cheap to clone; lookups never fail (unknown indices get a fallback).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    nodes: Vec<String>,
    topics: Vec<String>,
    groups: Vec<String>,
    /// Per group index: its `group.instance.id` (static membership), member I being
    /// `<value>-I`; empty for a dynamic group.
    instances: Vec<String>,
}

impl Names {
    pub fn new() -> Names {
        Names::default()
    }

    /// The names of `w`'s nodes (as given to `World::add_node`), with topic and group names
    /// by index.
    pub fn of_world(w: &World, topics: &[String], groups: &[String]) -> Names {
        Names {
            nodes: w.node_ids().map(|n| w.name(n).to_string()).collect(),
            topics: topics.to_vec(),
            groups: groups.to_vec(),
            instances: Vec::new(),
        }
    }

    /// Register group `index`'s `group.instance.id`: its members are static.
    pub fn set_instance(&mut self, index: u32, instance_id: impl Into<String>) {
        let i = index as usize;
        if self.instances.len() <= i {
            self.instances.resize_with(i + 1, String::new);
        }
        self.instances[i] = instance_id.into();
    }

    /// Register (or rename) node `id`.
    pub fn set_node(&mut self, id: NodeId, name: impl Into<String>) {
        let i = id.0 as usize;
        if self.nodes.len() <= i {
            self.nodes.resize_with(i + 1, String::new);
        }
        self.nodes[i] = name.into();
    }

    /// Register topic `id`.
    pub fn set_topic(&mut self, id: TopicId, name: impl Into<String>) {
        let i = id.0 as usize;
        if self.topics.len() <= i {
            self.topics.resize_with(i + 1, String::new);
        }
        self.topics[i] = name.into();
    }

    /// Register group `index`.
    pub fn set_group(&mut self, index: u32, name: impl Into<String>) {
        let i = index as usize;
        if self.groups.len() <= i {
            self.groups.resize_with(i + 1, String::new);
        }
        self.groups[i] = name.into();
    }

    /// Every registered node name, by id.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The node with role name `name`, if registered.
    pub fn node_by_name(&self, name: &str) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|n| n == name)
            .map(|i| NodeId(i as u32))
    }

    pub fn node(&self, id: NodeId) -> String {
        known(&self.nodes, id.0).unwrap_or_else(|| format!("node-{}", id.0))
    }

    pub fn topic(&self, id: TopicId) -> String {
        known(&self.topics, id.0).unwrap_or_else(|| format!("topic-{}", id.0))
    }

    /// `orders/3`.
    pub fn tp(&self, tp: TopicPartition) -> String {
        format!("{}/{}", self.topic(tp.topic), tp.partition)
    }

    /// `orders/3@1854`; `orders/3 (no offset: acks=0)` for an acknowledgement without an
    /// offset (the producer's `OFFSET_UNKNOWN`), never the sentinel's digits.
    pub fn at(&self, tp: TopicPartition, offset: u64) -> String {
        if offset == kafsim_engine::producer::OFFSET_UNKNOWN {
            return format!("{} (no offset: acks=0)", self.tp(tp));
        }
        format!("{}@{offset}", self.tp(tp))
    }

    pub fn group(&self, index: u32) -> String {
        known(&self.groups, index).unwrap_or_else(|| format!("group-{index}"))
    }

    /// The scenario index of the group whose `group.id` is `name` (brokers know groups by name).
    pub fn group_index(&self, name: &str) -> Option<u32> {
        self.groups.iter().position(|g| g == name).map(|i| i as u32)
    }

    /// `billing/2`: member 2 of group billing (the name of its node, too).
    pub fn member(&self, group: u32, member: u32) -> String {
        format!("{}/{member}", self.group(group))
    }

    /// `billing-2`: the `group.instance.id` of member 2 of a static group, as the runner
    /// gives it (`<value>-<member>`); `None` for a dynamic group.
    pub fn member_instance(&self, group: u32, member: u32) -> Option<String> {
        known(&self.instances, group).map(|v| format!("{v}-{member}"))
    }

    /// `billing/2`, or `billing/2 (group.instance.id billing-2)` for a static member: how
    /// a story names a member when its identity across restarts matters.
    pub fn member_with_instance(&self, group: u32, member: u32) -> String {
        match self.member_instance(group, member) {
            Some(id) => format!("{} (group.instance.id {id})", self.member(group, member)),
            None => self.member(group, member),
        }
    }

    /// `producer-1`: the producer client with run-wide index 1 (the name of its node).
    pub fn producer(&self, index: u32) -> String {
        format!("producer-{index}")
    }
}

fn known(names: &[String], i: u32) -> Option<String> {
    names.get(i as usize).filter(|n| !n.is_empty()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_names_win_and_unknown_indices_fall_back_without_engine_notation() {
        let mut names = Names::new();
        names.set_node(NodeId(2), "broker-0");
        names.set_node(NodeId(9), "database:billing");
        names.set_topic(TopicId(0), "orders");
        names.set_group(0, "billing");
        let tp = TopicPartition::new(TopicId(0), 3);
        assert_eq!(names.node(NodeId(2)), "broker-0");
        assert_eq!(names.node(NodeId(9)), "database:billing");
        assert_eq!(names.node_by_name("database:billing"), Some(NodeId(9)));
        assert_eq!(names.at(tp, 1854), "orders/3@1854");
        assert_eq!(names.member(0, 2), "billing/2");
        assert_eq!(names.producer(1), "producer-1");
        // Never the engine's `n5` / `t1` / `group 1`.
        assert_eq!(names.node(NodeId(5)), "node-5");
        assert_eq!(names.topic(TopicId(1)), "topic-1");
        assert_eq!(names.group(1), "group-1");
    }
}
