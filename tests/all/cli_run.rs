//! The command-line contract of `run`, `replay` and `check` (DESIGN §6): exit codes, JSON
//! fields, JUnit, shards, and determinism (same seed, same hash; any --jobs, same result).

use std::path::PathBuf;
use std::process::Command;

fn kafsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kafsim"))
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kafsim-cli-run-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_json(args: &[&str], json: &PathBuf) -> serde_json::Value {
    let out = kafsim()
        .args(["run", &fixture("tiny.toml"), "--no-progress", "--json"])
        .arg(json)
        .args(args)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

/// The JSON minus wall-clock fields.
/// `kafsim run --json` of `text` written as `bad.toml` in the scratch folder `test`: it must
/// exit 2 and write no JSON (no partial output); its standard error.
fn refused_run(test: &str, text: &str) -> String {
    let dir = scratch(test);
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, text).unwrap();
    let json = dir.join("out.json");
    let out = kafsim()
        .arg("run")
        .arg(&bad)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!json.exists(), "no partial output");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn deterministic_part(mut v: serde_json::Value) -> serde_json::Value {
    v["stats"]["wall_seconds"] = serde_json::Value::Null;
    v
}

#[test]
fn json_has_the_design_fields_and_jobs_do_not_change_results() {
    let dir = scratch("jobs");
    let one = run_json(&["--seeds", "4", "--jobs", "1"], &dir.join("one.json"));
    let two = run_json(&["--seeds", "4", "--jobs", "2"], &dir.join("two.json"));
    for key in [
        "scenario",
        "first_seed",
        "seeds",
        "failed_seeds",
        "kinds",
        "violations",
        "stats",
    ] {
        assert!(one.get(key).is_some(), "missing {key}");
    }
    for key in [
        "events",
        "records_produced",
        "records_acked",
        "records_consumed",
        "records_failed",
        "records_unknown",
        "catch_up_seconds",
        "peak_lag",
        "produce_rate",
        "consume_rate",
        "sim_seconds",
        "wall_seconds",
    ] {
        assert!(one["stats"].get(key).is_some(), "missing stats.{key}");
    }
    // Per group, by name; the tiny fixture's group reads everything after the heal.
    assert!(
        one["stats"]["peak_lag"]["readers"].as_u64().is_some(),
        "{}",
        one["stats"]
    );
    assert!(
        one["stats"]["catch_up_seconds"].as_f64().is_some(),
        "{}",
        one["stats"]
    );
    assert_eq!(one["seeds"], 4);
    assert!(
        one["stats"]["records_acked"].as_u64().unwrap() > 0,
        "the workload ran"
    );
    assert_eq!(deterministic_part(one), deterministic_part(two));
}

#[test]
fn shards_union_to_the_whole_campaign() {
    let dir = scratch("shards");
    let whole = run_json(&["--seeds", "4"], &dir.join("whole.json"));
    let mut failed: Vec<u64> = Vec::new();
    let mut events = 0;
    for shard in ["0/2", "1/2"] {
        let part = run_json(
            &["--seeds", "4", "--shard", shard],
            &dir.join(format!("{}.json", &shard[..1])),
        );
        assert_eq!(part["seeds"], 2);
        failed.extend(
            part["failed_seeds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_u64().unwrap()),
        );
        events += part["stats"]["events"].as_u64().unwrap();
    }
    failed.sort();
    let whole_failed: Vec<u64> = whole["failed_seeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    assert_eq!(failed, whole_failed);
    assert_eq!(events, whole["stats"]["events"].as_u64().unwrap());
}

#[test]
fn replay_is_byte_identical_and_ends_with_the_trace_hash() {
    let a = kafsim()
        .args(["replay", &fixture("tiny.toml"), "--seed", "3"])
        .output()
        .unwrap();
    let b = kafsim()
        .args(["replay", &fixture("tiny.toml"), "--seed", "3"])
        .output()
        .unwrap();
    assert_eq!(a.stdout, b.stdout);
    let text = String::from_utf8(a.stdout).unwrap();
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("trace-hash: ") && last.len() == "trace-hash: ".len() + 16,
        "{last}"
    );
    let other = kafsim()
        .args(["replay", &fixture("tiny.toml"), "--seed", "4"])
        .output()
        .unwrap();
    assert_ne!(
        String::from_utf8(other.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
        last
    );
}

#[test]
fn junit_is_well_formed_with_one_testcase_per_seed() {
    let dir = scratch("junit");
    let path = dir.join("out.xml");
    let out = kafsim()
        .args([
            "run",
            &fixture("tiny.toml"),
            "--seeds",
            "3",
            "--no-progress",
            "--junit",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)));
    let xml = std::fs::read_to_string(&path).unwrap();
    assert!(xml.starts_with("<?xml"));
    assert_eq!(xml.matches("<testcase ").count(), 3);
    assert_eq!(xml.matches("<testsuite ").count(), 1);
    assert!(xml.trim_end().ends_with("</testsuite>"));
    // Every opened failure is closed and nothing raw leaks into attributes.
    assert_eq!(
        xml.matches("<failure ").count(),
        xml.matches("</failure>").count()
    );
}

#[test]
fn bad_input_exits_2_with_file_line_and_key_and_writes_nothing() {
    let text = std::fs::read_to_string(fixture("tiny.toml"))
        .unwrap()
        .replace("\"min.insync.replicas\" = 2", "\"min.insync.replica\" = 2");
    let err = refused_run("bad", &text);
    assert!(
        err.contains("bad.toml:") && err.contains("cluster.config.min.insync.replica"),
        "{err}"
    );
    assert!(
        err.contains("min.insync.replicas"),
        "a did-you-mean hint: {err}"
    );
    let missing = kafsim()
        .args(["run", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let shard = kafsim()
        .args(["run", &fixture("tiny.toml"), "--shard", "3/2"])
        .output()
        .unwrap();
    assert_eq!(shard.status.code(), Some(2));
    let usage = kafsim().args(["run"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn a_crashed_producers_open_sends_do_not_stall_the_drain() {
    // Each seed crashes the producer at random while it has sends in flight; those sends
    // never get an outcome, yet consumers catch up and the drain ends: no stall.
    let out = kafsim()
        .args([
            "run",
            &fixture("tiny-producer-crash.toml"),
            "--seeds",
            "6",
            "--no-progress",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("stall"), "{text}");
}

#[test]
fn a_stall_explains_itself_in_replay() {
    let dir = scratch("stall");
    // The tiny fixture with a drain bound too short for anyone to catch up.
    let text = std::fs::read_to_string(fixture("tiny.toml"))
        .unwrap()
        .replace("drain = \"60s\"", "drain = \"1ms\"")
        .replace("random = true", "random = false");
    let file = dir.join("short.toml");
    std::fs::write(&file, text).unwrap();
    let out = kafsim()
        .args(["replay", file.to_str().unwrap(), "--seed", "1"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("- stall at"), "{shown}");
    assert!(shown.contains("drain bound of 1ms"), "{shown}");
    assert!(
        shown.contains("    readers: events/"),
        "the group, indented: {shown}"
    );
    assert!(shown.contains("readers/0: "), "its member by role: {shown}");
    assert!(shown.contains("records failed 0 / unknown"), "{shown}");
    assert!(shown.contains("group readers: read"), "{shown}");
}

#[test]
fn a_bad_producer_key_exits_2_with_its_line_key_and_hint() {
    let text = std::fs::read_to_string(fixture("tiny.toml"))
        .unwrap()
        .replace(
            "keys = 10",
            "keys = 10\n[producers.config]\non_error = \"drop\"",
        );
    let line = text.lines().position(|l| l.contains("on_error")).unwrap() + 1;
    let err = refused_run("bad-on-error", &text);
    assert!(err.contains(&format!("bad.toml:{line}:")), "{err}");
    assert!(err.contains("producers[0].config.on_error"), "{err}");
    assert!(err.contains("hint") && err.contains("Errors()"), "{err}");
}

/// The number after `label` in `text` (the summary's counters).
fn number_after(text: &str, label: &str) -> u64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} not in {text}"));
    text[at + label.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?} in {text}"))
}

/// Runs `kafsim run FILE --seeds N --json` and returns the summary and the JSON stats.
fn run_counted(file: &str, seeds: &str, json: &PathBuf) -> (String, serde_json::Value) {
    let out = kafsim()
        .args(["run", file, "--seeds", seeds, "--no-progress", "--json"])
        .arg(json)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    (shown, doc["stats"].clone())
}

/// Failed and unknown sends and the duplicates a dedupe sink refused are counted in the text
/// summary and in `--json` stats, with the same numbers (issue 13).
#[test]
fn failed_sends_and_refused_sink_writes_are_in_the_summary_and_the_json() {
    let dir = scratch("counted");
    // sarama gives a send up after 3 retries: with min.insync.replicas = 3 and a follower
    // down for 5 s, sends fail.
    let text = std::fs::read_to_string(fixture("tiny.toml"))
        .unwrap()
        .replace("\"min.insync.replicas\" = 2", "\"min.insync.replicas\" = 3")
        .replace("client = \"java\"\ntopic", "client = \"sarama\"\ntopic")
        .replace(
            "keys = 10\n",
            "keys = 10\n[producers.config]\nacks = \"all\"\n",
        )
        .replace(
            "random = true\nkinds = [\"crash\", \"partition\", \"pause\"]\nmean_interval = \"2s\"",
            "[[faults.schedule]]\nat = \"1s\"\naction = \"crash\"\n\
             target = \"follower:events/0\"\nduration = \"5s\"",
        );
    let file = dir.join("counted.toml");
    std::fs::write(&file, text).unwrap();
    let json = dir.join("out.json");
    let (shown, stats) = run_counted(file.to_str().unwrap(), "2", &json);
    let failed = number_after(&shown, "records failed ");
    let unknown = number_after(&shown, " / unknown ");
    assert_eq!(stats["records_failed"].as_u64(), Some(failed), "{shown}");
    assert_eq!(stats["records_unknown"].as_u64(), Some(unknown), "{shown}");
    assert!(failed > 0, "sends failed with a follower down: {shown}");
    // The library's dedupe group with a member that dies in the middle of a poll batch (20 ms
    // a record: a backlog, so batches take seconds): the batch's records it had written are
    // delivered again to the member that takes its partition over, and the database refuses
    // them.
    let library = std::fs::read_to_string(format!(
        "{}/scenarios/dedupe-sink-exactly-once.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let random = "[faults]\nrandom = true\nkinds = [\"consumer-crash\", \"crash\", \"pause\"]\nmean_interval = \"10s\"\n";
    assert!(
        library.contains(random),
        "the library scenario changed: {library}"
    );
    let text = library
        .replace("process_time = \"1ms..3ms\"", "process_time = \"20ms\"")
        .replace(
            random,
            "[faults]\n[[faults.schedule]]\nat = \"10s\"\naction = \"consumer-crash\"\n\
             target = \"consumer:billing/0\"\nduration = \"5s\"\n",
        );
    let file = dir.join("redelivered.toml");
    std::fs::write(&file, text).unwrap();
    let (shown, stats) = run_counted(file.to_str().unwrap(), "1", &json);
    let refused = number_after(&shown, "sink writes refused as duplicates ");
    assert_eq!(stats["records_refused"].as_u64(), Some(refused), "{shown}");
    assert!(refused > 0, "redeliveries were refused: {shown}");
}

/// One seed's summary prints the process's peak memory and that peak divided by the seed's
/// records, the same records the summary counts; a campaign of several seeds only the peak
/// (several seeds' state shares it).
#[test]
fn the_summary_prints_peak_memory_and_bytes_per_record_of_one_seed() {
    let dir = scratch("memory");
    let json = dir.join("out.json");
    let (shown, stats) = run_counted(&fixture("tiny.toml"), "1", &json);
    if !std::path::Path::new("/proc/self/status").exists() {
        assert!(!shown.contains("peak memory"), "{shown}");
        return;
    }
    let mib = number_after(&shown, "peak memory ");
    let per_record = number_after(&shown, " MiB, ");
    let records = stats["records_produced"].as_u64().unwrap();
    assert_eq!(number_after(&shown, "records produced "), records);
    assert!(records > 0 && mib > 0, "{shown}");
    // The printed MiB is the same peak rounded: bytes per record × records lies within it.
    let peak = per_record * records;
    assert!(
        peak.abs_diff(mib << 20) <= (1 << 20) + records,
        "{per_record} B × {records} records vs {mib} MiB: {shown}"
    );
    assert!(shown.contains("bytes per simulated record"), "{shown}");
    let (shown, _) = run_counted(&fixture("tiny.toml"), "2", &json);
    assert!(shown.contains("peak memory "), "{shown}");
    assert!(!shown.contains("bytes per simulated record"), "{shown}");
}

#[test]
fn a_producer_far_below_its_rate_is_named_with_why_and_one_at_its_rate_is_not() {
    let run = |name: &str, json: &PathBuf| {
        let out = kafsim()
            .args([
                "run",
                &fixture(name),
                "--seeds",
                "1",
                "--no-progress",
                "--json",
            ])
            .arg(json)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), doc)
    };
    let dir = scratch("pace");
    // A kafka-go Writer without Async: one record per BatchTimeout (1 s).
    let (text, doc) = run("tiny-kafka-go-sync.toml", &dir.join("sync.json"));
    let p = &doc["stats"]["producers"]["producer-0"];
    let (sent, asked) = (p["sent"].as_u64().unwrap(), p["asked"].as_u64().unwrap());
    // 200/s from its first send (a random instant of its first second) to the end at 6 s.
    assert!((1000..=1200).contains(&asked), "200/s over 5 to 6 s: {p}");
    assert!(sent * 2 < asked, "{p}");
    let line = format!("warning: producer-0 made {sent} of the {asked} sends its rate asked for");
    let warning = text.lines().find(|l| l.starts_with(&line));
    assert!(
        warning
            .is_some_and(|l| l.contains("synchronously") && l.contains("BatchTimeout (1000 ms)")),
        "{text}"
    );
    // A Java producer keeps up with the same rate: no warning.
    let (text, doc) = run("tiny.toml", &dir.join("async.json"));
    let p = &doc["stats"]["producers"]["producer-0"];
    assert!(
        p["sent"].as_u64().unwrap() * 2 >= p["asked"].as_u64().unwrap(),
        "{p}"
    );
    assert!(!text.contains("sends its rate asked for"), "{text}");
}
