//! From the raw file to a [`Scenario`]: gives values their meaning (durations, rates, client
//! names, violation kinds) and rejects impossible combinations (replication factor above the
//! broker count, a producer naming a missing topic, a kind both expected and allowed, ...),
//! each at the line of the offending key. Fault schedules are checked in `faults`, the
//! application model in `handler`.
//!
//! Consumer groups, the longest part, are checked in [`groups`].

mod groups;

use super::duration::{parse_duration, DURATION_HINT};
use super::error::{unknown_hint, Locator, ScenarioError};
use super::raw::{
    PropertyValue, RawCluster, RawConfig, RawExpect, RawProducer, RawScenario, RawTopic, S,
};
use super::standalone;
use super::{
    bench, faults, locate, ClientKind, ClusterSpec, Drain, Expect, MessageProfile, ProducerSpec,
    Property, Rate, Scenario, TopicSpec, HARDWARE_PROFILES,
};
use crate::violation::ViolationKind;
use kafsim_engine::broker::version::KafkaVersion;
use kafsim_engine::producer::workload::TxnWorkload;
use std::time::Duration;

pub type R<T> = Result<T, ScenarioError>;

/// Upper bounds that keep a typo from asking for a run no machine can hold.
pub const MAX_BROKERS: i64 = 64;
pub const MAX_PARTITIONS: i64 = 10_000;
pub const MAX_CLIENTS: i64 = 1_000;
pub const MAX_SEEDS: i64 = 1_000_000_000;
pub const MAX_KEYS: i64 = 100_000_000;
pub const MAX_MESSAGE_BYTES: i64 = 64 << 20;
/// Most records one transaction may hold (`[producers.transactions] records`).
pub const MAX_TXN_RECORDS: i64 = 100_000;
pub const MAX_RATE: f64 = 100_000_000.0;

pub fn parse(file: &str, text: &str) -> R<Scenario> {
    let check = Check {
        loc: Locator { file, text },
    };
    // Syntax first, so a garbage line is not blamed on the key above it.
    if let Err(e) = text.parse::<toml::Table>() {
        return Err(locate::from_toml(check.loc, &e, true));
    }
    let raw: RawScenario =
        toml::from_str(text).map_err(|e| locate::from_toml(check.loc, &e, false))?;
    check.scenario(raw)
}

/// Error construction and value checks shared by every section.
#[derive(Clone, Copy)]
pub struct Check<'a> {
    pub loc: Locator<'a>,
}

impl Check<'_> {
    pub fn err<T>(&self, value: &S<T>, key: &str, message: impl Into<String>) -> ScenarioError {
        self.loc.error(value.span(), key, message)
    }

    pub fn err_hint<T>(
        &self,
        value: &S<T>,
        key: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ScenarioError {
        self.err(value, key, message).with_hint(hint)
    }

    /// An integer within `min..=max`.
    pub fn count(&self, value: &S<i64>, key: &str, min: i64, max: i64) -> R<u32> {
        let v = *value.get_ref();
        if v < min {
            return Err(self.err(value, key, format!("must be at least {min}, got {v}")));
        }
        if v > max {
            return Err(self.err(value, key, format!("must be at most {max}, got {v}")));
        }
        Ok(u32::try_from(v).expect("bounds checked above fit in u32"))
    }

    pub fn count_or(
        &self,
        value: &Option<S<i64>>,
        key: &str,
        min: i64,
        max: i64,
        default: u32,
    ) -> R<u32> {
        value
            .as_ref()
            .map_or(Ok(default), |v| self.count(v, key, min, max))
    }

    /// A duration string; an integer gets a hint to add the unit.
    pub fn duration(&self, value: &S<toml::Value>, key: &str) -> R<Duration> {
        match value.get_ref() {
            toml::Value::String(s) => parse_duration(s)
                .map_err(|message| self.err_hint(value, key, message, DURATION_HINT)),
            toml::Value::Integer(n) => Err(self.err_hint(
                value,
                key,
                format!("a duration needs a unit, got the bare number {n}"),
                format!("write \"{n}ms\" or \"{n}s\" (a string with a unit)"),
            )),
            other => Err(self.err_hint(
                value,
                key,
                format!("expected a duration string, found {}", other.type_str()),
                DURATION_HINT,
            )),
        }
    }

    pub fn duration_or(
        &self,
        value: &Option<S<toml::Value>>,
        key: &str,
        default: Duration,
    ) -> R<Duration> {
        value
            .as_ref()
            .map_or(Ok(default), |v| self.duration(v, key))
    }

    /// An integer or float.
    pub fn number(&self, value: &S<toml::Value>, key: &str) -> R<f64> {
        match value.get_ref() {
            toml::Value::Integer(n) => Ok(*n as f64),
            toml::Value::Float(x) if x.is_finite() => Ok(*x),
            other => Err(self.err(
                value,
                key,
                format!("expected a number, found {}", describe(other)),
            )),
        }
    }

    /// One of the names of `table`; a typo gets the closest name as a hint.
    pub fn choice<T: Copy>(&self, value: &S<String>, key: &str, table: &[(&str, T)]) -> R<T> {
        let text = value.get_ref().as_str();
        if let Some((_, v)) = table.iter().find(|(name, _)| *name == text) {
            return Ok(*v);
        }
        let names: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
        Err(self.err_hint(
            value,
            key,
            format!("unknown value \"{text}\""),
            unknown_hint(text, &names),
        ))
    }

    pub fn client(&self, value: &Option<S<String>>, key: &str) -> R<ClientKind> {
        let table: Vec<(&str, ClientKind)> =
            ClientKind::ALL.iter().map(|c| (c.name(), *c)).collect();
        value
            .as_ref()
            .map_or(Ok(ClientKind::Java), |v| self.choice(v, key, &table))
    }

    pub fn non_empty(&self, value: &S<String>, key: &str) -> R<String> {
        if value.get_ref().trim().is_empty() {
            return Err(self.err(value, key, "must not be empty"));
        }
        Ok(value.get_ref().clone())
    }

    fn version(&self, value: &Option<S<String>>, key: &str) -> R<Option<String>> {
        value.as_ref().map(|v| self.non_empty(v, key)).transpose()
    }

    /// Kafka properties in file order.
    pub fn properties(&self, raw: &RawConfig) -> Vec<Property> {
        raw.0.iter().map(|(k, v)| self.property(k, v)).collect()
    }

    fn property(&self, key: &S<String>, value: &PropertyValue) -> Property {
        let (line, column) = super::error::line_column(self.loc.text, key.span().start);
        Property {
            key: key.get_ref().clone(),
            value: value.0.clone(),
            line,
            column,
        }
    }
}

/// "string \"x\"", "array", ... for messages.
pub fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("string \"{s}\""),
        toml::Value::Integer(i) => format!("integer {i}"),
        toml::Value::Float(x) => format!("float {x}"),
        toml::Value::Boolean(b) => format!("boolean {b}"),
        other => other.type_str().to_string(),
    }
}

impl Check<'_> {
    fn scenario(&self, raw: RawScenario) -> R<Scenario> {
        let name = self.non_empty(&raw.name, "name")?;
        let description = raw
            .description
            .as_ref()
            .map(|d| d.get_ref().trim().to_string())
            .unwrap_or_default();
        let duration = self.duration_or(&raw.duration, "duration", Duration::from_secs(60))?;
        if duration.is_zero() {
            let d = raw.duration.as_ref().expect("zero only when written");
            return Err(self.err(d, "duration", "the safety phase must be longer than 0s"));
        }
        let drain = self.drain(&raw.drain)?;
        let seeds = u64::from(self.count_or(&raw.seeds, "seeds", 1, MAX_SEEDS, 100)?);
        let warmup = self.warmup(&raw, duration)?;
        let hardware = self.hardware(&raw.hardware)?;
        let cluster = self.cluster(&raw.cluster)?;
        let topics = self.topics(&raw.topics, cluster.brokers)?;
        let producers = self.producers(&raw.producers, &topics)?;
        let mut consumer_groups = self.groups(&raw.consumer_groups, &topics)?;
        let consumers = standalone::consumers(self, &raw.consumers, &topics, &consumer_groups)?;
        consumer_groups.extend(consumers);
        let expect = self.expect(&raw.expect)?;
        let mut scenario = Scenario {
            file: self.loc.file.to_string(),
            name,
            description,
            duration,
            drain,
            seeds,
            warmup,
            hardware,
            cluster,
            topics,
            producers,
            consumer_groups,
            faults: Default::default(),
            expect,
            bench: Default::default(),
        };
        scenario.faults = faults::faults(self, &raw.faults, &scenario)?;
        scenario.bench = bench::bench(self, &raw.bench, &scenario)?;
        Ok(scenario)
    }

    /// `drain`: "auto" (also the default) or a duration that bounds the drain.
    fn drain(&self, value: &Option<S<toml::Value>>) -> R<Drain> {
        let Some(value) = value else {
            return Ok(Drain::Auto);
        };
        if let toml::Value::String(s) = value.get_ref() {
            if s.trim() == "auto" {
                return Ok(Drain::Auto);
            }
        }
        let hint = "write \"auto\" (run until everyone has caught up) or a bound such as \"20s\"";
        let bound = self
            .duration(value, "drain")
            .map_err(|e| e.with_hint(hint))?;
        if bound.is_zero() {
            return Err(self.err_hint(
                value,
                "drain",
                "a drain bound must be longer than 0s",
                hint,
            ));
        }
        Ok(Drain::Bound(bound))
    }

    fn warmup(&self, raw: &RawScenario, duration: Duration) -> R<Option<Duration>> {
        let Some(value) = &raw.warmup else {
            return Ok(None);
        };
        let warmup = self.duration(value, "warmup")?;
        if warmup >= duration {
            return Err(self.err(value, "warmup", "must be shorter than `duration`"));
        }
        Ok(Some(warmup))
    }

    fn hardware(&self, value: &Option<S<String>>) -> R<Option<String>> {
        let Some(value) = value else { return Ok(None) };
        let table: Vec<(&str, &str)> = HARDWARE_PROFILES.iter().map(|p| (*p, *p)).collect();
        Ok(Some(self.choice(value, "hardware", &table)?.to_string()))
    }

    fn cluster(&self, raw: &RawCluster) -> R<ClusterSpec> {
        let brokers = self.count(&raw.brokers, "cluster.brokers", 1, MAX_BROKERS)?;
        let version = self.kafka_version(&raw.version)?;
        let config = self.properties(&raw.config);
        Ok(ClusterSpec {
            brokers,
            version,
            config,
        })
    }

    /// `[cluster] version`: one of the modelled Kafka releases (a patch level is accepted).
    fn kafka_version(&self, value: &Option<S<String>>) -> R<KafkaVersion> {
        let Some(value) = value else {
            return Ok(KafkaVersion::NEWEST);
        };
        KafkaVersion::parse(value.get_ref()).ok_or_else(|| {
            self.err_hint(
                value,
                "cluster.version",
                format!("Kafka version \"{}\" is not modelled", value.get_ref()),
                format!(
                    "use one of {} (the newest, {}, is the default)",
                    KafkaVersion::names().join(", "),
                    KafkaVersion::NEWEST
                ),
            )
        })
    }

    fn topics(&self, raw: &[RawTopic], brokers: u32) -> R<Vec<TopicSpec>> {
        let mut topics: Vec<TopicSpec> = Vec::new();
        for (i, t) in raw.iter().enumerate() {
            let at = format!("topics[{i}]");
            let name = self.topic_name(&t.name, &format!("{at}.name"))?;
            if topics.iter().any(|other| other.name == name) {
                return Err(self.err(
                    &t.name,
                    &format!("{at}.name"),
                    format!("topic \"{name}\" is declared twice"),
                ));
            }
            let partitions = self.count_or(
                &t.partitions,
                &format!("{at}.partitions"),
                1,
                MAX_PARTITIONS,
                1,
            )?;
            let replication_factor = self.replication_factor(t, &at, brokers)?;
            let config = self.properties(&t.config);
            topics.push(TopicSpec {
                name,
                partitions,
                replication_factor,
                config,
            });
        }
        Ok(topics)
    }

    /// Kafka's legal topic names ([a-zA-Z0-9._-], at most 249), and not an internal topic.
    fn topic_name(&self, value: &S<String>, key: &str) -> R<String> {
        let name = self.non_empty(value, key)?;
        let legal = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !legal || name.len() > 249 || name == "." || name == ".." {
            return Err(self.err_hint(
                value,
                key,
                format!("\"{name}\" is not a legal topic name"),
                "use at most 249 of a-z A-Z 0-9 . _ -",
            ));
        }
        if name.starts_with("__") {
            return Err(self.err_hint(
                value,
                key,
                format!("\"{name}\" is reserved for internal topics"),
                "names starting with \"__\" belong to Kafka",
            ));
        }
        Ok(name)
    }

    fn replication_factor(&self, t: &RawTopic, at: &str, brokers: u32) -> R<u32> {
        let key = format!("{at}.replication_factor");
        let Some(value) = &t.replication_factor else {
            return Ok(1);
        };
        let rf = self.count(value, &key, 1, MAX_BROKERS)?;
        if rf > brokers {
            return Err(self.err_hint(
                value,
                &key,
                format!(
                    "replication factor {rf} is larger than the {brokers} broker(s) of the cluster"
                ),
                format!("use at most {brokers}, or raise cluster.brokers"),
            ));
        }
        Ok(rf)
    }

    fn producers(&self, raw: &[RawProducer], topics: &[TopicSpec]) -> R<Vec<ProducerSpec>> {
        let mut out = Vec::new();
        let mut total = 0;
        for (i, p) in raw.iter().enumerate() {
            let at = format!("producers[{i}]");
            let count = self.count_or(&p.count, &format!("{at}.count"), 1, MAX_CLIENTS, 1)?;
            total += i64::from(count);
            if total > MAX_CLIENTS {
                let key = format!("{at}.count");
                let message = format!("more than {MAX_CLIENTS} producers in all");
                return Err(p.count.as_ref().map_or_else(
                    || self.err(&p.topic, &key, &message),
                    |c| self.err(c, &key, &message),
                ));
            }
            out.push(ProducerSpec {
                count,
                client: self.client(&p.client, &format!("{at}.client"))?,
                client_version: self.version(&p.client_version, &format!("{at}.client_version"))?,
                topic: self.existing_topic(&p.topic, &format!("{at}.topic"), topics)?,
                rate: self.rate(&p.rate, &format!("{at}.rate"))?,
                keys: self.count_or(&p.keys, &format!("{at}.keys"), 0, MAX_KEYS, 0)?,
                message_size: self.count_or(
                    &p.message_size,
                    &format!("{at}.message_size"),
                    1,
                    MAX_MESSAGE_BYTES,
                    100,
                )?,
                message_profile: self
                    .message_profile(&p.message_profile, &format!("{at}.message_profile"))?,
                config: self.properties(&p.config),
                transactions: self.transactions(p, &at)?,
            });
        }
        Ok(out)
    }

    /// `[producers.transactions]`: `records` per transaction (default 10) and the fraction
    /// `abort` the application aborts (default 0). The table needs `transactional.id`.
    fn transactions(&self, p: &RawProducer, at: &str) -> R<Option<TxnWorkload>> {
        let transactional = p.config.0.iter().any(|(k, _)| {
            // sarama users may write their own field name (alias.rs).
            matches!(
                k.get_ref().as_str(),
                "transactional.id" | "Producer.Transaction.ID"
            )
        });
        let Some(table) = &p.transactions else {
            return Ok(transactional.then(TxnWorkload::default));
        };
        let key = format!("{at}.transactions");
        if !transactional {
            return Err(self.err_hint(
                table,
                &key,
                "transactions are run by a transactional producer, and this one has no \
                 transactional.id",
                "set \"transactional.id\" = \"my-app\" in [producers.config] (instance N \
                 uses my-app-N)",
            ));
        }
        let raw = table.get_ref();
        let defaults = TxnWorkload::default();
        let records = match &raw.records {
            None => defaults.records,
            Some(v) => self.txn_records(v, &format!("{key}.records"))?,
        };
        let abort = match &raw.abort {
            None => defaults.abort,
            Some(v) => {
                let k = format!("{key}.abort");
                let fraction = self.number(v, &k)?;
                if !(0.0..=1.0).contains(&fraction) {
                    return Err(self.err_hint(
                        v,
                        &k,
                        format!("must be from 0.0 to 1.0, got {fraction}"),
                        "the fraction of transactions the application aborts",
                    ));
                }
                fraction
            }
        };
        Ok(Some(TxnWorkload { records, abort }))
    }

    /// `[producers.transactions] records`: an integer 1..=[`MAX_TXN_RECORDS`], or
    /// `"unlimited"` (None: the application never ends its transaction).
    fn txn_records(&self, v: &S<toml::Value>, key: &str) -> R<Option<u32>> {
        let hint = format!(
            "an integer from 1 to {MAX_TXN_RECORDS}, or \"unlimited\" (the application never \
             commits or aborts: only transaction.timeout.ms ends its transaction)"
        );
        match v.get_ref() {
            toml::Value::String(s) if s == "unlimited" => Ok(None),
            toml::Value::Integer(n) if (1..=MAX_TXN_RECORDS).contains(n) => Ok(Some(*n as u32)),
            toml::Value::Integer(n) => Err(self.err_hint(
                v,
                key,
                format!("must be from 1 to {MAX_TXN_RECORDS}, got {n}"),
                hint,
            )),
            other => Err(self.err_hint(
                v,
                key,
                format!("expected an integer or \"unlimited\", found {other}"),
                hint,
            )),
        }
    }

    /// The name of a declared topic.
    pub fn existing_topic(&self, value: &S<String>, key: &str, topics: &[TopicSpec]) -> R<String> {
        let name = value.get_ref();
        if topics.iter().any(|t| &t.name == name) {
            return Ok(name.clone());
        }
        let known: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        let hint = if known.is_empty() {
            "declare it in a [[topics]] table".to_string()
        } else {
            unknown_hint(name, &known)
        };
        Err(self.err_hint(value, key, format!("no topic \"{name}\" is declared"), hint))
    }

    /// `message_profile`: `"random"`, `"json-logs"` or a compressed fraction in (0, 1].
    fn message_profile(&self, value: &Option<S<toml::Value>>, key: &str) -> R<MessageProfile> {
        let Some(value) = value else {
            return Ok(MessageProfile::Random);
        };
        let hint = "\"random\" (incompressible), \"json-logs\", or the compressed size as a \
                    fraction of the original, e.g. 0.4";
        match value.get_ref() {
            toml::Value::String(s) if s == "random" => Ok(MessageProfile::Random),
            toml::Value::String(s) if s == "json-logs" => Ok(MessageProfile::JsonLogs),
            toml::Value::String(s) => {
                Err(self.err_hint(value, key, format!("unknown message profile \"{s}\""), hint))
            }
            _ => {
                let ratio = self.number(value, key)?;
                if !(ratio > 0.0 && ratio <= 1.0) {
                    return Err(self.err_hint(
                        value,
                        key,
                        format!("a compression ratio must be above 0 and at most 1, got {ratio}"),
                        hint,
                    ));
                }
                Ok(MessageProfile::Ratio(ratio))
            }
        }
    }

    fn rate(&self, value: &S<toml::Value>, key: &str) -> R<Rate> {
        if let toml::Value::String(s) = value.get_ref() {
            if s == "max" {
                return Ok(Rate::Max);
            }
            return Err(self.err_hint(
                value,
                key,
                format!("unknown rate \"{s}\""),
                "records per second per producer as a number, or \"max\"",
            ));
        }
        let rate = self.number(value, key)?;
        if rate <= 0.0 || rate > MAX_RATE {
            return Err(self.err_hint(
                value,
                key,
                format!("rate must be above 0 and at most {MAX_RATE}, got {rate}"),
                "a producer that sends nothing is left out; \"max\" sends as fast as it can",
            ));
        }
        Ok(Rate::PerSecond(rate))
    }

    fn expect(&self, raw: &RawExpect) -> R<Expect> {
        let violations = self.kinds(&raw.violations, "expect.violations")?;
        let allow = self.kinds(&raw.allow, "expect.allow")?;
        for (i, kind) in allow.iter().enumerate() {
            if violations.contains(kind) {
                return Err(self.err_hint(&raw.allow[i], &format!("expect.allow[{i}]"), format!("\"{kind}\" is both expected and allowed"), "list a kind in `violations` (must be found) or in `allow` (not a failure), not both"));
            }
        }
        let catch_up_within = match &raw.catch_up_within {
            Some(v) => {
                let d = self.duration(v, "expect.catch_up_within")?;
                if d.is_zero() {
                    return Err(self.err(v, "expect.catch_up_within", "must be longer than 0s"));
                }
                Some(d)
            }
            None => None,
        };
        if let Some(i) = violations.iter().position(|k| *k == ViolationKind::Lag) {
            if catch_up_within.is_none() {
                return Err(self.err_hint(
                    &raw.violations[i],
                    &format!("expect.violations[{i}]"),
                    "\"lag\" can only be found against a capacity objective",
                    "add `catch_up_within = \"10s\"` to [expect]",
                ));
            }
        }
        Ok(Expect {
            violations,
            allow,
            catch_up_within,
        })
    }

    fn kinds(&self, raw: &[S<String>], key: &str) -> R<Vec<ViolationKind>> {
        let names: Vec<&str> = ViolationKind::ALL.iter().map(|k| k.as_str()).collect();
        let mut out: Vec<ViolationKind> = Vec::new();
        for (i, value) in raw.iter().enumerate() {
            let at = format!("{key}[{i}]");
            let Some(kind) = ViolationKind::parse(value.get_ref()) else {
                return Err(self.err_hint(
                    value,
                    &at,
                    format!("unknown violation kind \"{}\"", value.get_ref()),
                    unknown_hint(value.get_ref(), &names),
                ));
            };
            if out.contains(&kind) {
                return Err(self.err(value, &at, format!("\"{kind}\" is listed twice")));
            }
            out.push(kind);
        }
        Ok(out)
    }
}
