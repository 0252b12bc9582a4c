//! `kafsim run --shard I/N --json` and `kafsim merge` (DESIGN §8): a shard's file says which
//! seeds it ran, and merging every shard gives exactly the whole campaign's JSON and JUnit
//! (wall-clock fields aside); incomplete or mixed shard sets are refused with exit status 2.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kafsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kafsim"))
}

/// A library scenario whose seeds lose records often (so the merge has failures to merge).
fn scenario() -> String {
    format!(
        "{}/scenarios/acks1-leader-crash.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kafsim-cli-merge-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    let out = kafsim().args(args).output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "kafsim {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn without_wall_clock(mut v: Value) -> Value {
    v["stats"]["wall_seconds"] = Value::Null;
    v
}

/// JUnit minus its `time` attributes (wall clock).
fn junit_without_time(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find(" time=\"") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 7..];
        rest = &after[after.find('"').unwrap() + 1..];
    }
    out.push_str(rest);
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn merged_shards_are_exactly_the_whole_campaign() {
    let dir = scratch("equal");
    let sc = scenario();
    let (whole, whole_xml) = (dir.join("whole.json"), dir.join("whole.xml"));
    let out = run(&[
        "run",
        &sc,
        "--seeds",
        "7",
        "--no-progress",
        "--json",
        s(&whole),
        "--junit",
        s(&whole_xml),
    ]);
    let whole_code = out.status.code();
    let mut shards = Vec::new();
    for i in 0..3 {
        let path = dir.join(format!("shard-{i}.json"));
        run(&[
            "run",
            &sc,
            "--seeds",
            "7",
            "--shard",
            &format!("{i}/3"),
            "--no-progress",
            "--json",
            s(&path),
        ]);
        shards.push(path);
    }

    // A shard claims only what it ran.
    let one = read_json(&shards[1]);
    assert_eq!(one["shard"], "1/3");
    assert_eq!(one["seed_list"], serde_json::json!([2, 5]));
    assert_eq!(one["seeds"], 2);
    assert!(one.get("first_seed").is_none(), "{one}");

    let (merged, merged_xml) = (dir.join("merged.json"), dir.join("merged.xml"));
    // Shards in any order.
    let out = kafsim()
        .args(["merge", s(&shards[2]), s(&shards[0]), s(&shards[1])])
        .args(["--json", s(&merged), "--junit", s(&merged_xml)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), whole_code, "{out:?}");
    let whole_doc = read_json(&whole);
    assert!(
        !whole_doc["failed_seeds"].as_array().unwrap().is_empty(),
        "the scenario should lose records within 7 seeds: {whole_doc}"
    );
    assert_eq!(
        without_wall_clock(read_json(&merged)),
        without_wall_clock(whole_doc.clone())
    );
    assert_eq!(
        junit_without_time(&merged_xml),
        junit_without_time(&whole_xml)
    );
    // The summary printed by merge has the whole campaign's numbers.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "7 seeds run, {} failed",
            whole_doc["failed_seeds"].as_array().unwrap().len()
        )),
        "{stdout}"
    );

    // JUnit: one testcase per seed, one failure per failing seed naming its kinds and the
    // replay command.
    let xml = std::fs::read_to_string(&whole_xml).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 7);
    let failed = whole_doc["failed_seeds"].as_array().unwrap();
    assert_eq!(xml.matches("<failure ").count(), failed.len());
    let seed = failed[0].as_u64().unwrap();
    assert!(
        xml.contains(&format!("message=\"seed {seed}: lost-write\"")),
        "{xml}"
    );
    assert!(xml.contains(&format!(
        "reproduce: kafsim replay {sc} --seed {seed}</failure>"
    )));
}

#[test]
fn incomplete_or_mixed_shards_are_refused_and_nothing_is_written() {
    let dir = scratch("refused");
    let sc = format!("{}/tests/fixtures/tiny.toml", env!("CARGO_MANIFEST_DIR"));
    let path = |name: &str| dir.join(name);
    for (i, n) in [(0, 2), (1, 2), (0, 3)] {
        run(&[
            "run",
            &sc,
            "--seeds",
            "3",
            "--shard",
            &format!("{i}/{n}"),
            "--no-progress",
            "--json",
            s(&path(&format!("{i}-of-{n}.json"))),
        ]);
    }
    run(&[
        "run",
        &sc,
        "--seeds",
        "3",
        "--no-progress",
        "--json",
        s(&path("whole.json")),
    ]);
    std::fs::write(path("junk.json"), "{\"scenario\": 3}").unwrap();
    let out = path("out.json");
    for (files, expect) in [
        (vec!["0-of-2.json"], "shards missing: 1/2"),
        (
            vec!["0-of-2.json", "0-of-2.json", "1-of-2.json"],
            "given twice",
        ),
        (
            vec!["0-of-2.json", "1-of-2.json", "0-of-3.json"],
            "of 2 shards",
        ),
        (vec!["whole.json"], "is not a shard"),
        (vec!["junk.json"], "junk.json: line 1"),
        (vec!["nonexistent.json"], "cannot read"),
    ] {
        let o = kafsim()
            .arg("merge")
            .args(files.iter().map(|f| path(f)))
            .args(["--json", s(&out)])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{files:?}: {stderr}");
        assert!(stderr.contains(expect), "{files:?}: {stderr}");
        assert!(!out.exists(), "{files:?} wrote {}", out.display());
    }
    // The complete set merges.
    let o = kafsim()
        .args(["merge", s(&path("1-of-2.json")), s(&path("0-of-2.json"))])
        .args(["--json", s(&out)])
        .output()
        .unwrap();
    assert!(matches!(o.status.code(), Some(0 | 1)), "{o:?}");
    assert_eq!(
        without_wall_clock(read_json(&out)),
        without_wall_clock(read_json(&path("whole.json")))
    );
}
