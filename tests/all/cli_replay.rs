//! `kafsim replay`: the story of a violated record, told with names, on one screen, and the
//! structured trace formats (`--format json`, `--format perfetto`).

use std::process::Command;

fn kafsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kafsim"))
}

fn scenario(name: &str) -> String {
    format!("{}/scenarios/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `kafsim replay scenarios/commit-before-process.toml --seed 6` (one of the seeds where a
/// crash loses a record): stdout and exit status.
fn replay_commit_before_process(extra: &[&str]) -> (String, Option<i32>) {
    let out = kafsim()
        .args([
            "replay",
            &scenario("commit-before-process.toml"),
            "--seed",
            "6",
        ])
        .args(extra)
        .output()
        .unwrap();
    (String::from_utf8(out.stdout).unwrap(), out.status.code())
}

/// The indented story under the first violation of `kind`.
fn first_story<'t>(text: &'t str, kind: &str) -> Vec<&'t str> {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with(&format!("- {kind} ")));
    lines.next().expect("a violation of that kind");
    lines.take_while(|l| l.starts_with("    ")).collect()
}

/// Simulated milliseconds at the start of a story line (`12.345ms ...`).
fn millis(line: &str) -> Option<f64> {
    line.trim().split_once("ms ")?.0.parse().ok()
}

#[test]
fn a_consumer_side_sink_loss_tells_mark_commit_crash_and_resume_with_names() {
    let (text, code) = replay_commit_before_process(&[]);
    assert_eq!(code, Some(1), "sink-loss is a failure here");
    let story = first_story(&text, "sink-loss");
    let has = |needle: &str| story.iter().position(|l| l.contains(needle));
    let steps = [
        "sends v",
        "appended the batch",
        "copied",
        "high watermark on broker-",
        "got its acknowledgement: orders/",
        "polled it (generation ",
        "marks offset",
        "which covers offset",
        "fault: crash billing/",
        "resumed orders/",
    ];
    let at: Vec<usize> = steps
        .iter()
        .map(|s| has(s).unwrap_or_else(|| panic!("no {s:?} in {story:#?}")))
        .collect();
    // The send comes first, the poll before its mark and the commit that covers it (the
    // record was marked and committed, not processed); the member crashes (the coordinator may
    // store the in-flight commit after the crash: the broker's side is in the story, and so is
    // the lost answer), and the new owner resumes past the record last.
    assert!(
        at[0] < at[5] && at[5] < at[6] && at[6] < at[7],
        "{story:#?}"
    );
    assert!(at[7] < at[9] && at[8] < at[9], "{story:#?}");
    let stored = story[at[7]];
    if stored.contains("as coordinator of billing, stored") {
        // Stored after the crash: the member cannot have heard the answer.
        assert!(
            at[8] > at[7] || stored.contains("its answer never reached billing/"),
            "{story:#?}"
        );
    }
    assert!(
        story.last().unwrap().contains("=> billing polled orders/"),
        "{story:#?}"
    );
    // In the order things happened, on one screen.
    let times: Vec<f64> = story.iter().filter_map(|l| millis(l)).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{story:#?}");
    assert!(story.len() <= 61, "{} lines", story.len());
    // Names only: no engine node ids, topic ids or group indices anywhere in the output.
    for line in text.lines() {
        let engine_notation = line.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
            (w.starts_with('n') || w.starts_with('t'))
                && w.len() > 1
                && w[1..].chars().all(|c| c.is_ascii_digit())
        });
        assert!(
            !engine_notation && !line.contains("group 0"),
            "engine notation in {line:?}"
        );
    }
}

#[test]
fn the_json_trace_has_typed_fields_and_the_perfetto_trace_follows_violated_records() {
    let dir = std::env::temp_dir().join(format!("kafsim-cli-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let json_path = dir.join("trace.json");
    let (text, _) =
        replay_commit_before_process(&["--trace", json_path.to_str().unwrap(), "--format", "json"]);
    let events: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let produce_response = events
        .iter()
        .find(|e| e["kind"] == "respond" && e["request"] == "ProduceResponse")
        .expect("a produce response");
    assert!(produce_response["node"]
        .as_str()
        .unwrap()
        .starts_with("broker-"));
    assert!(produce_response["to"]
        .as_str()
        .unwrap()
        .starts_with("producer-"));
    assert!(produce_response["correlation_id"].is_u64());
    let p = &produce_response["partitions"][0];
    assert!(
        p["partition"].as_str().unwrap().starts_with("orders/"),
        "{p}"
    );
    assert!(p["offset"].is_u64() && p["error"].is_null(), "{p}");
    let poll = events
        .iter()
        .find(|e| e["kind"] == "record" && e["event"] == "Poll")
        .expect("a poll");
    assert!(
        poll["member"].as_str().unwrap().starts_with("billing/"),
        "{poll}"
    );
    assert!(poll["offset"].is_u64() && poll["value"].is_u64(), "{poll}");
    assert!(events
        .iter()
        .any(|e| e["kind"] == "fault" && e["fault"] == "crash"));
    // The trace does not change the run.
    let (plain, _) = replay_commit_before_process(&[]);
    assert_eq!(plain, text);

    let perfetto_path = dir.join("trace.perfetto.json");
    replay_commit_before_process(&[
        "--trace",
        perfetto_path.to_str().unwrap(),
        "--format",
        "perfetto",
    ]);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&perfetto_path).unwrap()).unwrap();
    let errors = kafsim_sim::perfetto::validate(&doc);
    assert!(errors.is_empty(), "{errors:?}");
    let events = doc["traceEvents"].as_array().unwrap();
    let process_names: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    for name in [
        "broker-0",
        "controller-0",
        "producer-0",
        "billing/0",
        "billing/1",
    ] {
        assert!(process_names.contains(&name), "{process_names:?}");
    }
    let has = |ph: &str, cat: &str| events.iter().any(|e| e["ph"] == ph && e["cat"] == cat);
    assert!(has("X", "request"), "request slices");
    assert!(has("i", "fault"), "fault instants");
    // The first violated record's flow: its send on producer-0, then brokers, then its poll.
    let first = text
        .lines()
        .find(|l| l.starts_with("- sink-loss "))
        .and_then(|l| l.split(" value ").nth(1))
        .and_then(|v| v.split(' ').next())
        .unwrap();
    let steps: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["cat"] == "record" && e["ph"] == "X")
        .filter(|e| e["args"]["value"].as_u64().unwrap().to_string() == first)
        .collect();
    let named: Vec<&str> = steps.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert!(named[0].ends_with(" send"), "{named:?}");
    assert!(
        named.iter().any(|n| n.ends_with("leader append")),
        "{named:?}"
    );
    assert!(
        named.iter().any(|n| n.contains("poll by billing/")),
        "{named:?}"
    );
    let flow = events
        .iter()
        .filter(|e| ["s", "t", "f"].contains(&e["ph"].as_str().unwrap()))
        .filter(|e| e["name"].as_str() == Some(&format!("v{first}")))
        .count();
    assert_eq!(flow, steps.len(), "one flow event per step");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A kafka-go service whose round-robin writer scatters keys (a thousand `key-order`
/// violations, all failures) and whose `ReadMessage` reader loses the message in hand when
/// it crashes (`sink-loss`, later in the list). Every failing kind gets its story, not only
/// the first twenty violations: the sink-loss used to be printed bare, behind the key-orders.
#[test]
fn every_failing_kind_gets_a_story_however_many_of_another_come_first() {
    let dir = std::env::temp_dir().join(format!("kafsim-replay-kinds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("scattered-keys-readmessage-crash.toml");
    std::fs::write(
        &file,
        r#"name = "scattered-keys-readmessage-crash"
duration = "25s"

[cluster]
brokers = 3
[cluster.config]
"min.insync.replicas" = 2

[[topics]]
name = "jobs"
partitions = 12
replication_factor = 3

[[producers]]
count = 2
client = "kafka-go"
topic = "jobs"
rate = 200
keys = 50
[producers.config]
RequiredAcks = "RequireAll"
BatchTimeout = "10ms"
Async = true

[[consumer_groups]]
group = "workers"
members = 3
client = "kafka-go"
topics = ["jobs"]
[consumer_groups.handler]
process_time = "20ms..50ms"
sink = "plain"

[faults]
random = true
kinds = ["consumer-crash"]
mean_interval = "2s"

[expect]
violations = ["sink-loss"]
allow = ["sink-duplicate"]
"#,
    )
    .unwrap();
    let out = kafsim()
        .args(["replay", file.to_str().unwrap(), "--seed", "4"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let key_orders = text
        .lines()
        .filter(|l| l.starts_with("- key-order "))
        .count();
    assert!(
        key_orders > 20,
        "{key_orders} key-order violations come first"
    );
    let story = first_story(&text, "sink-loss");
    assert!(
        story.iter().any(|l| l.contains("polled it")),
        "the sink-loss is told:\n{}",
        story.join("\n")
    );
}

/// `kafsim replay ... | head -1`: once the reader has gone, the process ends by SIGPIPE, as
/// `cat` would, instead of panicking with "failed printing to stdout: Broken pipe". The
/// replay prints about 770 kB, far more than a pipe holds, so it must write to the closed pipe.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = kafsim()
        .args([
            "replay",
            &scenario("sarama-waitforall-not-idempotent.toml"),
            "--seed",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("kafsim replay"), "{first}");
    // The reader is dropped here: the rest of the story goes to a closed pipe.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(13),
        "ended by SIGPIPE: {:?}",
        out.status
    );
}
