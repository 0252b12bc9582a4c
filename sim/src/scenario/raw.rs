//! The scenario file exactly as written: serde structs that mirror DESIGN §5 key by key, with
//! `deny_unknown_fields` so a misspelt key is an error, and [`Spanned`] wherever a later
//! semantic check must point at the line. Values whose type is a choice (a duration string,
//! "max" or a number) stay [`toml::Value`] here; `validate` gives them meaning.

use kafsim_engine::config::ConfigValue;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use toml::Spanned;

pub type S<T> = Spanned<T>;

/// `groups = [["broker:0"], ["broker:1", "broker:2"]]` of a partition.
pub type RawGroups = S<Vec<S<Vec<S<String>>>>>;

/// The keys of [`RawScenario`], for the hint when one is written below a table header.
pub const TOP_LEVEL_KEYS: [&str; 7] = [
    "name",
    "description",
    "duration",
    "drain",
    "seeds",
    "warmup",
    "hardware",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: S<String>,
    pub description: Option<S<String>>,
    pub duration: Option<S<toml::Value>>,
    pub drain: Option<S<toml::Value>>,
    pub seeds: Option<S<i64>>,
    pub warmup: Option<S<toml::Value>>,
    pub hardware: Option<S<String>>,
    pub cluster: RawCluster,
    #[serde(default)]
    pub topics: Vec<RawTopic>,
    #[serde(default)]
    pub producers: Vec<RawProducer>,
    #[serde(default)]
    pub consumer_groups: Vec<RawGroup>,
    #[serde(default)]
    pub consumers: Vec<RawConsumer>,
    #[serde(default)]
    pub faults: RawFaults,
    #[serde(default)]
    pub expect: RawExpect,
    #[serde(default)]
    pub bench: RawBench,
}

/// `[bench]`: phases of a benchmark workload (see `bench.rs`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawBench {
    pub backlog: Option<S<toml::Value>>,
    pub producers_after_backlog: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub brokers: S<i64>,
    /// The Kafka release whose broker rules apply ("3.7"); the newest modelled by default.
    pub version: Option<S<String>>,
    #[serde(default)]
    pub config: RawConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopic {
    pub name: S<String>,
    pub partitions: Option<S<i64>>,
    pub replication_factor: Option<S<i64>>,
    #[serde(default)]
    pub config: RawConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProducer {
    pub count: Option<S<i64>>,
    pub client: Option<S<String>>,
    pub client_version: Option<S<String>>,
    pub topic: S<String>,
    pub rate: S<toml::Value>,
    pub keys: Option<S<i64>>,
    pub message_size: Option<S<i64>>,
    pub message_profile: Option<S<toml::Value>>,
    #[serde(default)]
    pub config: RawConfig,
    /// `[producers.transactions]` (needs `transactional.id` in the config).
    pub transactions: Option<S<RawTransactions>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransactions {
    pub records: Option<S<toml::Value>>,
    pub abort: Option<S<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub group: S<String>,
    pub members: Option<S<i64>>,
    pub client: Option<S<String>>,
    pub client_version: Option<S<String>>,
    pub topics: S<Vec<S<String>>>,
    #[serde(default)]
    pub config: RawConfig,
    #[serde(default)]
    pub handler: RawHandler,
}

/// `[[consumers]]`: a standalone partition consumer (DESIGN §8).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsumer {
    pub client: Option<S<String>>,
    pub topic: S<String>,
    pub partitions: Option<S<Vec<S<i64>>>>,
    pub start: Option<S<String>>,
    #[serde(default)]
    pub config: RawConfig,
    #[serde(default)]
    pub handler: RawHandler,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHandler {
    pub process_time: Option<S<toml::Value>>,
    pub mark: Option<S<String>>,
    pub commit: Option<S<String>>,
    pub workers: Option<S<i64>>,
    pub routing: Option<S<String>>,
    pub sink: Option<S<String>>,
    pub batch: Option<S<i64>>,
    pub batch_timeout: Option<S<toml::Value>>,
    pub failure_rate: Option<S<toml::Value>>,
    pub on_failure: Option<S<String>>,
    pub dlq_topic: Option<S<String>>,
    pub database_latency: Option<S<toml::Value>>,
    pub poison_rate: Option<S<toml::Value>>,
    pub max_attempts: Option<S<toml::Value>>,
    /// Consume-transform-produce: the topic each processed record's output goes to.
    pub produce_to: Option<S<String>>,
    /// With `commit = "transaction"`: the group argument of `sendOffsetsToTransaction`.
    pub send_offsets: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFaults {
    pub random: Option<S<bool>>,
    pub kinds: Option<S<Vec<S<String>>>>,
    pub mean_interval: Option<S<toml::Value>>,
    pub undo_after: Option<S<toml::Value>>,
    #[serde(default)]
    pub schedule: Vec<RawScheduled>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScheduled {
    pub at: S<toml::Value>,
    pub action: S<String>,
    pub target: Option<S<String>>,
    pub duration: Option<S<toml::Value>>,
    pub latency: Option<S<toml::Value>>,
    pub factor: Option<S<toml::Value>>,
    pub groups: Option<RawGroups>,
    pub one_way: Option<S<bool>>,
    pub tear: Option<S<bool>>,
    /// `add-partitions`: the topic and how many partitions to add.
    pub topic: Option<S<String>>,
    pub count: Option<S<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    #[serde(default)]
    pub violations: Vec<S<String>>,
    #[serde(default)]
    pub allow: Vec<S<String>>,
    pub catch_up_within: Option<S<toml::Value>>,
}

/// A `[x.config]` table: Kafka property names to values, kept in file order (the toml crate
/// hands table entries over in document order) so that later errors come out in reading order.
#[derive(Default)]
pub struct RawConfig(pub Vec<(S<String>, PropertyValue)>);

impl<'de> Deserialize<'de> for RawConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawConfig, D::Error> {
        deserializer.deserialize_map(ConfigVisitor)
    }
}

struct ConfigVisitor;

impl<'de> Visitor<'de> for ConfigVisitor {
    type Value = RawConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of Kafka properties")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawConfig, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(RawConfig(entries))
    }
}

/// A property value: a TOML boolean, integer, float or string. Anything else (an array, a
/// table made by an unquoted dotted name such as `linger.ms = 5`, a date) is an error here, at
/// the value's position.
pub struct PropertyValue(pub ConfigValue);

/// The message of a non-scalar property value; `locate` adds the hint for it.
pub const PROPERTY_VALUE_EXPECTED: &str = "a property value must be a string, number or boolean";

impl<'de> Deserialize<'de> for PropertyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PropertyValue, D::Error> {
        deserializer.deserialize_any(PropertyVisitor)
    }
}

struct PropertyVisitor;

impl<'de> Visitor<'de> for PropertyVisitor {
    type Value = PropertyValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<PropertyValue, E> {
        Ok(PropertyValue(ConfigValue::Bool(v)))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PropertyValue, E> {
        Ok(PropertyValue(ConfigValue::Int(v)))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PropertyValue, E> {
        i64::try_from(v)
            .map(|v| PropertyValue(ConfigValue::Int(v)))
            .map_err(|_| E::custom(format!("{v} is too large")))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<PropertyValue, E> {
        Ok(PropertyValue(ConfigValue::Float(v)))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PropertyValue, E> {
        Ok(PropertyValue(ConfigValue::Str(v.to_string())))
    }

    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<PropertyValue, A::Error> {
        Err(serde::de::Error::custom(PROPERTY_VALUE_EXPECTED))
    }
}
