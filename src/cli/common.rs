//! What `run`, `replay` and `check` share: loading a scenario into engine configurations
//! (bad input is exit status 2 before anything runs), the default parallelism, and how a
//! run's violations are summarised.

use kafsim_sim::runner::{self, Prepared};
use kafsim_sim::scenario;
use kafsim_sim::violation::{Violation, ViolationKind};
use std::collections::BTreeMap;
use std::path::Path;

/// Load and prepare a scenario; on error print it (file, line, key, hint) and give exit 2.
pub fn load(path: &Path) -> Result<Prepared, u8> {
    let loaded = scenario::load(path).and_then(runner::prepare);
    loaded.map_err(|e| {
        eprintln!("{e}");
        super::EXIT_BAD_INPUT
    })
}

/// `--jobs` default: every core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The violations of a run that count as failures in this scenario (not in `allow`).
pub fn failures<'a>(prepared: &Prepared, violations: &'a [Violation]) -> Vec<&'a Violation> {
    violations
        .iter()
        .filter(|v| runner::is_failure(&prepared.scenario, v.kind))
        .collect()
}

/// Count per kind, in DESIGN order.
pub fn count_kinds<'a>(
    violations: impl IntoIterator<Item = &'a Violation>,
) -> BTreeMap<ViolationKind, u64> {
    let mut counts = BTreeMap::new();
    for v in violations {
        *counts.entry(v.kind).or_insert(0) += 1;
    }
    counts
}

/// "lost-write x3, unseen x1"
pub fn describe_kinds(counts: &BTreeMap<ViolationKind, u64>) -> String {
    counts
        .iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The exact command that reproduces one seed.
pub fn repro(path: &Path, seed: u64) -> String {
    format!("kafsim replay {} --seed {seed}", path.display())
}

/// Parse `--shard I/N`.
pub fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("--shard {text}: expected I/N, e.g. 0/4"))?;
    let i: u64 = i
        .trim()
        .parse()
        .map_err(|_| format!("--shard {text}: I is not a number"))?;
    let n: u64 = n
        .trim()
        .parse()
        .map_err(|_| format!("--shard {text}: N is not a number"))?;
    if n == 0 || i >= n {
        return Err(format!("--shard {text}: need 0 <= I < N"));
    }
    Ok((i, n))
}

/// Write `contents` to `path` through a temporary sibling and a rename, so that an
/// interrupted run never leaves a half-written file.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("kafsim-tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// Fail early (exit 2) when an output file cannot be written: its directory must exist.
pub fn check_output(path: &Path, flag: &str) -> Result<(), u8> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        eprintln!(
            "kafsim: {flag} {}: directory {} does not exist",
            path.display(),
            dir.display()
        );
        return Err(super::EXIT_BAD_INPUT);
    }
    if path.is_dir() {
        eprintln!("kafsim: {flag} {}: is a directory", path.display());
        return Err(super::EXIT_BAD_INPUT);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_syntax() {
        assert_eq!(parse_shard("1/4"), Ok((1, 4)));
        assert!(parse_shard("4/4").is_err());
        assert!(parse_shard("x/2").is_err());
        assert!(parse_shard("3").is_err());
    }
}
