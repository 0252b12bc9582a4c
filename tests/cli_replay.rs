//! `kafsim replay`: the story of a violated record, told with names, on one screen, and the
//! structured trace formats (`--format json`, `--format perfetto`).

use std::process::Command;

fn kafsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kafsim"))
}

fn scenario(name: &str) -> String {
    format!("{}/scenarios/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `kafsim replay scenarios/commit-before-process.toml --seed 1`: stdout and exit status.
fn replay_commit_before_process(extra: &[&str]) -> (String, Option<i32>) {
    let out = kafsim()
        .args([
            "replay",
            &scenario("commit-before-process.toml"),
            "--seed",
            "1",
        ])
        .args(extra)
        .output()
        .unwrap();
    (String::from_utf8(out.stdout).unwrap(), out.status.code())
}

/// The indented story under the first violation of `kind`.
fn first_story<'t>(text: &'t str, kind: &str) -> Vec<&'t str> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&format!("- {kind} ")));
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
    // The send comes first, the poll before its mark and commit, the crash after the commit
    // (the record was marked and committed, not processed), the resume last.
    assert!(at[0] < at[5] && at[5] < at[6] && at[6] < at[7], "{story:#?}");
    assert!(at[7] < at[8] && at[8] < at[9], "{story:#?}");
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
