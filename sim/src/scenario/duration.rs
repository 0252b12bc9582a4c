//! Durations as scenario files write them: a number and a unit in one string ("250ms", "10s",
//! "1.5s", "2m", "1h", "500us"). A bare integer is ambiguous (Kafka properties count
//! milliseconds, people think in seconds), so it is rejected with a hint rather than guessed.

use std::time::Duration;

/// Units a duration may carry, with their length in nanoseconds. Longest suffix first so that
/// "ms" is not read as "m" followed by garbage.
const UNITS: [(&str, f64); 6] = [
    ("ns", 1.0),
    ("us", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("m", 60e9),
    ("h", 3600e9),
];

/// The longest duration a scenario may name: one simulated year, far past any run, and small
/// enough that nanoseconds fit in a u64 with room to add.
const MAX_NANOS: f64 = 365.0 * 24.0 * 3600e9;

/// Parses "250ms", "1.5s", "2m", ... The error says what was expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    if number.is_empty() {
        return Err(format!("\"{text}\" is not a duration"));
    }
    let Some(&(_, unit_nanos)) = UNITS.iter().find(|(name, _)| *name == unit.trim()) else {
        return Err(if unit.trim().is_empty() {
            format!("\"{text}\" has no unit")
        } else {
            format!("\"{text}\" has an unknown unit \"{}\"", unit.trim())
        });
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a duration"))?;
    let nanos = (value * unit_nanos).round();
    if !(0.0..=MAX_NANOS).contains(&nanos) {
        return Err(format!("\"{text}\" is longer than a year"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// The hint printed with every duration error.
pub const DURATION_HINT: &str =
    "write a number and a unit as a string: \"250ms\", \"10s\", \"1.5s\", \"2m\", \"1h\", \"500us\"";

/// A short human form of a duration ("250ms", "1.5s"), for messages and listings.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    for (name, unit_nanos) in UNITS.iter().rev() {
        let unit = *unit_nanos as u128;
        if (nanos / unit) * unit == nanos {
            return format!("{}{name}", nanos / unit);
        }
    }
    format!("{}ns", nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        let cases = [
            ("250ms", Duration::from_millis(250)),
            ("10s", Duration::from_secs(10)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1.5s", Duration::from_millis(1500)),
            ("500us", Duration::from_micros(500)),
            ("7ns", Duration::from_nanos(7)),
            ("0ms", Duration::ZERO),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for text in ["", "ms", "10", "10 sec", "1.2.3s", "-5s", "10d", "9999999h"] {
            assert!(parse_duration(text).is_err(), "{text} should not parse");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["250ms", "10s", "2m", "1h", "1500ms", "500us", "0s"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
        }
    }
}
