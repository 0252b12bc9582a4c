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

/// A `[[consumers]]` entry the parser refuses: its client and lines (as [`with_consumer`]
/// takes them), the text of the line the error points at (its last occurrence), the key, the
/// words of the message, and the words its hint must hold (`Some("")`: any hint).
struct Refused {
    client: &'static str,
    keys: &'static str,
    config: &'static str,
    handler: &'static str,
    at: &'static str,
    key: &'static str,
    words: &'static str,
    hint: Option<&'static str>,
}

const fn refused(client: &'static str, lines: [&'static str; 3], at: &'static str) -> Refused {
    Refused {
        client,
        keys: lines[0],
        config: lines[1],
        handler: lines[2],
        at,
        key: "",
        words: "",
        hint: None,
    }
}

impl Refused {
    const fn at_key(self, key: &'static str, words: &'static str) -> Refused {
        Refused { key, words, ..self }
    }

    const fn hinting(self, hint: &'static str) -> Refused {
        Refused {
            hint: Some(hint),
            ..self
        }
    }
}

const REFUSED: &[Refused] = &[
    refused("javaa", ["", "", ""], "javaa")
        .at_key("consumers[0].client", "unknown value")
        .hinting(""),
    refused("java", ["partitions = [6]\n", "", ""], "partitions = [6]")
        .at_key("consumers[0].partitions[0]", "no partition 6")
        .hinting("0 to 5"),
    refused(
        "java",
        ["partitions = [1, 1]\n", "", ""],
        "partitions = [1, 1]",
    )
    .at_key("consumers[0].partitions[1]", "listed twice"),
    refused("java", ["partitions = []\n", "", ""], "partitions = []")
        .at_key("consumers[0].partitions", "at least one"),
    refused(
        "kafka-go",
        ["partitions = [0, 1]\n", "", ""],
        "partitions = [0, 1]",
    )
    .at_key("consumers[0].partitions", "reads one partition")
    .hinting("one [[consumers]] entry per partition"),
    refused("kafka-go", ["", "", ""], "topic = \"orders\"").at_key("consumers[0].partitions", ""),
    refused(
        "java",
        ["start = \"latest\"\n", "", ""],
        "start = \"latest\"",
    )
    .at_key("consumers[0].start", "unknown value")
    .hinting(""),
    refused(
        "sarama",
        ["start = \"committed\"\n", "", ""],
        "start = \"committed\"",
    )
    .at_key("consumers[0].start", "no offset management")
    .hinting("offsets-in-sink"),
    refused(
        "kafka-go",
        ["partitions = [0]\nstart = \"committed\"\n", "", ""],
        "start = \"committed\"",
    )
    .at_key("consumers[0].start", "no GroupID"),
    refused(
        "java",
        ["start = \"committed\"\n", "", ""],
        "start = \"committed\"",
    )
    .at_key("consumers[0].start", "needs a group.id")
    .hinting("group.id"),
    refused(
        "sarama",
        ["", "\"group.id\" = \"audit\"\n", ""],
        "\"group.id\" = \"audit\"",
    )
    .at_key("consumers[0].config.group.id", "ConsumePartition"),
    refused(
        "kafka-go",
        ["partitions = [0]\n", "\"group.id\" = \"audit\"\n", ""],
        "\"group.id\" = \"audit\"",
    )
    .at_key("consumers[0].config.group.id", "Partition or GroupID"),
    refused(
        "java",
        ["", "\"group.id\" = \"billing\"\n", ""],
        "\"group.id\" = \"billing\"",
    )
    .at_key("consumers[0].config.group.id", "[[consumer_groups]]")
    .hinting(""),
    refused("java", ["", "", "commit = \"sync\"\n"], "commit = \"sync\"")
        .at_key("consumers[0].handler.commit", "commits nothing")
        .hinting("offsets-in-sink"),
    refused(
        "sarama",
        ["", "", "mark = \"before-process\"\n"],
        "mark = \"before-process\"",
    )
    .at_key("consumers[0].handler.mark", ""),
    refused(
        "java",
        ["", "\"enable.auto.commit\" = true\n", ""],
        "\"enable.auto.commit\" = true",
    )
    .at_key("consumers[0].config.enable.auto.commit", ""),
];

#[test]
fn standalone_consumer_keys_have_clear_errors() {
    for case in REFUSED {
        let t = with_consumer(case.client, case.keys, case.config, case.handler);
        let e = parse_err(&t);
        let line = last_line(&t, |l| l.contains(case.at));
        assert_eq!((e.key.as_str(), e.line), (case.key, line), "{e}");
        assert!(e.column >= 1 && e.file == "test.toml", "{e}");
        assert!(
            e.to_string().contains(case.words),
            "'{}' not in: {e}",
            case.words
        );
        if let Some(hint) = case.hint {
            let shown = e.hint.as_deref().unwrap_or_else(|| panic!("no hint: {e}"));
            assert!(shown.contains(hint), "'{hint}' not in the hint of: {e}");
        }
    }
    let t = with_consumer("java", "", "", "").replace(
        "topic = \"orders\"\n[consumers",
        "topic = \"order\"\n[consumers",
    );
    assert_error(&t, "\"order\"", "consumers[0].topic", "no topic \"order\"");
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

/// A standalone consumer never joins its group: a `group.instance.id` is an error at its line.
#[test]
fn a_standalone_consumer_has_no_group_instance_id() {
    let config = "\"group.id\" = \"audit\"\n\"group.instance.id\" = \"audit\"\n";
    let text = with_consumer("java", "", config, "");
    let e = parse(&text).expect_err("refused");
    assert_eq!(e.key, "consumers[0].config.group.instance.id", "{e}");
    assert_eq!(
        e.line,
        last_line(&text, |l| l.contains("group.instance.id")),
        "{e}"
    );
    assert!(e.to_string().contains("never joins its group"), "{e}");
}
