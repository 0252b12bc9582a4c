//! `[[consumers]]`: standalone partition consumers (DESIGN §8) — a Java `assign()`, a sarama
//! `ConsumePartition`, a kafka-go `Reader` with `Partition`, a librdkafka `rd_kafka_assign`.
//! No group membership and no rebalance; each entry becomes a one-member [`GroupSpec`] named
//! `consumer-I` with a [`StandaloneSpec`]. What a client cannot do is refused here: only Java
//! and librdkafka with a `group.id` can commit or start from a committed offset (sarama's
//! `ConsumePartition` has no offset management; a kafka-go Reader takes either `Partition` or
//! `GroupID`, never both, `ReaderConfig.Validate`), and a kafka-go Reader reads one partition.

use super::handler;
use super::raw::RawConsumer;
use super::validate::{Check, R};
use super::{ClientKind, CommitMode, GroupSpec, HandlerSpec, StandaloneSpec, Start, TopicSpec};
use kafsim_engine::config::ConfigValue;

const STARTS: [(&str, Start); 3] = [
    ("oldest", Start::Oldest),
    ("newest", Start::Newest),
    ("committed", Start::Committed),
];

/// Every `[[consumers]]` entry, as groups that follow `groups` (the `[[consumer_groups]]`).
pub fn consumers(
    check: &Check<'_>,
    raw: &[RawConsumer],
    topics: &[TopicSpec],
    groups: &[GroupSpec],
) -> R<Vec<GroupSpec>> {
    let mut out = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let at = format!("consumers[{i}]");
        let client = check.client(&c.client, &format!("{at}.client"))?;
        let topic = check.existing_topic(&c.topic, &format!("{at}.topic"), topics)?;
        let count = topics
            .iter()
            .find(|t| t.name == topic)
            .map_or(1, |t| t.partitions);
        let partitions = partitions(check, c, &at, client, count)?;
        let group_id = group_id(check, c, &at, client, groups)?;
        let start = start(check, c, &at, client, group_id.is_some())?;
        let handler = handler::handler(check, &c.handler, &format!("{at}.handler"), topics)?;
        if let Some(topic) = &c.handler.produce_to {
            return Err(check.err_hint(
                topic,
                &format!("{at}.handler.produce_to"),
                "produce_to is for consumer groups: consume-transform-produce commits the \
                 group's offsets with its outputs",
                "declare a [[consumer_groups]] table with produce_to",
            ));
        }
        commits_fit(check, c, &at, client, group_id.is_some(), &handler)?;
        no_instance_id(check, c, &at)?;
        let config = check
            .properties(&c.config)
            .into_iter()
            .filter(|p| p.key != "group.id")
            .collect();
        out.push(GroupSpec {
            group: format!("consumer-{i}"),
            members: 1,
            client,
            client_version: None,
            topics: vec![topic],
            config,
            handler,
            standalone: Some(StandaloneSpec {
                entry: i,
                partitions,
                start,
                group_id,
            }),
        });
    }
    Ok(out)
}

/// A standalone consumer never joins a group, so no member holds its `group.instance.id`
/// (sarama's `Consumer.Group.InstanceId`): Java still sends it with a manual assignment's
/// commits (`ConsumerCoordinator.sendOffsetCommitRequest`), which the coordinator refuses as
/// UNKNOWN_MEMBER_ID (`GroupCoordinator.validateOffsetCommit`). Refused rather than modelled.
fn no_instance_id(check: &Check<'_>, c: &RawConsumer, at: &str) -> R<()> {
    let spellings = ["group.instance.id", "Consumer.Group.InstanceId"];
    let Some((k, _)) = c
        .config
        .0
        .iter()
        .find(|(k, _)| spellings.contains(&k.get_ref().as_str()))
    else {
        return Ok(());
    };
    Err(check.err_hint(
        k,
        &format!("{at}.config.{}", k.get_ref()),
        "a standalone consumer (assign) never joins its group, so no member holds this \
         instance id: Java still sends it with every commit, which the coordinator refuses \
         (UNKNOWN_MEMBER_ID)",
        "remove it; static members are the members of a [[consumer_groups]] entry",
    ))
}

/// `partitions`: listed ones of the topic (default: all); a kafka-go Reader reads one.
fn partitions(
    check: &Check<'_>,
    c: &RawConsumer,
    at: &str,
    client: ClientKind,
    count: u32,
) -> R<Vec<u32>> {
    let key = format!("{at}.partitions");
    let one_reader = "a kafka-go Reader reads one partition (ReaderConfig.Partition)";
    let one_hint = "write one [[consumers]] entry per partition, e.g. `partitions = [0]`";
    let Some(list) = &c.partitions else {
        if client == ClientKind::KafkaGo && count > 1 {
            return Err(check.err_hint(
                &c.topic,
                &key,
                format!(
                    "{one_reader}, and topic \"{}\" has {count}; `partitions` must name it",
                    c.topic.get_ref()
                ),
                one_hint,
            ));
        }
        return Ok((0..count).collect());
    };
    if list.get_ref().is_empty() {
        return Err(check.err_hint(
            list,
            &key,
            "must name at least one partition",
            "leave `partitions` out to read every partition of the topic",
        ));
    }
    if client == ClientKind::KafkaGo && list.get_ref().len() > 1 {
        return Err(check.err_hint(
            list,
            &key,
            format!("{one_reader}, and {} are listed", list.get_ref().len()),
            one_hint,
        ));
    }
    let mut out: Vec<u32> = Vec::new();
    for (j, p) in list.get_ref().iter().enumerate() {
        let at_j = format!("{key}[{j}]");
        let n = *p.get_ref();
        if n < 0 || n >= i64::from(count) {
            return Err(check.err_hint(
                p,
                &at_j,
                format!("topic \"{}\" has no partition {n}", c.topic.get_ref()),
                format!("its partitions are numbered 0 to {}", count - 1),
            ));
        }
        let n = n as u32;
        if out.contains(&n) {
            return Err(check.err(p, &at_j, format!("partition {n} is listed twice")));
        }
        out.push(n);
    }
    Ok(out)
}

/// `"group.id"` in `[consumers.config]`: Java and librdkafka only, and not the id of a
/// `[[consumer_groups]]` group (the coordinator refuses a commit without membership, at
/// generation -1, while the group has members: `GroupCoordinator.handleCommitOffsets`).
fn group_id(
    check: &Check<'_>,
    c: &RawConsumer,
    at: &str,
    client: ClientKind,
    groups: &[GroupSpec],
) -> R<Option<String>> {
    let Some((k, v)) = c.config.0.iter().find(|(k, _)| k.get_ref() == "group.id") else {
        return Ok(None);
    };
    let key = format!("{at}.config.group.id");
    let refuse = |message: &str, hint: &str| Err(check.err_hint(k, &key, message, hint));
    match client {
        ClientKind::Sarama => {
            return refuse(
                "sarama's ConsumePartition belongs to no group and manages no offsets",
                "remove \"group.id\"; a sarama service that commits is a [[consumer_groups]] entry",
            )
        }
        ClientKind::KafkaGo => return refuse(
            "a kafka-go Reader takes either Partition or GroupID, not both (ReaderConfig.Validate)",
            "remove \"group.id\"; a kafka-go Reader with a GroupID is a [[consumer_groups]] entry",
        ),
        ClientKind::Java | ClientKind::Librdkafka => {}
    }
    let ConfigValue::Str(id) = &v.0 else {
        return refuse(
            "group.id must be a string",
            "write \"group.id\" = \"billing\"",
        );
    };
    if id.trim().is_empty() {
        return refuse(
            "group.id must not be empty",
            "write \"group.id\" = \"billing\"",
        );
    }
    if groups.iter().any(|g| &g.group == id) {
        return refuse(
            &format!("\"{id}\" is the group of a [[consumer_groups]] entry: the coordinator refuses commits from a consumer outside the group while it has members"),
            "give the standalone consumer a group.id of its own",
        );
    }
    Ok(Some(id.clone()))
}

/// `start`: default `committed` with a group.id, else where the client starts by itself
/// (kafka-go `FirstOffset`, Java and librdkafka `auto.offset.reset = latest`; sarama takes an
/// offset argument, `OffsetNewest` here).
fn start(
    check: &Check<'_>,
    c: &RawConsumer,
    at: &str,
    client: ClientKind,
    commits: bool,
) -> R<Start> {
    let key = format!("{at}.start");
    let Some(value) = &c.start else {
        return Ok(match client {
            _ if commits => Start::Committed,
            ClientKind::KafkaGo => Start::Oldest,
            _ => Start::Newest,
        });
    };
    let start = check.choice(value, &key, &STARTS)?;
    if start == Start::Committed && !commits {
        let (message, hint) = match client {
            ClientKind::Sarama => (
                "sarama's ConsumePartition keeps no committed offset (it has no offset management)",
                "start = \"oldest\" or \"newest\", or store offsets with the results: sink = \"offsets-in-sink\"",
            ),
            ClientKind::KafkaGo => (
                "a kafka-go Reader with Partition has no GroupID, so no committed offset",
                "start = \"oldest\" or \"newest\", or store offsets with the results: sink = \"offsets-in-sink\"",
            ),
            ClientKind::Java | ClientKind::Librdkafka => (
                "start = \"committed\" needs a group.id to read the committed offset of",
                "set \"group.id\" in [consumers.config] (assign() with a group.id commits and fetches offsets)",
            ),
        };
        return Err(check.err_hint(value, &key, message, hint));
    }
    Ok(start)
}

/// A consumer that cannot commit (no group.id, or sarama / kafka-go) takes no `commit` mode
/// but `auto`, no `mark` and no `enable.auto.commit = true`; one that can follows its
/// client's consume loop as a group member would.
fn commits_fit(
    check: &Check<'_>,
    c: &RawConsumer,
    at: &str,
    client: ClientKind,
    commits: bool,
    handler: &HandlerSpec,
) -> R<()> {
    if commits {
        return check.mark_fits_loop(&c.handler.mark, &c.config, at, client, handler);
    }
    let why = match client {
        ClientKind::Sarama => "sarama's ConsumePartition commits nothing",
        ClientKind::KafkaGo => "a kafka-go Reader with Partition commits nothing",
        _ => "a consumer without a group.id commits nothing",
    };
    let hint = "its position lives in memory only; keep it with the results (sink = \"offsets-in-sink\"), or give a Java / librdkafka consumer a \"group.id\"";
    if let (Some(v), true) = (&c.handler.commit, handler.commit != CommitMode::Auto) {
        let key = format!("{at}.handler.commit");
        return Err(check.err_hint(
            v,
            &key,
            format!("commit = \"{}\": {why}", v.get_ref()),
            hint,
        ));
    }
    if let Some(v) = &c.handler.mark {
        let key = format!("{at}.handler.mark");
        return Err(check.err_hint(v, &key, format!("mark has no effect: {why}"), hint));
    }
    let auto_commit = c
        .config
        .0
        .iter()
        .find(|(k, v)| k.get_ref() == "enable.auto.commit" && v.0 == ConfigValue::Bool(true));
    if let Some((k, _)) = auto_commit {
        let key = format!("{at}.config.enable.auto.commit");
        return Err(check.err_hint(k, &key, format!("enable.auto.commit = true: {why}"), hint));
    }
    Ok(())
}
