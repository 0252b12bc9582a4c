//! Kafka-style configuration properties. Scenario files set broker, producer and consumer
//! properties by their Java names (`"linger.ms" = 5`); each engine config struct implements
//! [`Configurable`] so that the knowledge of which properties exist, their types and ranges
//! lives beside the semantics they control. Unknown names and bad values are errors the
//! scenario parser reports with the file, line and key.
//!
//! It is also the one vocabulary of values the configurations share: client versions
//! ([`ClientVersion`], [`parse_client_version`]), milliseconds properties ([`millis`]) and
//! durations written with a unit ([`parse_duration`]), so that a value means the same
//! wherever it is written.

use crate::time::Duration;

/// A property value as written in a scenario file.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ConfigValue {
    pub fn as_bool(&self) -> Result<bool, String> {
        match self {
            ConfigValue::Bool(b) => Ok(*b),
            ConfigValue::Str(s) if s == "true" || s == "false" => Ok(s == "true"),
            other => Err(format!("expected true or false, got {other}")),
        }
    }

    pub fn as_i64(&self) -> Result<i64, String> {
        match self {
            ConfigValue::Int(i) => Ok(*i),
            ConfigValue::Str(s) => s
                .parse()
                .map_err(|_| format!("expected an integer, got \"{s}\"")),
            other => Err(format!("expected an integer, got {other}")),
        }
    }

    /// An integer within `min..=max`.
    pub fn as_int_in(&self, min: i64, max: i64) -> Result<i64, String> {
        let v = self.as_i64()?;
        if v < min || v > max {
            return Err(format!("expected an integer from {min} to {max}, got {v}"));
        }
        Ok(v)
    }

    pub fn as_str(&self) -> Result<&str, String> {
        match self {
            ConfigValue::Str(s) => Ok(s),
            other => Err(format!("expected a string, got {other}")),
        }
    }

    /// One of `choices` (a string property such as `auto.offset.reset`).
    pub fn as_choice<'c>(&self, choices: &[&'c str]) -> Result<&'c str, String> {
        let s = match self {
            ConfigValue::Str(s) => s.clone(),
            ConfigValue::Int(i) => i.to_string(),
            ConfigValue::Bool(b) => b.to_string(),
            ConfigValue::Float(f) => f.to_string(),
        };
        choices
            .iter()
            .find(|c| **c == s)
            .copied()
            .ok_or_else(|| format!("expected one of {}, got \"{s}\"", choices.join(", ")))
    }
}

impl std::fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigValue::Bool(b) => write!(f, "{b}"),
            ConfigValue::Int(i) => write!(f, "{i}"),
            ConfigValue::Float(x) => write!(f, "{x}"),
            ConfigValue::Str(s) => write!(f, "\"{s}\""),
        }
    }
}

/// A config struct settable by Kafka property name.
pub trait Configurable {
    /// Set one property. `Err` says what was expected (the caller adds file, line and key).
    fn set(&mut self, key: &str, value: &ConfigValue) -> Result<(), String>;
    /// Property names this struct understands, for "did you mean" hints.
    fn known_keys(&self) -> &'static [&'static str];
    /// The client libraries' own names for these properties, every client's (see
    /// `crate::alias`); the host accepts those of [`Configurable::client`] only.
    fn aliases(&self) -> &'static [crate::alias::Alias] {
        &[]
    }
    /// The client library this configuration is for, if it is a client's.
    fn client(&self) -> Option<crate::client::ClientKind> {
        None
    }
}

/// A client library version `major.minor.patch`, ordered numerically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientVersion(pub u32, pub u32, pub u32);

impl ClientVersion {
    /// Parses `"1.43.3"`, `"1.22"` (patch 0), `"2"` and a leading `v` (`"v0.4.50"`, as
    /// kafka-go tags its releases).
    pub fn parse(text: &str) -> Option<ClientVersion> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let mut parts = [0u32; 3];
        for (count, piece) in text.split('.').enumerate() {
            if count == 3 || piece.is_empty() || !piece.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            parts[count] = piece.parse().ok()?;
        }
        Some(ClientVersion(parts[0], parts[1], parts[2]))
    }

    /// `(major, minor)`, what most version switches compare.
    pub fn major_minor(self) -> (u32, u32) {
        (self.0, self.1)
    }
}

impl std::fmt::Display for ClientVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// A scenario's `client_version`, for producers and consumers alike.
pub fn parse_client_version(text: &str) -> Result<ClientVersion, String> {
    ClientVersion::parse(text).ok_or_else(|| {
        format!(
            "bad client_version \"{text}\": expected MAJOR.MINOR[.PATCH] such as \"3.7\", \"1.43.2\" or \"v0.4.47\""
        )
    })
}

/// A milliseconds property (`"linger.ms" = 5`) in `min..=max`.
pub fn millis(v: &ConfigValue, min: i64, max: i64) -> Result<Duration, String> {
    Ok(Duration::from_millis(v.as_int_in(min, max)? as u64))
}

/// Units a duration may carry, with their length in nanoseconds. Longest suffix first so that
/// "ms" is not read as "m" followed by garbage.
pub const DURATION_UNITS: [(&str, f64); 6] = [
    ("ns", 1.0),
    ("us", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("m", 60e9),
    ("h", 3600e9),
];

/// The longest duration anything may name: one simulated year, far past any run, and small
/// enough that nanoseconds fit in a u64 with room to add.
const MAX_NANOS: f64 = 365.0 * 24.0 * 3600e9;

/// A duration written with a unit: "250ms", "1.5s", "2m", "500us". The error says what was
/// expected. (A bare number is ambiguous, Kafka properties count milliseconds and people think
/// in seconds, so it is an error here; a property that takes either reads an integer as
/// milliseconds before it calls this.)
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    if number.is_empty() {
        return Err(format!("\"{text}\" is not a duration"));
    }
    let Some(&(_, unit_nanos)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit.trim())
    else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_version_parser_for_every_client() {
        assert_eq!(parse_client_version("3.7"), Ok(ClientVersion(3, 7, 0)));
        assert_eq!(parse_client_version("1.43.2"), Ok(ClientVersion(1, 43, 2)));
        assert_eq!(parse_client_version("v0.4.47"), Ok(ClientVersion(0, 4, 47)));
        for bad in ["", "x.y", "1.2.3.4", "1..2", "v", "1.2-rc1"] {
            let e = parse_client_version(bad).unwrap_err();
            assert!(e.contains("MAJOR.MINOR"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn durations_need_a_unit_and_millis_a_range() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 2m "), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("3d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("400d").is_err());
        assert_eq!(
            millis(&ConfigValue::Int(5), 0, 10),
            Ok(Duration::from_millis(5))
        );
        assert!(millis(&ConfigValue::Int(11), 0, 10).is_err());
    }
}
