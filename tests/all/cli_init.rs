//! `kafsim init` (DESIGN §8): a starter scenario per client library that parses and runs
//! green; an existing file is never overwritten.

use std::path::PathBuf;
use std::process::Command;

fn kafsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kafsim"))
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kafsim-cli-init-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_clients_starter_runs_green() {
    let dir = scratch("green");
    for client in ["java", "sarama", "kafka-go", "librdkafka"] {
        let file = dir.join(format!("{client}.toml"));
        let out = kafsim()
            .args(["init", "--client", client])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{client}: {out:?}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(&format!("client = \"{client}\"")), "{text}");
        let run = kafsim()
            .arg("run")
            .arg(&file)
            .args(["--seeds", "3", "--no-progress"])
            .output()
            .unwrap();
        assert_eq!(
            run.status.code(),
            Some(0),
            "{client}: {}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
    }
}

#[test]
fn an_existing_file_is_not_overwritten_and_a_bad_client_is_refused() {
    let dir = scratch("exists");
    let file = dir.join("mine.toml");
    std::fs::write(&file, "# my own work\n").unwrap();
    let out = kafsim().arg("init").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not overwriting"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# my own work\n");

    let other = dir.join("other.toml");
    let out = kafsim()
        .args(["init", "--client", "confluent-kafka-go"])
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!other.exists());

    let missing_dir = dir.join("no-such-dir").join("x.toml");
    let out = kafsim().arg("init").arg(&missing_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
