//! The public API end to end: a Recorder fed like the simulator feeds it, then a report
//! directory written, read back and checked.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use kafsim_reports::{
    render_text, write_report, BenchResult, Recorder, ReportError, Sweep, REPORT_MARKER,
};

const MS: u64 = 1_000_000;

fn scratch(test: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("kafsim-reports-it-{test}-{}", std::process::id()));
    if path.exists() {
        fs::remove_dir_all(&path).unwrap();
    }
    fs::create_dir_all(&path).unwrap();
    path
}

/// 4 s at 1000 records/s of 512 bytes; acks slow down after a crash at 2 s.
fn run(workload: &str, base_latency_ms: u64) -> BenchResult {
    let mut recorder = Recorder::new(Duration::from_secs(1));
    for i in 0..4_000u64 {
        let sent = i * MS;
        let slow = if (2_000..2_200).contains(&i) { 150 } else { 0 };
        let acked = sent + (base_latency_ms + slow + i % 3) * MS;
        recorder.on_publish(sent, acked, 512);
        recorder.on_consume(sent, acked + 2 * MS, 512);
        if i % 100 == 0 {
            recorder.on_backlog(sent, slow * 10);
        }
    }
    recorder.on_fault(2_000 * MS, "crash broker-0");
    recorder.on_fault(2_150 * MS, "restart broker-0");
    recorder.finish(workload, "default", Duration::from_secs(4))
}

fn sweep() -> Sweep {
    let mut sweep = Sweep::default();
    for (linger, base) in [("0", 2), ("5", 6), ("20", 21)] {
        sweep.push(
            vec![("linger.ms".into(), linger.into())],
            run("sweep", base),
        );
    }
    sweep
}

#[test]
fn a_report_holds_html_json_markdown_and_the_marker() {
    let root = scratch("files");
    let dir = root.join("out");
    let sweep = sweep();
    write_report(&dir, &[run("single", 2)], Some(&sweep)).unwrap();

    let html = fs::read_to_string(dir.join("index.html")).unwrap();
    let runs = 1 + sweep.points.len();
    assert_eq!(
        html.matches("<svg").count(),
        runs * 5 + 3,
        "5 charts a run with consumers (throughput, publish latency, end-to-end latency, \
         backlog, p99 per second), 3 for the sweep"
    );
    assert!(
        html.contains("crash broker-0"),
        "fault labels are on the charts"
    );
    for fetch in ["src=", "href=\"http", "@import", "url(", "<script", "<link"] {
        assert!(!html.contains(fetch), "index.html contains {fetch}");
    }

    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["runs"][0]["workload"], "single");
    assert_eq!(json["sweep"]["points"].as_array().unwrap().len(), 3);
    assert_eq!(json["runs"][0]["faults"][1]["label"], "restart broker-0");

    let markdown = fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(markdown.contains("## Sweep over linger.ms"));
    assert!(markdown.contains("## sweep on default (linger.ms=20)"));
    assert!(dir.join(REPORT_MARKER).is_file());
    fs::remove_dir_all(root).unwrap();
}

#[test]
fn the_same_results_give_the_same_bytes() {
    let root = scratch("deterministic");
    let sweep = sweep();
    write_report(&root.join("a"), &[run("single", 2)], Some(&sweep)).unwrap();
    write_report(&root.join("b"), &[run("single", 2)], Some(&sweep)).unwrap();
    for file in ["index.html", "results.json", "summary.md"] {
        let a = fs::read(root.join("a").join(file)).unwrap();
        let b = fs::read(root.join("b").join(file)).unwrap();
        assert!(a == b, "{file} differs between identical runs");
    }
    fs::remove_dir_all(root).unwrap();
}

#[test]
fn a_foreign_directory_is_refused_with_a_message_naming_it() {
    let root = scratch("foreign");
    fs::write(root.join("thesis.tex"), "years of work").unwrap();
    let error = write_report(&root, &[run("single", 2)], None).unwrap_err();
    assert!(matches!(error, ReportError::ForeignDirectory(_)));
    let message = error.to_string();
    assert!(message.contains(&root.display().to_string()), "{message}");
    assert_eq!(
        fs::read_to_string(root.join("thesis.tex")).unwrap(),
        "years of work"
    );
    fs::remove_dir_all(root).unwrap();
}

#[test]
fn text_summary_counts_only_post_warmup_records() {
    let text = render_text(&run("single", 2));
    // 3000 of the 4000 records were sent after the 1 s warm-up, over 3 s: 1000 records/s.
    assert!(
        text.starts_with("3000 records sent, 1000.0 records/sec (0.49 MB/sec), "),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3);
}
