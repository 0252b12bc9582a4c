//! Scenario and workload files (DESIGN §5): strict TOML parsed into typed specs the simulator
//! builds a run from. Strict because tools outside the project write these files: an unknown
//! key, a bad value or an impossible combination is a [`ScenarioError`] with the file, line,
//! column, dotted key path and a hint, never a guess and never a panic.
//!
//! Layers: `raw` mirrors the file (serde, `deny_unknown_fields`, spans), `validate` turns it
//! into the types below and checks every combination it can see. Kafka properties
//! (`[cluster.config]`, `[producers.config]`, ...) are kept as [`Property`] lists in file order;
//! the engine's config structs judge their names and values through
//! [`Scenario::apply_config`], which reports with the property's line.
//!
//! Defaults for keys a file leaves out: `duration` 60s, `drain` [`Drain::Auto`], `seeds` 100; topics 1
//! partition, replication factor 1 (Kafka's `num.partitions` / `default.replication.factor`);
//! producers `count` 1, `client` java, `keys` 0 (null keys), `message_size` 100; groups
//! `members` 1, `client` java; handler as [`HandlerSpec::default`]; faults off,
//! `mean_interval` 5s and, when `random = true` without `kinds`, [`DEFAULT_RANDOM_KINDS`].

mod bench;
mod duration;
mod error;
mod faults;
mod handler;
mod keys;
mod locate;
mod raw;
mod standalone;
mod target;
mod validate;

pub use bench::{AfterBacklog, Backlog, BenchSpec};
pub use duration::{format_duration, format_span, parse_duration};
pub use error::{did_you_mean, edit_distance, ScenarioError};
pub use keys::{accepted_keys, TableKeys};
pub use target::{FaultKind, Target, TARGET_FORMS};

use crate::violation::ViolationKind;
use kafsim_engine::alias;
pub use kafsim_engine::compression::MessageProfile;
use kafsim_engine::config::{ConfigValue, Configurable};
use kafsim_engine::producer::workload::TxnWorkload;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest scenario file read, so a wrong path (a log, a binary) fails fast.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Hardware profiles of the cost model (DESIGN §3) a workload may name.
pub const HARDWARE_PROFILES: [&str; 3] = ["default", "kreps2014", "i3en.2xlarge"];

/// Random fault kinds used when `random = true` and `kinds` is not given: broker-side faults
/// every cluster has.
pub const DEFAULT_RANDOM_KINDS: [FaultKind; 4] = [
    FaultKind::Crash,
    FaultKind::PowerLoss,
    FaultKind::Pause,
    FaultKind::Partition,
];

/// A parsed, validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The file it came from, as given to [`load`] / [`parse`] (for error messages).
    pub file: String,
    pub name: String,
    pub description: String,
    /// The safety phase: load and faults.
    pub duration: Duration,
    /// After heal: how long the run goes on for the consumers to catch up.
    pub drain: Drain,
    /// Default number of seeds of `kafsim run`.
    pub seeds: u64,
    /// Bench workloads: the start of the run left out of measurements (< duration).
    pub warmup: Option<Duration>,
    /// Bench workloads: one of [`HARDWARE_PROFILES`].
    pub hardware: Option<String>,
    pub cluster: ClusterSpec,
    pub topics: Vec<TopicSpec>,
    pub producers: Vec<ProducerSpec>,
    pub consumer_groups: Vec<GroupSpec>,
    pub faults: FaultSpec,
    pub expect: Expect,
    /// `[bench]`: a backlog phase (bench workloads).
    pub bench: BenchSpec,
}

/// The drain phase (DESIGN §8 "Drain"): what happens after the heal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Drain {
    /// `drain = "auto"` (the default): run until every send has an outcome and every group
    /// has caught up, however long that takes; a `stall` only when nothing at all progresses
    /// for the liveness window the scenario's own timeouts imply.
    #[default]
    Auto,
    /// `drain = "20s"`: a bound; whoever has not caught up when it runs out is a `stall`.
    Bound(Duration),
}

impl std::fmt::Display for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drain::Auto => f.write_str("auto"),
            Drain::Bound(d) => f.write_str(&format_duration(*d)),
        }
    }
}

/// One Kafka property as written, with its position for later errors.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    /// The Java property name, e.g. `linger.ms`.
    pub key: String,
    pub value: ConfigValue,
    pub line: usize,
    pub column: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSpec {
    pub brokers: u32,
    /// `[cluster] version`: the Kafka release whose broker rules apply (the newest modelled
    /// unless the file says otherwise).
    pub version: kafsim_engine::broker::version::KafkaVersion,
    /// Broker properties (`[cluster.config]`), file order.
    pub config: Vec<Property>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    /// Topic-level overrides (`[topics.config]`), file order.
    pub config: Vec<Property>,
}

/// A client library profile (DESIGN §2): the engine's own type.
pub use kafsim_engine::client::ClientKind;

/// Records per second per producer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    PerSecond(f64),
    /// As fast as the client and cluster allow (bench).
    Max,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProducerSpec {
    /// How many identical producers this entry stands for.
    pub count: u32,
    pub client: ClientKind,
    /// None = the profile's newest modelled version.
    pub client_version: Option<String>,
    pub topic: String,
    pub rate: Rate,
    /// Distinct keys; 0 = null keys.
    pub keys: u32,
    /// Bytes per record (drives the cost model).
    pub message_size: u32,
    /// What the values look like, for compression (`message_profile`).
    pub message_profile: MessageProfile,
    /// Producer properties (`[producers.config]`), file order.
    pub config: Vec<Property>,
    /// `[producers.transactions]`; with `transactional.id` set and no table, the default
    /// (10 records per transaction, none aborted).
    pub transactions: Option<TxnWorkload>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GroupSpec {
    pub group: String,
    pub members: u32,
    pub client: ClientKind,
    pub client_version: Option<String>,
    pub topics: Vec<String>,
    /// Consumer properties (`[consumer_groups.config]`), file order.
    pub config: Vec<Property>,
    pub handler: HandlerSpec,
    /// A `[[consumers]]` entry (a standalone consumer, named `consumer-I`, one member) rather
    /// than a `[[consumer_groups]]` one. Standalone consumers follow the groups in
    /// `Scenario::consumer_groups`, so fault targets, databases, drain and checkers treat them
    /// as groups that never rebalance.
    pub standalone: Option<StandaloneSpec>,
}

impl GroupSpec {
    /// Where the entry is in the file, for messages: `consumer_groups[I]` or `consumers[I]`
    /// (`index` is its position in `Scenario::consumer_groups`).
    pub fn section(&self, index: usize) -> String {
        match &self.standalone {
            Some(s) => format!("consumers[{}]", s.entry),
            None => format!("consumer_groups[{index}]"),
        }
    }
}

/// Where a standalone consumer starts reading: the engine's type.
pub use kafsim_engine::consumer::Start;

/// What a `[[consumers]]` entry adds to its [`GroupSpec`].
#[derive(Clone, Debug, PartialEq)]
pub struct StandaloneSpec {
    /// Its index among the `[[consumers]]` entries.
    pub entry: usize,
    /// The partitions of its one topic it reads.
    pub partitions: Vec<u32>,
    pub start: Start,
    /// `"group.id"` of its `[consumers.config]` (Java and librdkafka): the group whose
    /// committed offsets it reads and writes. None: it cannot commit.
    pub group_id: Option<String>,
}

/// Per-record processing time of the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessTime {
    /// "2ms"
    Fixed(Duration),
    /// "1ms..20ms": drawn uniformly per record, bounds included.
    Uniform { min: Duration, max: Duration },
}

// The handler's choices are the engine's application-model types (`kafsim_engine::app`); the
// scenario calls the mark point `MarkPoint`.
pub use kafsim_engine::app::{CommitMode, Mark as MarkPoint, OnFailure, Routing, SinkKind};
pub use kafsim_engine::consumer::SendOffsets;

/// The application model of a consumer group (DESIGN §2).
#[derive(Clone, Debug, PartialEq)]
pub struct HandlerSpec {
    pub process_time: ProcessTime,
    pub mark: MarkPoint,
    pub commit: CommitMode,
    /// Worker pool size, >= 1.
    pub workers: u32,
    pub routing: Routing,
    /// The group's database (None: no `sink` key, the service's output is its own record of
    /// what it processed, without a database).
    pub sink: Option<SinkKind>,
    /// Batch handler: records per batch (None = one record at a time).
    pub batch: Option<u32>,
    /// Batch handler: hand over a partial batch after this long.
    pub batch_timeout: Option<Duration>,
    /// Probability that processing one record fails, 0.0..=1.0.
    pub failure_rate: f64,
    pub on_failure: OnFailure,
    /// The dead-letter topic (a declared topic) when `on_failure` is `Dlq`.
    pub dlq_topic: Option<String>,
    /// Time one statement takes in the group's database (`crate::database`).
    pub database_latency: Duration,
    /// Fraction of records whose processing always fails.
    pub poison_rate: f64,
    /// Attempts of a failed record under `on_failure = retry` (None: without limit).
    pub max_attempts: Option<u32>,
    /// `produce_to`: the (declared) topic every processed record's output is written to.
    pub produce_to: Option<String>,
    /// `send_offsets`: what the transactional application passes `sendOffsetsToTransaction`.
    pub send_offsets: SendOffsets,
}

impl Default for HandlerSpec {
    /// The engine's defaults (`kafsim_engine::app::HandlerSpec`), in the scenario's terms.
    fn default() -> HandlerSpec {
        let e = kafsim_engine::app::HandlerSpec::default();
        HandlerSpec {
            process_time: ProcessTime::Fixed(e.process_time.0),
            mark: e.mark,
            commit: e.commit,
            workers: e.workers,
            routing: e.routing,
            sink: None,
            batch: e.batch,
            batch_timeout: e.batch_timeout,
            failure_rate: e.failure_rate,
            on_failure: e.on_failure,
            dlq_topic: None,
            database_latency: crate::database::DEFAULT_LATENCY,
            poison_rate: e.poison_rate,
            max_attempts: e.max_attempts,
            produce_to: None,
            send_offsets: SendOffsets::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpec {
    /// A random schedule drawn per seed from `kinds`.
    pub random: bool,
    pub kinds: Vec<FaultKind>,
    /// Mean time between random faults.
    pub mean_interval: Duration,
    /// `undo_after = "MIN..MAX"`: every random fault is undone a uniform draw from this
    /// range later, in place of its kind's own range (longer faults than a client's
    /// timeouts).
    pub undo_after: Option<(Duration, Duration)>,
    /// Scripted faults, in file order.
    pub schedule: Vec<ScheduledFault>,
}

impl Default for FaultSpec {
    fn default() -> FaultSpec {
        FaultSpec {
            random: false,
            kinds: Vec::new(),
            mean_interval: Duration::from_secs(5),
            undo_after: None,
            schedule: Vec::new(),
        }
    }
}

/// One `[[faults.schedule]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledFault {
    /// Simulated time from the start of the run, < `duration`.
    pub at: Duration,
    pub action: FaultAction,
    /// `duration = "3s"`: undo the fault (restart, resume, heal, restore speed) this long
    /// after it, still within the run (the heal phase lifts what remains anyway).
    pub undo_after: Option<Duration>,
    /// Line of the entry's `action` key, for messages.
    pub line: usize,
}

/// A scripted fault with exactly the parameters its kind takes.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultAction {
    /// Process crash: the page cache survives.
    Crash(Target),
    Restart(Target),
    /// Every unflushed byte is lost; `tear` also tears the last write.
    PowerLoss {
        target: Target,
        tear: bool,
    },
    Pause(Target),
    Resume(Target),
    /// Links between nodes of different groups are cut (with `one_way`, only messages from
    /// the first group to the others). A single group is cut from every other node (isolate).
    Partition {
        groups: Vec<Vec<Target>>,
        one_way: bool,
    },
    /// Lifts every partition and slow link.
    Heal,
    /// Extra latency on every link to and from the target.
    SlowLink {
        target: Target,
        latency: Duration,
    },
    /// Disk bandwidth divided and fsync latency multiplied by `factor`.
    SlowDisk {
        target: Target,
        factor: f64,
    },
    ConsumerCrash(Target),
    /// Processing time multiplied by `factor`.
    ConsumerSlowdown {
        target: Target,
        factor: f64,
    },
    ProducerCrash(Target),
    /// The producer is cut off from every other node (a partition isolating it).
    ProducerPartition(Target),
    /// The operator grows `topic` by `count` partitions (Admin `createPartitions`).
    AddPartitions {
        topic: String,
        count: u32,
    },
}

impl FaultAction {
    pub fn kind(&self) -> FaultKind {
        match self {
            FaultAction::Crash(_) => FaultKind::Crash,
            FaultAction::Restart(_) => FaultKind::Restart,
            FaultAction::PowerLoss { .. } => FaultKind::PowerLoss,
            FaultAction::Pause(_) => FaultKind::Pause,
            FaultAction::Resume(_) => FaultKind::Resume,
            FaultAction::Partition { .. } => FaultKind::Partition,
            FaultAction::Heal => FaultKind::Heal,
            FaultAction::SlowLink { .. } => FaultKind::SlowLink,
            FaultAction::SlowDisk { .. } => FaultKind::SlowDisk,
            FaultAction::ConsumerCrash(_) => FaultKind::ConsumerCrash,
            FaultAction::ConsumerSlowdown { .. } => FaultKind::ConsumerSlowdown,
            FaultAction::ProducerCrash(_) => FaultKind::ProducerCrash,
            FaultAction::ProducerPartition(_) => FaultKind::ProducerPartition,
            FaultAction::AddPartitions { .. } => FaultKind::AddPartitions,
        }
    }

    /// The targets the action names, as the scenario wrote them.
    pub fn targets(&self) -> Vec<&Target> {
        match self {
            FaultAction::Crash(t)
            | FaultAction::Restart(t)
            | FaultAction::Pause(t)
            | FaultAction::Resume(t)
            | FaultAction::ConsumerCrash(t)
            | FaultAction::ProducerCrash(t)
            | FaultAction::ProducerPartition(t)
            | FaultAction::PowerLoss { target: t, .. }
            | FaultAction::SlowLink { target: t, .. }
            | FaultAction::SlowDisk { target: t, .. }
            | FaultAction::ConsumerSlowdown { target: t, .. } => vec![t],
            FaultAction::Partition { groups, .. } => groups.iter().flatten().collect(),
            FaultAction::Heal | FaultAction::AddPartitions { .. } => Vec::new(),
        }
    }
}

/// What the scenario's runs must show (DESIGN §4 kinds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// Kinds that must be found within `seeds`; empty = none may be found.
    pub violations: Vec<ViolationKind>,
    /// Kinds that are not failures here.
    pub allow: Vec<ViolationKind>,
    /// `catch_up_within = "10s"`: a capacity objective; a group that catches up later than
    /// this after the heal (or never) is a `lag` violation.
    pub catch_up_within: Option<Duration>,
}

/// Reads and parses a scenario file. A missing or unreadable file is an error too.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let metadata = std::fs::metadata(path)
        .map_err(|e| ScenarioError::whole_file(&file, format!("cannot read: {e}")))?;
    if !metadata.is_file() {
        return Err(ScenarioError::whole_file(&file, "is not a file"));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(ScenarioError::whole_file(
            &file,
            format!("is larger than {MAX_FILE_BYTES} bytes; is it a scenario file?"),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ScenarioError::whole_file(&file, format!("cannot read: {e}")))?;
    parse(&file, &text)
}

/// Parses scenario text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
    validate::parse(file, text)
}

impl Scenario {
    /// An error about one property (a name or value the engine's config rejected), at the
    /// property's line. `section` is the path of its table, e.g. `producers[0].config`.
    pub fn property_error(
        &self,
        prop: &Property,
        section: &str,
        message: String,
        hint: Option<String>,
    ) -> ScenarioError {
        ScenarioError {
            file: self.file.clone(),
            line: prop.line,
            column: prop.column,
            key: format!("{section}.{}", prop.key),
            message,
            hint,
        }
    }

    /// Sets every property of `props` on `target` in file order. An unknown name gets a
    /// did-you-mean hint from `target.known_keys()`; a bad value gets the config's message.
    pub fn apply_config(
        &self,
        props: &[Property],
        section: &str,
        target: &mut dyn Configurable,
    ) -> Result<(), ScenarioError> {
        for prop in props {
            let known = target.known_keys();
            if known.contains(&prop.key.as_str()) {
                if let Err(message) = target.set(&prop.key, &prop.value) {
                    // A message may carry its hint after a `"\nhint: "` line (the engine's
                    // convention, as in `config_error`).
                    let (message, hint) = match message.split_once("\nhint: ") {
                        Some((m, h)) => (m.to_string(), Some(h.to_string())),
                        None => (message, own_key_hint(&prop.key).map(str::to_string)),
                    };
                    return Err(self.property_error(prop, section, message, hint));
                }
                continue;
            }
            let client = target.client();
            let alias = alias::find(target.aliases(), &prop.key);
            match alias {
                Some(alias) if Some(alias.client) == client => {
                    let set = alias
                        .translate(&prop.value)
                        .and_then(|value| target.set(alias.property, &value));
                    if let Err(message) = set {
                        let hint = format!(
                            "{} is {}'s name for the Kafka property \"{}\"",
                            alias.name, alias.client, alias.property
                        );
                        return Err(self.property_error(prop, section, message, Some(hint)));
                    }
                }
                Some(alias) => {
                    let message = format!(
                        "\"{}\" is a {} setting, and this client is {}",
                        prop.key,
                        alias.client,
                        client.map_or("not a client library", |c| c.name())
                    );
                    let own = target
                        .aliases()
                        .iter()
                        .find(|a| Some(a.client) == client && a.property == alias.property);
                    let hint = match (own, client) {
                        (Some(own), Some(c)) => format!(
                            "{c} calls it \"{}\"; the Kafka property is \"{}\"",
                            own.name, alias.property
                        ),
                        _ => format!("the Kafka property is \"{}\"", alias.property),
                    };
                    return Err(self.property_error(prop, section, message, Some(hint)));
                }
                None => {
                    let message = format!("unknown property \"{}\"", prop.key);
                    let hint = unknown_property_hint(&prop.key, target);
                    return Err(self.property_error(prop, section, message, hint));
                }
            }
        }
        Ok(())
    }

    /// An error of a configuration's final `validate`, pointed at the property it names
    /// (its Java name, or a client alias of it, opening the message) when there is one. A
    /// message may carry its hint after a `"\nhint: "` line (the engine's convention).
    pub fn config_error(
        &self,
        props: &[Property],
        section: &str,
        message: String,
    ) -> ScenarioError {
        let (message, hint) = match message.split_once("\nhint: ") {
            Some((m, h)) => (m.to_string(), Some(h.to_string())),
            None => (message, None),
        };
        let names = |p: &Property| -> Vec<String> {
            let mut names = vec![p.key.clone()];
            let all = alias::PRODUCER.iter().chain(alias::CONSUMER);
            names.extend(
                all.filter(|a| a.name == p.key)
                    .map(|a| a.property.to_string()),
            );
            names
        };
        let opens = |name: &str| {
            message.starts_with(name) && message[name.len()..].starts_with([' ', ':', '=', ','])
        };
        match props
            .iter()
            .rev()
            .find(|p| names(p).iter().any(|n| opens(n)))
        {
            Some(p) => self.property_error(p, section, message, hint),
            None => ScenarioError {
                file: self.file.clone(),
                line: 0,
                column: 0,
                key: section.to_string(),
                message,
                hint,
            },
        }
    }

    /// Every producer counted individually (the range of `producer:I` targets).
    pub fn total_producers(&self) -> u32 {
        self.producers.iter().map(|p| p.count).sum()
    }

    pub fn topic(&self, name: &str) -> Option<&TopicSpec> {
        self.topics.iter().find(|t| t.name == name)
    }
}

/// What kafsim's own producer keys take, for a bad value of one.
fn own_key_hint(key: &str) -> Option<&'static str> {
    match key {
        "on_error" => Some(
            "\"fail\": the application sees the error and gives the value up; \"ignore\": it \
             never looks (sarama Errors() unread, kafka-go Async without Completion); \
             \"retry\": it sends the value again",
        ),
        "partition" => Some(
            "\"key % 6\" sends key k to partition k mod 6; \"0\" sends every record to \
             partition 0",
        ),
        "kafka-go.constructor" => Some(
            "\"Writer\" for &kafka.Writer{...} (RequiredAcks defaults to RequireNone), \
             \"NewWriter\" for kafka.NewWriter(...) (a zero RequiredAcks becomes RequireAll)",
        ),
        _ => None,
    }
}

/// For an unknown property name: a near Kafka property ("did you mean"), or the Kafka property
/// behind a near client field name of this client, or of any client.
fn unknown_property_hint(key: &str, target: &dyn Configurable) -> Option<String> {
    if let Some(k) = did_you_mean(key, target.known_keys()) {
        return Some(format!("did you mean \"{k}\"?"));
    }
    let aliases = target.aliases();
    let own: Vec<&str> = aliases
        .iter()
        .filter(|a| Some(a.client) == target.client())
        .map(|a| a.name)
        .collect();
    if let Some(name) = did_you_mean(key, &own) {
        let a = alias::find(aliases, &name)?;
        return Some(format!(
            "did you mean \"{name}\" (the Kafka property \"{}\")?",
            a.property
        ));
    }
    let all: Vec<&str> = aliases.iter().map(|a| a.name).collect();
    let name = did_you_mean(key, &all)?;
    let a = alias::find(aliases, &name)?;
    Some(format!(
        "\"{name}\" is {}'s name for the Kafka property \"{}\"",
        a.client, a.property
    ))
}

/// The scenario library directory: `explicit` if given, else `scenarios/` under the current
/// directory when it exists, else the repository's `scenarios/` baked in at compile time (so
/// `kafsim list` and `kafsim check` work from anywhere in a source checkout).
pub fn library_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    let local = PathBuf::from("scenarios");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios"))
}

/// The `*.toml` files of `dir`, sorted by file name (deterministic listing order).
pub fn library_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}
