//! Fault kinds and fault targets as scenario files name them ("power-loss",
//! "leader:orders/0", "brokers:0,2", "consumer:billing/1"). Parsing is purely syntactic here;
//! `validate` checks the names and indices against the cluster, topics and clients declared.

use std::fmt;

/// A fault action of DESIGN §3 (also the names of random fault `kinds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Crash,
    Restart,
    PowerLoss,
    Pause,
    Resume,
    Partition,
    Heal,
    SlowLink,
    SlowDisk,
    ConsumerCrash,
    ConsumerSlowdown,
    ProducerCrash,
    /// One producer's host is cut off from every other node (its network fails, the
    /// cluster's does not).
    ProducerPartition,
    /// The operator adds partitions to a topic (`kafka-topics.sh --alter --partitions`).
    AddPartitions,
}

impl FaultKind {
    pub const ALL: [FaultKind; 14] = [
        FaultKind::Crash,
        FaultKind::Restart,
        FaultKind::PowerLoss,
        FaultKind::Pause,
        FaultKind::Resume,
        FaultKind::Partition,
        FaultKind::Heal,
        FaultKind::SlowLink,
        FaultKind::SlowDisk,
        FaultKind::ConsumerCrash,
        FaultKind::ConsumerSlowdown,
        FaultKind::ProducerCrash,
        FaultKind::ProducerPartition,
        FaultKind::AddPartitions,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Restart => "restart",
            FaultKind::PowerLoss => "power-loss",
            FaultKind::Pause => "pause",
            FaultKind::Resume => "resume",
            FaultKind::Partition => "partition",
            FaultKind::Heal => "heal",
            FaultKind::SlowLink => "slow-link",
            FaultKind::SlowDisk => "slow-disk",
            FaultKind::ConsumerCrash => "consumer-crash",
            FaultKind::ConsumerSlowdown => "consumer-slowdown",
            FaultKind::ProducerCrash => "producer-crash",
            FaultKind::ProducerPartition => "producer-partition",
            FaultKind::AddPartitions => "add-partitions",
        }
    }

    pub fn parse(text: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    pub fn names() -> Vec<&'static str> {
        FaultKind::ALL.iter().map(|k| k.as_str()).collect()
    }

    /// The kinds that undo another fault. They make no sense as random `kinds` (the random
    /// nemesis undoes its own faults) and take no `duration`.
    /// The operator's actions: scripted only, never drawn by the random nemesis (they are
    /// what the user does, not what fails), and never undone.
    pub fn is_operation(self) -> bool {
        self == FaultKind::AddPartitions
    }

    pub fn is_undo(self) -> bool {
        matches!(
            self,
            FaultKind::Restart | FaultKind::Resume | FaultKind::Heal
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The node or nodes a fault hits. Leader and follower targets are resolved when the fault
/// fires, from the cluster's metadata at that moment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// `broker:N`
    Broker(u32),
    /// `brokers:0,2`: several brokers at once (correlated power loss), ascending, no repeats.
    Brokers(Vec<u32>),
    /// `brokers:all`
    AllBrokers,
    /// `leader:T/P`: the current leader of the partition.
    Leader { topic: String, partition: u32 },
    /// `follower:T/P`: a current follower of the partition.
    Follower { topic: String, partition: u32 },
    /// `controller`: the active controller.
    Controller,
    /// `consumer:G/I`: member I (0-based) of consumer group G.
    Consumer { group: String, member: u32 },
    /// `producer:I`: the I-th producer (0-based) counting every `[[producers]]` entry's
    /// `count` in file order.
    Producer(u32),
    /// `database:GROUP`: the database node group GROUP's members share (its sink).
    Database { group: String },
}

/// The accepted forms, for hints.
pub const TARGET_FORMS: &str = "broker:N, brokers:all, brokers:0,2, leader:TOPIC/P, \
follower:TOPIC/P, controller, consumer:GROUP/I, producer:I, database:GROUP";

impl Target {
    /// Parses the syntax only; the error says what is wrong with `text`.
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        if text == "controller" {
            return Ok(Target::Controller);
        }
        let Some((prefix, rest)) = text.split_once(':') else {
            return Err(format!("\"{text}\" is not a target"));
        };
        match prefix {
            "broker" => Ok(Target::Broker(index(rest, "broker")?)),
            "brokers" => parse_brokers(rest),
            "leader" => {
                let (topic, partition) = topic_partition(rest)?;
                Ok(Target::Leader { topic, partition })
            }
            "follower" => {
                let (topic, partition) = topic_partition(rest)?;
                Ok(Target::Follower { topic, partition })
            }
            "consumer" => {
                let (group, member) = rest
                    .rsplit_once('/')
                    .ok_or_else(|| format!("\"{text}\" needs GROUP/MEMBER"))?;
                if group.is_empty() {
                    return Err(format!("\"{text}\" names no group"));
                }
                let member = index(member, "member")?;
                Ok(Target::Consumer {
                    group: group.to_string(),
                    member,
                })
            }
            "producer" => Ok(Target::Producer(index(rest, "producer")?)),
            "database" => {
                if rest.trim().is_empty() {
                    return Err(format!("\"{text}\" names no group"));
                }
                Ok(Target::Database {
                    group: rest.trim().to_string(),
                })
            }
            other => Err(format!("unknown target kind \"{other}\"")),
        }
    }

    /// Whether this target names brokers (or the controller) rather than clients.
    pub fn is_broker_side(&self) -> bool {
        matches!(
            self,
            Target::Broker(_)
                | Target::Brokers(_)
                | Target::AllBrokers
                | Target::Leader { .. }
                | Target::Follower { .. }
                | Target::Controller
        )
    }
}

fn index(text: &str, what: &str) -> Result<u32, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{what} index \"{text}\" is not a non-negative integer"))
}

fn parse_brokers(rest: &str) -> Result<Target, String> {
    if rest.trim() == "all" {
        return Ok(Target::AllBrokers);
    }
    let mut ids = rest
        .split(',')
        .map(|id| index(id, "broker"))
        .collect::<Result<Vec<u32>, String>>()?;
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("brokers:{rest} names a broker twice"));
    }
    Ok(Target::Brokers(ids))
}

fn topic_partition(rest: &str) -> Result<(String, u32), String> {
    let (topic, partition) = rest
        .rsplit_once('/')
        .ok_or_else(|| format!("\"{rest}\" needs TOPIC/PARTITION"))?;
    if topic.is_empty() {
        return Err(format!("\"{rest}\" names no topic"));
    }
    Ok((topic.to_string(), index(partition, "partition")?))
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Broker(n) => write!(f, "broker:{n}"),
            Target::Brokers(ids) => {
                let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
                write!(f, "brokers:{}", ids.join(","))
            }
            Target::AllBrokers => f.write_str("brokers:all"),
            Target::Leader { topic, partition } => write!(f, "leader:{topic}/{partition}"),
            Target::Follower { topic, partition } => write!(f, "follower:{topic}/{partition}"),
            Target::Controller => f.write_str("controller"),
            Target::Consumer { group, member } => write!(f, "consumer:{group}/{member}"),
            Target::Producer(i) => write!(f, "producer:{i}"),
            Target::Database { group } => write!(f, "database:{group}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_round_trips() {
        for text in [
            "broker:2",
            "brokers:all",
            "brokers:0,2",
            "leader:orders/0",
            "follower:orders/5",
            "controller",
            "consumer:billing/1",
            "producer:3",
            "database:billing",
        ] {
            let target = Target::parse(text).unwrap();
            assert_eq!(target.to_string(), text);
        }
        assert_eq!(
            Target::parse("brokers:2,0").unwrap(),
            Target::Brokers(vec![0, 2])
        );
    }

    #[test]
    fn malformed_targets_are_rejected() {
        for text in [
            "broker",
            "broker:x",
            "broker:-1",
            "brokers:1,1",
            "leader:orders",
            "leader:/0",
            "consumer:billing",
            "node:1",
            "producer:",
            "database:",
        ] {
            assert!(Target::parse(text).is_err(), "{text} should not parse");
        }
    }

    #[test]
    fn kinds_round_trip() {
        for kind in FaultKind::ALL {
            assert_eq!(FaultKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(FaultKind::parse("powerloss"), None);
    }
}
