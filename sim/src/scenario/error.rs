//! Scenario errors: every one names the file, the line and column, the dotted key path
//! ("producers[0].config.linger.ms") and, where it helps, a hint. Scenario files are written by
//! people and by tools outside the project, so an error must point at the exact spot to fix.

use std::fmt;
use std::ops::Range;

/// A scenario or workload file that cannot be used, and where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: String,
    /// 1-based; 0 = the whole file (missing, unreadable).
    pub line: usize,
    /// 1-based, in characters; 0 when `line` is 0.
    pub column: usize,
    /// Dotted key path such as `producers[0].config.linger.ms`; empty when no key applies.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ScenarioError {
    /// An error about the whole file (it cannot be read, for example).
    pub fn whole_file(file: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: file.to_string(),
            line: 0,
            column: 0,
            key: String::new(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> ScenarioError {
        self.hint = Some(hint.into());
        self
    }
}

/// `{file}:{line}:{column}: {key}: {message}` then `\n  hint: {hint}`. The position is left
/// out for whole-file errors and the key when none applies, so no line reads "x.toml:0:0: : ..".
impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Builds errors for one file's text: turns byte spans into lines and columns.
#[derive(Clone, Copy)]
pub struct Locator<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Locator<'_> {
    /// An error at byte `span.start`.
    pub fn error(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ScenarioError {
        let (line, column) = line_column(self.text, span.start);
        ScenarioError {
            file: self.file.to_string(),
            line,
            column,
            key: key.into(),
            message: message.into(),
            hint: None,
        }
    }
}

/// The entry of `known` closest to `key` by edit distance, if it is close enough to be a typo
/// (at most a third of the key's length, and at least one edit allowed).
pub fn did_you_mean(key: &str, known: &[&str]) -> Option<String> {
    let limit = (key.chars().count() / 3).max(1);
    known
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, candidate)| candidate.to_string())
}

/// Edit distance counting an insertion, deletion, substitution or swap of two neighbours as
/// one edit (optimal string alignment, strsim's `osa_distance`), case-insensitive: "drian" is
/// one edit from "drain".
pub fn edit_distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(&a.to_lowercase(), &b.to_lowercase())
}

/// A hint naming the closest of `known`, or listing them all when none is close.
pub fn unknown_hint(value: &str, known: &[&str]) -> String {
    match did_you_mean(value, known) {
        Some(close) => format!("did you mean \"{close}\"?"),
        None => format!("expected one of: {}", known.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_every_part() {
        let e = ScenarioError {
            file: "a.toml".into(),
            line: 3,
            column: 7,
            key: "cluster.brokers".into(),
            message: "must be at least 1".into(),
            hint: Some("a cluster needs a broker".into()),
        };
        assert_eq!(
            e.to_string(),
            "a.toml:3:7: cluster.brokers: must be at least 1\n  hint: a cluster needs a broker"
        );
        let whole = ScenarioError::whole_file("b.toml", "cannot read");
        assert_eq!(whole.to_string(), "b.toml: cannot read");
    }

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 11), (2, 6));
    }

    #[test]
    fn did_you_mean_finds_typos_only() {
        let known = ["linger.ms", "batch.size", "acks"];
        assert_eq!(did_you_mean("lingr.ms", &known), Some("linger.ms".into()));
        assert_eq!(did_you_mean("ACKS", &known), Some("acks".into()));
        assert_eq!(did_you_mean("compression.type", &known), None);
        assert_eq!(
            did_you_mean("drian", &["drain", "duration"]),
            Some("drain".into())
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }
}
