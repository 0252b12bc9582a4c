//! The CI examples of docs/ci (a GitHub Actions matrix, a Kubernetes Indexed Job) are valid
//! YAML with the parts docs/ci/README.md promises, and their kafsim commands, run locally
//! shard by shard with the substitutions the engines make, merge into exactly the unsharded
//! campaign. Fewer seeds than the examples ask for, to keep the test short.

use serde::Deserialize;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Seeds the test runs in place of the examples' SEEDS.
const TEST_SEEDS: &str = "5";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kafsim_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_kafsim"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kafsim-ci-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn yaml_docs(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join("docs/ci").join(name)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect()
}

/// Run `script` with `sh -c` in `dir`, kafsim first on the PATH; its exit status.
fn sh(script: &str, dir: &Path, env: &BTreeMap<String, String>) -> i32 {
    let path = format!(
        "{}:{}",
        kafsim_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .envs(env)
        .env("PATH", path)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "`{script}` exited {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    code
}

fn json(path: &Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["stats"]["wall_seconds"] = serde_json::Value::Null;
    v
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

fn string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// The unsharded campaign's JSON and exit status.
fn whole(dir: &Path, scenario: &str) -> (serde_json::Value, i32) {
    let out = dir.join("whole.json");
    let code = sh(
        &format!(
            "kafsim run {scenario} --seeds {TEST_SEEDS} --no-progress --json {}",
            out.display()
        ),
        dir,
        &BTreeMap::new(),
    );
    (json(&out), code)
}

#[test]
fn github_actions_matrix_then_merge() {
    let docs = yaml_docs("github-actions.yml");
    assert_eq!(docs.len(), 1);
    let wf = &docs[0];
    let mut env: BTreeMap<String, String> = s(wf, &["env"])
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (string(k), string(v)))
        .collect();
    let shards: u64 = env["SHARDS"].parse().unwrap();
    let matrix: Vec<u64> = s(wf, &["jobs", "shard", "strategy", "matrix", "shard"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(matrix, (0..shards).collect::<Vec<_>>(), "matrix vs SHARDS");
    assert_eq!(
        s(wf, &["jobs", "shard", "strategy", "fail-fast"]).as_bool(),
        Some(false)
    );
    assert_eq!(string(s(wf, &["jobs", "merge", "needs"])), "shard");
    assert!(string(s(wf, &["jobs", "merge", "if"])).contains("!cancelled()"));
    let steps = |job: &str| -> Vec<Value> {
        s(wf, &["jobs", job, "steps"])
            .as_sequence()
            .unwrap()
            .clone()
    };
    // Shard results are uploaded even when the shard found failures.
    let upload = steps("shard")
        .into_iter()
        .find(|st| {
            st["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact"))
        })
        .expect("an upload step");
    assert_eq!(string(&upload["if"]), "always()");
    let kafsim_runs = |job: &str| -> Vec<String> {
        steps(job)
            .iter()
            .filter_map(|st| st["run"].as_str())
            .filter(|r| r.starts_with("kafsim "))
            .map(str::to_string)
            .collect()
    };
    let (shard_runs, merge_runs) = (kafsim_runs("shard"), kafsim_runs("merge"));
    assert_eq!((shard_runs.len(), merge_runs.len()), (1, 1));

    // Run it: the checkout is the repository (its scenarios/), kafsim is on the PATH.
    let dir = scratch("gha");
    std::os::unix::fs::symlink(repo().join("scenarios"), dir.join("scenarios")).unwrap();
    env.insert("SEEDS".into(), TEST_SEEDS.into());
    for i in &matrix {
        let script = shard_runs[0].replace("${{ matrix.shard }}", &i.to_string());
        assert!(!script.contains("${{"), "{script}");
        sh(&script, &dir, &env);
    }
    let merged_code = sh(&merge_runs[0], &dir, &env);
    let (whole, whole_code) = whole(&dir, &env["SCENARIO"]);
    assert_eq!(merged_code, whole_code);
    assert_eq!(json(&dir.join("campaign.json")), whole);
    assert!(dir.join("campaign.xml").is_file());
}

#[test]
fn kubernetes_indexed_job_then_merge_job() {
    let docs = yaml_docs("kubernetes-indexed-job.yml");
    let kind = |k: &str| -> &Value {
        docs.iter()
            .find(|d| string(&d["kind"]) == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let config_map = kind("ConfigMap");
    let _pvc = kind("PersistentVolumeClaim");
    let job = kind("Job");
    assert_eq!(string(s(job, &["apiVersion"])), "batch/v1");
    let spec = &job["spec"];
    assert_eq!(string(&spec["completionMode"]), "Indexed");
    let completions = spec["completions"].as_u64().unwrap();
    assert_eq!(spec["parallelism"].as_u64(), Some(completions));
    assert!(spec["backoffLimitPerIndex"].as_u64().unwrap() >= 1);
    assert_eq!(
        string(s(spec, &["template", "spec", "restartPolicy"])),
        "Never"
    );
    let container = &s(spec, &["template", "spec", "containers"])[0];
    // Exit status 1 (a failing seed found) fails the index without a retry.
    let rules = s(spec, &["podFailurePolicy", "rules"])
        .as_sequence()
        .unwrap();
    assert!(
        rules.iter().any(|r| string(&r["action"]) == "FailIndex"
            && string(s(r, &["onExitCodes", "operator"])) == "In"
            && string(s(r, &["onExitCodes", "containerName"])) == string(&container["name"])
            && s(r, &["onExitCodes", "values"])
                .as_sequence()
                .unwrap()
                .contains(&Value::from(1))),
        "{rules:?}"
    );
    let mut env: BTreeMap<String, String> = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (string(&e["name"]), string(&e["value"])))
        .collect();
    assert_eq!(
        env["SHARDS"],
        completions.to_string(),
        "completions vs SHARDS"
    );
    let command: Vec<String> = container["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(string)
        .collect();
    assert_eq!(command[..2], ["sh".to_string(), "-c".to_string()]);

    // The volumes, locally: the ConfigMap's files and a results directory.
    let dir = scratch("k8s");
    let mounts = |c: &Value| -> Vec<String> {
        c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|m| string(&m["mountPath"]))
            .collect()
    };
    let local = |script: &str, mounts: &[String]| -> String {
        let mut script = script.to_string();
        for m in mounts {
            let here = dir.join(m.trim_start_matches('/'));
            std::fs::create_dir_all(&here).unwrap();
            script = script.replace(&format!("{m}/"), &format!("{}/", here.display()));
        }
        script
    };
    let scenario_dir = dir.join("scenarios");
    std::fs::create_dir_all(&scenario_dir).unwrap();
    let mut scenario = String::new();
    for (name, text) in config_map["data"].as_mapping().unwrap() {
        std::fs::write(scenario_dir.join(string(name)), string(text)).unwrap();
        scenario = scenario_dir.join(string(name)).display().to_string();
    }
    let shard_script = local(&command[2], &mounts(container));
    env.insert("SEEDS".into(), TEST_SEEDS.into());
    for i in 0..completions {
        env.insert("JOB_COMPLETION_INDEX".into(), i.to_string());
        sh(&shard_script, &dir, &env);
    }

    let merge_docs = yaml_docs("kubernetes-merge-job.yml");
    assert_eq!(merge_docs.len(), 1);
    let merge = &merge_docs[0];
    assert_eq!(string(&merge["kind"]), "Job");
    let mc = &s(merge, &["spec", "template", "spec", "containers"])[0];
    let mcommand: Vec<String> = mc["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(string)
        .collect();
    assert_eq!(mcommand[..2], ["sh".to_string(), "-c".to_string()]);
    let merged_code = sh(&local(&mcommand[2], &mounts(mc)), &dir, &BTreeMap::new());
    let (whole, whole_code) = whole(&dir, &scenario);
    assert_eq!(merged_code, whole_code);
    assert_eq!(json(&dir.join("results/campaign.json")), whole);
    assert!(dir.join("results/campaign.xml").is_file());
}
