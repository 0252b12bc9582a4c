//! `kafsim list` end to end: every library scenario is shown with its description, sorted by
//! file name, and a file that does not parse gives its error on stderr and exit status 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kafsim_list(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kafsim"))
        .args(["list", "--dir"])
        .arg(dir)
        .output()
        .expect("kafsim runs")
}

fn library() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
}

#[test]
fn lists_every_library_scenario_with_its_description() {
    let out = kafsim_list(&library());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = kafsim_sim::scenario::library_files(&library()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), files.len(), "one line per file:\n{stdout}");
    for (file, line) in files.iter().zip(&lines) {
        let s = kafsim_sim::scenario::load(file).unwrap();
        assert!(line.starts_with(&s.name), "{line} starts with {}", s.name);
        let summary = s.description.split(". ").next().unwrap();
        assert!(line.contains(summary), "{line} shows the description");
    }
}

#[test]
fn default_dir_is_the_library() {
    let out = Command::new(env!("CARGO_BIN_EXE_kafsim"))
        .arg("list")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("kafsim runs");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, kafsim_list(&library()).stdout);
}

#[test]
fn a_bad_file_is_reported_and_exits_2() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_list_bad");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let good = "name = \"good\"\ndescription = \"Fine. More text.\"\n[cluster]\nbrokers = 1\n";
    std::fs::write(dir.join("a-good.toml"), good).unwrap();
    let bad = "name = \"bad\"\n[cluster]\nbrokers = 1\nbrokerz = 2\n";
    std::fs::write(dir.join("b-bad.toml"), bad).unwrap();
    let out = kafsim_list(&dir);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {stdout} stderr: {stderr}"
    );
    assert_eq!(stdout, "good  Fine.\n");
    assert!(
        stderr.contains("b-bad.toml:4:1: cluster.brokerz: unknown key `brokerz`"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: did you mean `brokers`?"), "{stderr}");
}

#[test]
fn a_missing_dir_exits_2() {
    let out = kafsim_list(Path::new("/nonexistent/kafsim-scenarios"));
    assert_eq!(out.status.code(), Some(2));
}
