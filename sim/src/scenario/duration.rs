//! Durations as scenario files write them: a number and a unit in one string ("250ms", "10s",
//! "1.5s", "2m", "1h", "500us"). A bare integer is ambiguous (Kafka properties count
//! milliseconds, people think in seconds), so it is rejected with a hint rather than guessed.

use std::time::Duration;

/// The one duration parser (`kafsim_engine::config`), shared with the engine's properties.
pub use kafsim_engine::config::parse_duration;
use kafsim_engine::config::DURATION_UNITS as UNITS;

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

/// A measured span of simulated time as the run's report prints it (`4.507s`, `771.83ms`,
/// `40s`): seconds from one second on, milliseconds below, to at most three decimals
/// (milliseconds, as the report's times `8488.145ms` are printed, or microseconds), without
/// trailing zeros, so a fault's whole-millisecond duration reads as it was drawn or written.
/// Reports only: the JSON keeps exact numbers, and a scenario file [`format_duration`].
pub fn format_span(d: Duration) -> String {
    let nanos = d.as_nanos();
    let micros = (nanos + 500) / 1_000;
    let (whole, thousandths, unit) = if micros < 1_000_000 {
        (micros / 1_000, micros % 1_000, "ms")
    } else {
        let millis = (nanos + 500_000) / 1_000_000;
        (millis / 1_000, millis % 1_000, "s")
    };
    if thousandths == 0 {
        return format!("{whole}{unit}");
    }
    let decimals = format!("{thousandths:03}");
    format!("{whole}.{}{unit}", decimals.trim_end_matches('0'))
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
    fn spans_print_at_most_three_decimals() {
        let cases = [
            (Duration::from_nanos(4_506_892_783), "4.507s"),
            (Duration::from_nanos(771_829_863), "771.83ms"),
            (Duration::from_nanos(361_069_015), "361.069ms"),
            (Duration::from_millis(17_489), "17.489s"),
            (Duration::from_millis(954), "954ms"),
            (Duration::from_secs(40), "40s"),
            (Duration::from_nanos(999_999_700), "1s"),
            (Duration::from_nanos(1_999_600_000), "2s"),
            (Duration::from_micros(500), "0.5ms"),
            (Duration::ZERO, "0ms"),
        ];
        for (d, want) in cases {
            assert_eq!(format_span(d), want, "{d:?}");
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
