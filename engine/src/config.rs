//! Kafka-style configuration properties. Scenario files set broker, producer and consumer
//! properties by their Java names (`"linger.ms" = 5`); each engine config struct implements
//! [`Configurable`] so that the knowledge of which properties exist, their types and ranges
//! lives beside the semantics they control. Unknown names and bad values are errors the
//! scenario parser reports with the file, line and key.

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
