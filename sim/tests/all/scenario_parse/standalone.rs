//! Standalone consumers (`[[consumers]]`): each client's defaults, and the errors for what
//! a client's standalone consumer cannot do.

use super::*;

/// The design example with one `[[consumers]]` entry of `client` appended: `keys` are its
/// lines, `config` its `[consumers.config]` and `handler` its `[consumers.handler]` lines.
fn with_consumer(client: &str, keys: &str, config: &str, handler: &str) -> String {
    format!(
        "{DESIGN_EXAMPLE}\n[[consumers]]\nclient = \"{client}\"\ntopic = \"orders\"\n{keys}\
         [consumers.config]\n{config}[consumers.handler]\nsink = \"plain\"\n{handler}"
    )
}

/// 1-based line of the last line of `text` that `pred` accepts.
fn last_line(text: &str, pred: impl Fn(&str) -> bool) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .rposition(|l| pred(l))
        .expect("a matching line")
        + 1
}

/// `[[consumers]]` (DESIGN §8): standalone consumers parse into one-member groups named
/// `consumer-I`, and every key refuses what its client cannot do, at its line.
#[test]
fn standalone_consumers_parse_with_each_clients_defaults() {
    let text = with_consumer("kafka-go", "partitions = [2]\nstart = \"newest\"\n", "", "");
    let s = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let g = s.consumer_groups.last().expect("the consumer");
    assert_eq!((g.group.as_str(), g.members), ("consumer-0", 1));
    let sa = g.standalone.as_ref().expect("standalone");
    assert_eq!(
        (sa.partitions.clone(), sa.start),
        (vec![2], scenario::Start::Newest)
    );
    assert_eq!(g.section(s.consumer_groups.len() - 1), "consumers[0]");
    // Defaults: every partition; committed with a group.id, else the client's own start.
    let java = with_consumer("java", "", "\"group.id\" = \"audit\"\n", "");
    let s = parse(&java).unwrap_or_else(|e| panic!("{e}"));
    let sa = s
        .consumer_groups
        .last()
        .unwrap()
        .standalone
        .clone()
        .unwrap();
    assert_eq!(sa.partitions, (0..6).collect::<Vec<u32>>());
    assert_eq!(sa.start, scenario::Start::Committed);
    assert_eq!(sa.group_id.as_deref(), Some("audit"));
    assert!(
        s.consumer_groups
            .last()
            .unwrap()
            .config
            .iter()
            .all(|p| p.key != "group.id"),
        "group.id is the standalone consumer's own, not an engine property"
    );
    let sarama = with_consumer("sarama", "", "", "");
    let s = parse(&sarama).unwrap_or_else(|e| panic!("{e}"));
    let sa = s
        .consumer_groups
        .last()
        .unwrap()
        .standalone
        .clone()
        .unwrap();
    assert_eq!(sa.start, scenario::Start::Newest);
}

#[test]
fn standalone_consumer_keys_have_clear_errors() {
    let t = with_consumer("javaa", "", "", "");
    let e = assert_error(&t, "javaa", "consumers[0].client", "unknown value");
    assert!(e.hint.is_some(), "{e}");
    let t = with_consumer("java", "", "", "").replace(
        "topic = \"orders\"\n[consumers",
        "topic = \"order\"\n[consumers",
    );
    assert_error(&t, "\"order\"", "consumers[0].topic", "no topic \"order\"");
    let t = with_consumer("java", "partitions = [6]\n", "", "");
    let e = assert_error(
        &t,
        "partitions = [6]",
        "consumers[0].partitions[0]",
        "no partition 6",
    );
    assert!(e.hint.as_deref().unwrap().contains("0 to 5"), "{e}");
    let t = with_consumer("java", "partitions = [1, 1]\n", "", "");
    assert_error(
        &t,
        "partitions = [1, 1]",
        "consumers[0].partitions[1]",
        "listed twice",
    );
    let t = with_consumer("java", "partitions = []\n", "", "");
    assert_error(
        &t,
        "partitions = []",
        "consumers[0].partitions",
        "at least one",
    );
    let t = with_consumer("kafka-go", "partitions = [0, 1]\n", "", "");
    let e = assert_error(
        &t,
        "partitions = [0, 1]",
        "consumers[0].partitions",
        "reads one partition",
    );
    assert!(e
        .hint
        .as_deref()
        .unwrap()
        .contains("one [[consumers]] entry per partition"));
    let t = with_consumer("kafka-go", "", "", "");
    let line = last_line(&t, |l| l == "topic = \"orders\"");
    let e = parse_err(&t);
    assert_eq!(
        (e.key.as_str(), e.line),
        ("consumers[0].partitions", line),
        "{e}"
    );
    let t = with_consumer("java", "start = \"latest\"\n", "", "");
    let e = assert_error(
        &t,
        "start = \"latest\"",
        "consumers[0].start",
        "unknown value",
    );
    assert!(e.hint.is_some(), "{e}");
    let t = with_consumer("sarama", "start = \"committed\"\n", "", "");
    let e = assert_error(
        &t,
        "start = \"committed\"",
        "consumers[0].start",
        "no offset management",
    );
    assert!(
        e.hint.as_deref().unwrap().contains("offsets-in-sink"),
        "{e}"
    );
    let t = with_consumer(
        "kafka-go",
        "partitions = [0]\nstart = \"committed\"\n",
        "",
        "",
    );
    assert_error(
        &t,
        "start = \"committed\"",
        "consumers[0].start",
        "no GroupID",
    );
    let t = with_consumer("java", "start = \"committed\"\n", "", "");
    let e = assert_error(
        &t,
        "start = \"committed\"",
        "consumers[0].start",
        "needs a group.id",
    );
    assert!(e.hint.as_deref().unwrap().contains("group.id"), "{e}");
    let t = with_consumer("sarama", "", "\"group.id\" = \"audit\"\n", "");
    assert_error(
        &t,
        "\"group.id\" = \"audit\"",
        "consumers[0].config.group.id",
        "ConsumePartition",
    );
    let t = with_consumer(
        "kafka-go",
        "partitions = [0]\n",
        "\"group.id\" = \"audit\"\n",
        "",
    );
    assert_error(
        &t,
        "\"group.id\" = \"audit\"",
        "consumers[0].config.group.id",
        "Partition or GroupID",
    );
    let t = with_consumer("java", "", "\"group.id\" = \"billing\"\n", "");
    let e = assert_error(
        &t,
        "\"group.id\" = \"billing\"",
        "consumers[0].config.group.id",
        "[[consumer_groups]]",
    );
    assert!(e.hint.is_some(), "{e}");
    let t = with_consumer("java", "", "", "commit = \"sync\"\n");
    let e = assert_error(
        &t,
        "commit = \"sync\"",
        "consumers[0].handler.commit",
        "commits nothing",
    );
    assert!(
        e.hint.as_deref().unwrap().contains("offsets-in-sink"),
        "{e}"
    );
    let t = with_consumer("sarama", "", "", "mark = \"before-process\"\n");
    let line = last_line(&t, |l| l == "mark = \"before-process\"");
    let e = parse_err(&t);
    assert_eq!(
        (e.key.as_str(), e.line),
        ("consumers[0].handler.mark", line),
        "{e}"
    );
    let t = with_consumer("java", "", "\"enable.auto.commit\" = true\n", "");
    let line = last_line(&t, |l| l == "\"enable.auto.commit\" = true");
    let e = parse_err(&t);
    assert_eq!(
        (e.key.as_str(), e.line),
        ("consumers[0].config.enable.auto.commit", line),
        "{e}"
    );
    // With a group.id the client's consume loop rules apply, as in a group.
    let t = with_consumer(
        "librdkafka",
        "",
        "\"group.id\" = \"audit\"\n",
        "mark = \"never\"\n",
    );
    let e = parse_err(&t);
    assert_eq!(e.key, "consumers[0].handler.mark", "{e}");
    // An unknown key of the table, and a bad property found when the run is prepared.
    let t = with_consumer("java", "members = 2\n", "", "");
    let e = parse_err(&t);
    assert!(e.key.starts_with("consumers[0]"), "{e}");
    let t = with_consumer("java", "", "\"max.poll.records\" = \"many\"\n", "");
    let s = parse(&t).unwrap_or_else(|e| panic!("{e}"));
    let Err(e) = kafsim_sim::runner::prepare(s) else {
        panic!("a bad property must be refused");
    };
    assert_eq!(e.key, "consumers[0].config.max.poll.records", "{e}");
    assert_eq!(e.line, last_line(&t, |l| l.contains("max.poll.records")));
}
