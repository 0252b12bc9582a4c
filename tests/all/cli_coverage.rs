//! Campaign coverage in `kafsim run`: the summary and the JSON `coverage` field say how often
//! each requested fault kind fired and affected clients, which states the runs reached, and
//! warn when a requested fault never fired; the result does not depend on `--jobs`.

use std::process::Command;

fn kafsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kafsim"))
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `kafsim run FIXTURE --json ...`: (stdout, JSON).
fn run(name: &str, jobs: &str) -> (String, serde_json::Value) {
    let dir = std::env::temp_dir().join(format!(
        "kafsim-cli-coverage-{name}-{jobs}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let out = kafsim()
        .args([
            "run",
            &fixture(name),
            "--no-progress",
            "--jobs",
            jobs,
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (String::from_utf8(out.stdout).unwrap(), doc)
}

#[test]
fn a_campaign_whose_requested_faults_never_fired_says_so_even_when_green() {
    let (text, doc) = run("tiny-idle-faults.toml", "1");
    assert_eq!(doc["failed_seeds"], serde_json::json!([]), "green");
    let crash = &doc["coverage"]["faults"]["crash"];
    assert_eq!(
        (crash["fired"].as_u64(), crash["affected_clients"].as_u64()),
        (Some(0), Some(0))
    );
    let warnings = doc["coverage"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.contains("crash was requested but never fired in 2 runs"),
        "{warning}"
    );
    assert!(text.lines().any(|l| l == warning), "printed: {text}");
    assert!(
        text.contains("coverage: faults crash fired 0 (affected clients 0)"),
        "{text}"
    );
}

#[test]
fn coverage_counts_fired_faults_and_states_the_same_with_any_jobs() {
    let (text, doc) = run("tiny.toml", "1");
    let (_, doc2) = run("tiny.toml", "2");
    assert_eq!(doc["coverage"], doc2["coverage"], "independent of --jobs");
    let faults = doc["coverage"]["faults"].as_object().unwrap();
    let kinds: Vec<&str> = faults.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["crash", "partition", "pause"],
        "every requested kind, sorted"
    );
    let fired: u64 = faults.values().map(|f| f["fired"].as_u64().unwrap()).sum();
    assert!(fired > 0, "{faults:?}");
    for f in faults.values() {
        assert!(f["affected_clients"].as_u64() <= f["fired"].as_u64(), "{f}");
    }
    let states = doc["coverage"]["states"].as_object().unwrap();
    for state in [
        "isr-shrunk-to-leader",
        "unclean-election",
        "leader-epoch-bump",
        "rebalance",
        "producer-epoch-bump",
        "truncation-below-hw",
    ] {
        let s = &states[state];
        assert!(
            s["runs"].as_u64().unwrap() <= 4 && s["count"].is_u64(),
            "{state}: {s}"
        );
    }
    // Every summary number is the JSON's.
    let line = text
        .lines()
        .find(|l| l.starts_with("coverage: states "))
        .unwrap();
    let epochs = &states["leader-epoch-bump"];
    assert!(
        line.contains(&format!(
            "leader-epoch-bump {} in {}/4 runs",
            epochs["count"], epochs["runs"]
        )),
        "{line}"
    );
}

/// A scripted fault whose target named no node when it fired (a `leader:` target while every
/// broker is paused) and one whose `duration` ran past the load phase are each a warning,
/// printed and in the JSON (`coverage.warnings`), naming the fault, its time, its target and
/// why; merged shards give the same warnings as the whole campaign.
#[test]
fn scripted_faults_that_did_less_than_asked_are_warnings() {
    let (text, doc) = run("tiny-scripted-misses.toml", "1");
    let warnings: Vec<&str> = (doc["coverage"]["warnings"].as_array().unwrap().iter())
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: scripted partition at 3s ([leader:events/0] -> [producer:0]): \
             leader:events/0 named no node when it fired, in 2 of 2 runs (seed 1: events/0 had \
             no leader at 3000.000ms: broker-0, its leader in the controller's metadata, was \
             paused since 2000.000ms, so the partition cut nothing)",
            "warning: scripted pause at 6s (broker:1) was to last 10s, until 16s, but the load \
             phase ends at 8s: the heal there lifted it early, in 2 of 2 runs (seed 1: it \
             ended at 8000.000ms, 8s early)",
        ]
    );
    for w in &warnings {
        assert!(text.lines().any(|l| l == *w), "printed: {text}");
    }
    let scripted = doc["coverage"]["scripted"].as_object().unwrap();
    assert_eq!(scripted.len(), 2, "{scripted:?}");
    for note in scripted.values() {
        assert_eq!(
            (note["runs"].as_u64(), note["seed"].as_u64()),
            (Some(2), Some(1))
        );
    }

    // The shards of the campaign, merged: the same warnings.
    let dir = std::env::temp_dir().join(format!("kafsim-scripted-misses-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut shards = Vec::new();
    for shard in ["1/2", "0/2"] {
        let json = dir.join(format!("shard{}.json", &shard[..1]));
        let out = kafsim()
            .args([
                "run",
                &fixture("tiny-scripted-misses.toml"),
                "--no-progress",
            ])
            .args(["--shard", shard, "--json"])
            .arg(&json)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        shards.push(json);
    }
    let merged = dir.join("merged.json");
    let out = kafsim()
        .arg("merge")
        .args(&shards)
        .arg("--json")
        .arg(&merged)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    assert_eq!(merged["coverage"]["warnings"], doc["coverage"]["warnings"]);
    let _ = std::fs::remove_dir_all(&dir);
}
