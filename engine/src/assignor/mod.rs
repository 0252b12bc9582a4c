//! Consumer-group partition assignors (`partition.assignment.strategy`), one per strategy and
//! client, reproducing what each real client library computes.
//!
//! The group leader runs the assignor on the members' subscriptions and hands every member its
//! partitions. Which partitions a consumer reads after a rebalance decides ordering, duplicate
//! reads and stalls, so kafsim reproduces each client's algorithm exactly, including the
//! version-specific quirks, and tests it against golden data produced by the real libraries
//! (`shared/oracles/assignors.json`, see `engine/tests/all/assignor_oracle.rs`).
//!
//! | client | range | roundrobin | sticky | cooperative-sticky |
//! |---|---|---|---|---|
//! | `Java` (kafka-python's port) | [`range`] | [`roundrobin`] global cycle | [`sticky`] (KIP-54) | [`cooperative`] (KIP-429) |
//! | `Librdkafka` | as Java | as Java | as Java | as Java |
//! | `Sarama` >= 1.35 | as Java (since 1.34.1) | global cycle over `"topic-N"` strings (since 1.28.0) | as Java (since 1.24.0) | as Java (since 1.60.1) |
//! | `Sarama` < 1.34.1 / < 1.28.0 | [`sarama_legacy`] hash order, rounded float step | [`sarama_legacy`] per topic | - | - |
//! | `KafkaGo` | [`kafka_go`]: extra partitions go to later members | [`kafka_go`] per topic | - | - |
//!
//! librdkafka's range and roundrobin assignors are ports of Java's and give the same result;
//! its sticky assignor is a port of Java's as well. kafsim uses the Java algorithms for it (no
//! librdkafka assignor output is in the oracle set).
//!
//! Everything here is a pure function of its input: `BTreeMap`s and sorted vectors only, no
//! randomness. Where a library's result depends on hash-map iteration order (sarama's sticky,
//! Python sets in kafka-python), kafsim picks one fixed order; the oracle only keeps cases on
//! which every order agreed.

pub mod cooperative;
pub mod kafka_go;
pub mod range;
pub mod roundrobin;
pub mod sarama_legacy;
pub mod sticky;
mod sticky_movements;

use std::collections::{BTreeMap, BTreeSet};

/// The client library whose assignor a consumer group uses (its profile in a scenario).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Client {
    /// The Java client; the algorithms are those of kafka-python, a port of Java's.
    Java,
    /// IBM/Shopify sarama (Go); behaviour depends on `client_version`.
    Sarama,
    /// segmentio/kafka-go; range and roundrobin only.
    KafkaGo,
    /// librdkafka (confluent-kafka-*); its assignors behave as Java's.
    Librdkafka,
}

impl Client {
    /// Parses the names used by scenario files and the oracle: `java`, `sarama`, `kafka-go`,
    /// `librdkafka`.
    pub fn from_name(name: &str) -> Option<Client> {
        match name {
            "java" => Some(Client::Java),
            "sarama" => Some(Client::Sarama),
            "kafka-go" => Some(Client::KafkaGo),
            "librdkafka" => Some(Client::Librdkafka),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Client::Java => "java",
            Client::Sarama => "sarama",
            Client::KafkaGo => "kafka-go",
            Client::Librdkafka => "librdkafka",
        }
    }
}

/// The assignment strategy (`partition.assignment.strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Strategy {
    Range,
    RoundRobin,
    Sticky,
    CooperativeSticky,
}

impl Strategy {
    /// Parses `range`, `roundrobin`, `sticky`, `cooperative-sticky`.
    pub fn from_name(name: &str) -> Option<Strategy> {
        match name {
            "range" => Some(Strategy::Range),
            "roundrobin" => Some(Strategy::RoundRobin),
            "sticky" => Some(Strategy::Sticky),
            "cooperative-sticky" => Some(Strategy::CooperativeSticky),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Range => "range",
            Strategy::RoundRobin => "roundrobin",
            Strategy::Sticky => "sticky",
            Strategy::CooperativeSticky => "cooperative-sticky",
        }
    }
}

/// Client versions are the configuration's ([`crate::config::ClientVersion`]).
pub use crate::config::ClientVersion as Version;

/// sarama 1.24.0 added the sticky strategy.
pub const SARAMA_STICKY_SINCE: Version = Version(1, 24, 0);
/// sarama 1.28.0 rewrote roundrobin as a global cycle (PR #1788).
pub const SARAMA_GLOBAL_ROUNDROBIN_SINCE: Version = Version(1, 28, 0);
/// sarama 1.34.1 made range Java-compatible (lexicographic members, extras to the first).
pub const SARAMA_JAVA_RANGE_SINCE: Version = Version(1, 34, 1);
/// sarama 1.60.1 added a cooperative-sticky strategy.
pub const SARAMA_COOPERATIVE_SINCE: Version = Version(1, 60, 1);

/// Everything the group leader knows when it assigns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignInput {
    pub client: Client,
    /// `None`: the newest behaviour of the client.
    pub client_version: Option<Version>,
    pub strategy: Strategy,
    /// Topic -> partition count (partitions `0..count`), from the leader's metadata.
    pub topics: BTreeMap<String, u32>,
    /// Member id -> subscribed topics, in the order the member sent them. Topics missing from
    /// `topics` are ignored, as every client does (the metadata does not know them yet).
    pub members: BTreeMap<String, Vec<String>>,
    /// Member id -> topic -> partitions it owned before this rebalance (sticky and
    /// cooperative-sticky only; absent members owned nothing). Entries of ids that are not in
    /// `members` are ignored: a member that left cannot report anything. The sticky algorithm
    /// is sensitive to the order a member lists its partitions in: topics are taken in name
    /// order (as the oracle lists them), partitions in the order given.
    pub previous: BTreeMap<String, BTreeMap<String, Vec<u32>>>,
    /// The generation every reporting member attaches to its previous ownership.
    pub generation: i32,
}

/// Member -> topic -> ascending partitions. Every member is present (possibly with no topics);
/// topics with no partitions for a member are omitted.
pub type Assignment = BTreeMap<String, BTreeMap<String, Vec<u32>>>;

/// Whether `client` at `version` (`None` = newest) has `strategy`.
pub fn supports(client: Client, version: Option<Version>, strategy: Strategy) -> bool {
    match (client, strategy) {
        (Client::Java | Client::Librdkafka, _) => true,
        (Client::Sarama, Strategy::Range | Strategy::RoundRobin) => true,
        (Client::Sarama, Strategy::Sticky) => at_least(version, SARAMA_STICKY_SINCE),
        (Client::Sarama, Strategy::CooperativeSticky) => {
            at_least(version, SARAMA_COOPERATIVE_SINCE)
        }
        (Client::KafkaGo, Strategy::Range | Strategy::RoundRobin) => true,
        (Client::KafkaGo, Strategy::Sticky | Strategy::CooperativeSticky) => false,
    }
}

/// Whether `version` (`None` = newest) is `since` or later.
fn at_least(version: Option<Version>, since: Version) -> bool {
    match version {
        None => true,
        Some(v) => v >= since,
    }
}

/// Computes the assignment the group leader of `input.client` would hand out.
///
/// Errors only for a strategy the client (at that version) does not have, e.g. sticky for
/// sarama before 1.24.0 or anything sticky for kafka-go.
pub fn assign(input: &AssignInput) -> Result<Assignment, String> {
    let version = input.client_version;
    if !supports(input.client, version, input.strategy) {
        let at = version.map(|v| format!(" {v}")).unwrap_or_default();
        return Err(format!(
            "client {}{at} has no {} assignor",
            input.client.name(),
            input.strategy.name()
        ));
    }
    let group = Group::new(input);
    let newer = |since: Version| at_least(version, since);
    let raw = match (input.client, input.strategy) {
        (Client::KafkaGo, Strategy::Range) => kafka_go::range(&group),
        (Client::KafkaGo, Strategy::RoundRobin) => kafka_go::roundrobin(&group),
        (Client::Sarama, Strategy::Range) if !newer(SARAMA_JAVA_RANGE_SINCE) => {
            sarama_legacy::range(&group)
        }
        (Client::Sarama, Strategy::RoundRobin) if !newer(SARAMA_GLOBAL_ROUNDROBIN_SINCE) => {
            sarama_legacy::roundrobin(&group)
        }
        (Client::Sarama, Strategy::RoundRobin) => {
            roundrobin::assign(&group, roundrobin::Order::SaramaString)
        }
        (_, Strategy::Range) => range::assign(&group),
        (_, Strategy::RoundRobin) => roundrobin::assign(&group, roundrobin::Order::Java),
        (_, Strategy::Sticky) => sticky::assign(&group, &same_generation(input)),
        (_, Strategy::CooperativeSticky) => cooperative::assign(&group, &same_generation(input)),
    };
    let assignment = group.normalise(raw);
    group.check(&assignment, input.strategy);
    Ok(assignment)
}

/// Like [`assign`] for sticky / cooperative-sticky, with a generation per member (members that
/// missed a rebalance report an older one; on conflicting ownership the newer generation
/// wins and the older owner becomes the partition's "previous" owner). Members absent from
/// `generations` report `input.generation`.
pub fn assign_with_generations(
    input: &AssignInput,
    generations: &BTreeMap<String, i32>,
) -> Result<Assignment, String> {
    match input.strategy {
        Strategy::Sticky | Strategy::CooperativeSticky => {}
        _ => return assign(input),
    }
    if !supports(input.client, input.client_version, input.strategy) {
        return assign(input);
    }
    let group = Group::new(input);
    let mut gens = same_generation(input);
    for (member, generation) in generations {
        if let Some(slot) = gens.get_mut(member) {
            *slot = *generation;
        }
    }
    let raw = match input.strategy {
        Strategy::Sticky => sticky::assign(&group, &gens),
        _ => cooperative::assign(&group, &gens),
    };
    let assignment = group.normalise(raw);
    group.check(&assignment, input.strategy);
    Ok(assignment)
}

fn same_generation(input: &AssignInput) -> BTreeMap<String, i32> {
    let members = input.members.keys();
    members.map(|m| (m.clone(), input.generation)).collect()
}

/// The validated view of an [`AssignInput`] every algorithm starts from.
pub struct Group<'a> {
    /// Members sorted by id, each with its subscribed topics that exist, deduplicated, in the
    /// order the member sent them.
    pub members: Vec<(&'a str, Vec<&'a str>)>,
    /// Subscriptions as sent, duplicates and unknown topics included (sarama before 1.35
    /// lists a member once per occurrence).
    pub raw_members: &'a BTreeMap<String, Vec<String>>,
    pub topics: &'a BTreeMap<String, u32>,
    /// Previous ownership of current members only.
    pub previous: BTreeMap<&'a str, &'a BTreeMap<String, Vec<u32>>>,
}

impl<'a> Group<'a> {
    fn new(input: &'a AssignInput) -> Group<'a> {
        let members = input
            .members
            .iter()
            .map(|(id, subscription)| {
                let mut seen = BTreeSet::new();
                let topics = subscription
                    .iter()
                    .map(String::as_str)
                    .filter(|t| input.topics.contains_key(*t) && seen.insert(*t))
                    .collect();
                (id.as_str(), topics)
            })
            .collect();
        let previous = input
            .previous
            .iter()
            .filter(|(id, _)| input.members.contains_key(*id))
            .map(|(id, owned)| (id.as_str(), owned))
            .collect();
        Group {
            members,
            raw_members: &input.members,
            topics: &input.topics,
            previous,
        }
    }

    /// Topic -> subscribed member ids in lexicographic order, for topics that exist.
    pub fn members_by_topic(&self) -> BTreeMap<&'a str, Vec<&'a str>> {
        let mut by_topic: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (member, topics) in &self.members {
            for topic in topics {
                by_topic.entry(topic).or_default().push(member);
            }
        }
        by_topic
    }

    pub fn partition_count(&self, topic: &str) -> u32 {
        self.topics.get(topic).copied().unwrap_or(0)
    }

    fn subscribes(&self, member: &str, topic: &str) -> bool {
        let found = self.members.binary_search_by(|(id, _)| (*id).cmp(member));
        found.is_ok_and(|i| self.members[i].1.contains(&topic))
    }

    /// Sorts partition lists, drops empty topics and adds members that got nothing.
    fn normalise(&self, raw: Assignment) -> Assignment {
        let mut out: Assignment = self
            .members
            .iter()
            .map(|(id, _)| (id.to_string(), BTreeMap::new()))
            .collect();
        for (member, topics) in raw {
            let slot = out.get_mut(&member);
            let slot =
                slot.unwrap_or_else(|| panic!("assignor gave partitions to non-member {member}"));
            for (topic, mut partitions) in topics {
                if partitions.is_empty() {
                    continue;
                }
                partitions.sort_unstable();
                slot.entry(topic).or_default().extend(partitions);
            }
        }
        for topics in out.values_mut() {
            for partitions in topics.values_mut() {
                partitions.sort_unstable();
            }
        }
        out
    }

    /// Asserts what every assignor guarantees: a partition goes to at most one member, only to a
    /// member subscribed to its topic, and only if it exists. All but cooperative-sticky (which
    /// withholds moving partitions for a round) assign every subscribed partition.
    fn check(&self, assignment: &Assignment, strategy: Strategy) {
        let mut owner: BTreeMap<(&str, u32), &str> = BTreeMap::new();
        for (member, topics) in assignment {
            for (topic, partitions) in topics {
                assert!(
                    self.subscribes(member, topic),
                    "assignor: member {member} got topic {topic} it does not subscribe to"
                );
                for &p in partitions {
                    assert!(
                        p < self.partition_count(topic),
                        "assignor: {topic}-{p} does not exist"
                    );
                    let before = owner.insert((topic.as_str(), p), member.as_str());
                    assert!(
                        before.is_none(),
                        "assignor: {topic}-{p} assigned to {member} and {before:?}"
                    );
                }
            }
        }
        if strategy == Strategy::CooperativeSticky {
            return;
        }
        for (topic, members) in self.members_by_topic() {
            assert!(!members.is_empty());
            for p in 0..self.partition_count(topic) {
                assert!(
                    owner.contains_key(&(topic, p)),
                    "assignor: {topic}-{p} left unassigned"
                );
            }
        }
    }
}

/// Adds `partition` of `topic` to `member` in a raw assignment.
pub(crate) fn add(out: &mut Assignment, member: &str, topic: &str, partition: u32) {
    let topics = out.entry(member.to_string()).or_default();
    topics.entry(topic.to_string()).or_default().push(partition);
}

#[cfg(test)]
mod tests {
    use super::{supports, Client, Strategy, Version};

    #[test]
    fn versions_parse_and_order_numerically() {
        assert_eq!(Version::parse("1.43.3"), Some(Version(1, 43, 3)));
        assert_eq!(Version::parse("1.22"), Some(Version(1, 22, 0)));
        assert_eq!(Version::parse("v0.4.50"), Some(Version(0, 4, 50)));
        for bad in ["", "1..2", "1.2.3.4", "one", "1.x"] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
        assert!(Version(1, 9, 0) < Version(1, 10, 0));
        assert!(Version(1, 34, 1) > Version(1, 34, 0));
    }

    #[test]
    fn support_follows_client_versions() {
        let sarama = |v| Some(Version(1, v, 0));
        assert!(!supports(Client::Sarama, sarama(23), Strategy::Sticky));
        assert!(supports(Client::Sarama, sarama(24), Strategy::Sticky));
        assert!(!supports(
            Client::Sarama,
            sarama(43),
            Strategy::CooperativeSticky
        ));
        assert!(supports(Client::Sarama, None, Strategy::CooperativeSticky));
        assert!(!supports(Client::KafkaGo, None, Strategy::Sticky));
        assert!(supports(Client::KafkaGo, None, Strategy::RoundRobin));
        assert!(supports(
            Client::Librdkafka,
            None,
            Strategy::CooperativeSticky
        ));
    }

    #[test]
    fn names_round_trip() {
        for client in [
            Client::Java,
            Client::Sarama,
            Client::KafkaGo,
            Client::Librdkafka,
        ] {
            assert_eq!(Client::from_name(client.name()), Some(client));
        }
        for strategy in [
            Strategy::Range,
            Strategy::RoundRobin,
            Strategy::Sticky,
            Strategy::CooperativeSticky,
        ] {
            assert_eq!(Strategy::from_name(strategy.name()), Some(strategy));
        }
        assert_eq!(Client::from_name("Java"), None);
    }
}
