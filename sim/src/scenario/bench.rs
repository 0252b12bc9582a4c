//! The `[bench]` section: phases of a benchmark workload beyond the steady state.
//!
//! `backlog = "3s"` (or a size, `"2GB"`) stages OpenMessaging Benchmark's backlog test
//! (`consumerBacklogSizeGB`, `WorkloadGenerator.buildAndDrainBacklog`): producers write with
//! every consumer paused (members join their groups but fetch nothing), then the consumers
//! resume and read what piled up. `producers_after_backlog` says whether producers keep
//! writing while the backlog is read (`"continue"`, OMB's way) or stop (`"stop"`: a pure read
//! of a topic that is no longer written, as Kreps's 2014 consumer rows read theirs).

use super::raw::{RawBench, S};
use super::validate::{Check, R};
use super::{Rate, Scenario};
use std::time::Duration;

/// Size units a backlog may be given in, longest first: decimal (`KB`, `MB`, `GB`) and binary
/// (`KiB`, `MiB`, `GiB`; OMB's `consumerBacklogSizeGB` counts 1024^3 bytes).
const SIZE_UNITS: [(&str, f64); 7] = [
    ("KiB", 1024.0),
    ("MiB", 1_048_576.0),
    ("GiB", 1_073_741_824.0),
    ("KB", 1e3),
    ("MB", 1e6),
    ("GB", 1e9),
    ("B", 1.0),
];

const BACKLOG_HINT: &str =
    "write a fill time such as \"3s\" or a size such as \"2GB\" / \"512MiB\" (value bytes)";

/// What producers do once the backlog is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AfterBacklog {
    /// Keep producing at their rate while the consumers read the backlog (OMB).
    #[default]
    Continue,
    /// Stop producing when the consumers resume.
    Stop,
}

/// A backlog phase: consumers paused for `fill`, then reading.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backlog {
    /// How long producers write before the consumers resume (a size is turned into a time at
    /// the producers' configured rates).
    pub fill: Duration,
    /// The size asked for, in value bytes, when the file gave one.
    pub size_bytes: Option<u64>,
    pub producers: AfterBacklog,
}

/// `[bench]`: bench-only phases (empty for a plain steady-state run).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct BenchSpec {
    pub backlog: Option<Backlog>,
}

/// Parse "2GB", "512MiB", "1.5GB" into bytes; `None` when `text` carries no size unit.
pub fn parse_size(text: &str) -> Option<Result<u64, String>> {
    let trimmed = text.trim();
    let (unit, scale) = SIZE_UNITS
        .iter()
        .find(|(unit, _)| trimmed.ends_with(unit))?;
    let number = trimmed[..trimmed.len() - unit.len()].trim();
    Some(match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * scale <= 1e15 => Ok((v * scale).round() as u64),
        Ok(_) => Err(format!(
            "\"{text}\": a backlog size must be above 0 and at most 1 PB"
        )),
        Err(_) => Err(format!("\"{text}\" is not a size")),
    })
}

pub fn bench(check: &Check<'_>, raw: &RawBench, scenario: &Scenario) -> R<BenchSpec> {
    let Some(value) = &raw.backlog else {
        if let Some(p) = &raw.producers_after_backlog {
            return Err(check.err_hint(
                p,
                "bench.producers_after_backlog",
                "only means something with a backlog",
                "add `backlog = \"3s\"` to [bench], or remove this key",
            ));
        }
        return Ok(BenchSpec::default());
    };
    const KEY: &str = "bench.backlog";
    let producers = match &raw.producers_after_backlog {
        None => AfterBacklog::Continue,
        Some(p) => check.choice(
            p,
            "bench.producers_after_backlog",
            &[
                ("continue", AfterBacklog::Continue),
                ("stop", AfterBacklog::Stop),
            ],
        )?,
    };
    if scenario.consumer_groups.is_empty() {
        return Err(check.err_hint(
            value,
            KEY,
            "a backlog needs consumers to pause and resume",
            "add a [[consumer_groups]] entry, or remove `backlog`",
        ));
    }
    let text = match value.get_ref() {
        toml::Value::String(s) => s.clone(),
        other => {
            return Err(check.err_hint(
                value,
                KEY,
                format!(
                    "expected a string, found {}",
                    super::validate::describe(other)
                ),
                BACKLOG_HINT,
            ))
        }
    };
    let (fill, size_bytes) = match parse_size(&text) {
        Some(size) => {
            let bytes = size.map_err(|m| check.err_hint(value, KEY, m, BACKLOG_HINT))?;
            (fill_time(check, value, scenario, bytes)?, Some(bytes))
        }
        None => (
            check
                .duration(value, KEY)
                .map_err(|e| e.with_hint(BACKLOG_HINT))?,
            None,
        ),
    };
    if fill.is_zero() || fill >= scenario.duration {
        return Err(check.err_hint(
            value,
            KEY,
            format!(
                "the fill phase ({}) must be longer than 0s and shorter than `duration` ({})",
                super::format_duration(fill),
                super::format_duration(scenario.duration)
            ),
            "the consumers read the backlog after it; make `duration` longer",
        ));
    }
    Ok(BenchSpec {
        backlog: Some(Backlog {
            fill,
            size_bytes,
            producers,
        }),
    })
}

/// The time the producers need at their configured rates to write `bytes` of values.
fn fill_time(check: &Check<'_>, value: &S<toml::Value>, s: &Scenario, bytes: u64) -> R<Duration> {
    let mut bytes_per_second = 0.0;
    for p in &s.producers {
        match p.rate {
            Rate::PerSecond(r) => bytes_per_second += r * f64::from(p.count * p.message_size),
            Rate::Max => {
                return Err(check.err_hint(
                    value,
                    "bench.backlog",
                    "a backlog size needs producers with a fixed `rate` (a size is turned into \
                     a fill time at those rates)",
                    "give a fill time such as \"3s\" instead, or fixed producer rates",
                ))
            }
        }
    }
    if bytes_per_second <= 0.0 {
        return Err(check.err_hint(
            value,
            "bench.backlog",
            "a backlog size needs producers that write",
            "add a [[producers]] entry with a positive `rate`",
        ));
    }
    let seconds = bytes as f64 / bytes_per_second;
    // Whole milliseconds, rounded up, so the backlog holds at least the size asked for.
    let millis = (seconds * 1e3).ceil().min(365.0 * 24.0 * 3600e3);
    Ok(Duration::from_millis(millis as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_size("2GB"), Some(Ok(2_000_000_000)));
        assert_eq!(parse_size("1GiB"), Some(Ok(1 << 30)));
        assert_eq!(parse_size("512 MiB"), Some(Ok(512 << 20)));
        assert_eq!(parse_size("10KB"), Some(Ok(10_000)));
        assert_eq!(parse_size("3s"), None);
        assert!(matches!(parse_size("xGB"), Some(Err(_))));
        assert!(matches!(parse_size("0GB"), Some(Err(_))));
    }
}
